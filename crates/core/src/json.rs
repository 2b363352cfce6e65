//! Splitting a list into JSON arrays that each fit a byte budget.

use serde::Serialize;

/// Serializes `items` into strings of the form `head item,item,... tail`, each at most
/// `max_bytes` long, keeping the order. An item too large for any budget gets a string
/// of its own.
pub fn chunks<T: Serialize>(items: &[T], max_bytes: usize, head: &str, tail: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chunk = String::from(head);
    let mut count = 0usize;
    for item in items {
        let json = serde_json::to_string(item).expect("items serialize to JSON");
        if count > 0 && chunk.len() + 1 + json.len() + tail.len() > max_bytes {
            chunk.push_str(tail);
            out.push(std::mem::replace(&mut chunk, String::from(head)));
            count = 0;
        }
        if count > 0 {
            chunk.push(',');
        }
        chunk.push_str(&json);
        count += 1;
    }
    if count > 0 {
        chunk.push_str(tail);
        out.push(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn splits_at_budget() {
        let items: Vec<u32> = (10..40).collect();
        let parts = chunks(&items, 20, "[", "]");
        let mut back = Vec::new();
        for p in &parts {
            assert!(p.len() <= 20, "{p}");
            back.extend(serde_json::from_str::<Vec<u32>>(p).unwrap());
        }
        assert_eq!(back, items);
        assert!(chunks::<u32>(&[], 20, "[", "]").is_empty());
        assert_eq!(
            chunks(&["a-long-item"], 5, "[", "]"),
            vec![r#"["a-long-item"]"#]
        );
    }
}
