//! Revenue and the UTM term and content, end to end: Plausible events with `$` revenue
//! and `utm_term`/`utm_content` through ingest, the queue, the aggregator and local D1,
//! read back from the revenue endpoint, the breakdowns, filters, the export and the
//! dashboard's HTML.

use serde_json::{Value, json};

use crate::support::{Project, request, url, wait_for_count};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

/// `POST /api/event` with the project's key, as a browser at `ip`.
fn send(p: &Project, body: &Value, ip: &str) -> crate::support::Answer {
    request(
        "POST",
        &format!("{}/api/event?key={}", url("ingest"), p.write_key),
        &[
            ("content-type", "text/plain"),
            ("user-agent", BROWSER),
            ("cf-connecting-ip", ip),
        ],
        Some(&body.to_string()),
    )
}

/// `(value, amount, events)` of one currency's lines in a revenue answer.
fn lines(answer: &Value, currency: &str) -> Vec<(Value, f64, u64)> {
    let currencies = answer["currencies"].as_array().unwrap();
    let c = currencies
        .iter()
        .find(|c| c["currency"] == currency)
        .unwrap_or_else(|| panic!("no {currency} in {answer}"));
    c["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].clone(),
                v["amount"].as_f64().unwrap(),
                v["events"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn plausible_revenue_is_summed_per_currency_and_utm_term_and_content_are_dimensions() {
    let p = Project::new("revenue");
    let tagged = "https://shop.example/buy?utm_source=google&utm_campaign=spring&utm_term=running%20shoes&utm_content=banner-a";
    let events = [
        json!({"n": "purchase", "u": tagged, "d": p.slug, "$": {"currency": "eur", "amount": "19.99"}}),
        json!({"n": "purchase", "u": tagged, "d": p.slug, "$": "{\"currency\":\"EUR\",\"amount\":0.1}"}),
        json!({"n": "purchase", "u": "https://shop.example/buy?utm_source=bing", "d": p.slug,
            "revenue": {"currency": "EUR", "amount": 0.2}}),
        json!({"n": "purchase", "u": "https://shop.example/buy", "d": p.slug,
            "$": {"currency": "USD", "amount": 5}}),
        json!({"n": "pageview", "u": tagged, "d": p.slug}),
        json!({"n": "pageview", "u": "https://shop.example/?utm_term=socks&utm_content=footer", "d": p.slug}),
    ];
    for (i, e) in events.iter().enumerate() {
        let a = send(&p, e, &format!("203.0.113.{}", i + 1));
        assert_eq!(a.status, 202, "{e}: {}", a.json);
    }
    // Ten of the largest amount: 10^16 thousandths, past D1's exact integers, so the
    // stored sum saturates at 2^53 − 1 and still reads back through D1.
    let largest = json!({"n": "bigsale", "u": "https://shop.example/", "d": p.slug,
        "$": {"currency": "CLP", "amount": 1e12}});
    for i in 0..10 {
        let a = send(&p, &largest, &format!("198.51.100.{i}"));
        assert_eq!(a.status, 202, "{}", a.json);
    }
    // An amount below zero is refused with a clear error and stores nothing.
    let refused = send(
        &p,
        &json!({"n": "purchase", "u": tagged, "d": p.slug, "$": {"currency": "EUR", "amount": -3}}),
        "203.0.113.99",
    );
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(
        refused.json["error"]["code"], "invalid_event",
        "{}",
        refused.json
    );
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from 0 to 1000000000000"),
        "{}",
        refused.json
    );
    wait_for_count(&p, 16);

    // By name, from the revenue rollups: 0.1 + 0.2 + 19.99 exactly, the dollars apart.
    let by_name = p.read("revenue?days=1");
    assert_eq!(by_name.status, 200, "{}", by_name.json);
    assert_eq!(by_name.json["served_by"], "rollups");
    assert_eq!(by_name.json["by"], "name");
    let totals: Vec<(Value, Value, Value)> = by_name.json["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["currency"].clone(),
                c["amount"].clone(),
                c["events"].clone(),
            )
        })
        .collect();
    assert_eq!(
        totals,
        [
            // (2^53 − 1) thousandths, as the double nearest it prints.
            (json!("CLP"), json!(9_007_199_254_740.99), json!(10)),
            (json!("EUR"), json!(20.29), json!(3)),
            (json!("USD"), json!(5.0), json!(1)),
        ],
        "{}",
        by_name.json
    );
    assert_eq!(lines(&by_name.json, "EUR"), [(json!("purchase"), 20.29, 3)]);
    let by_source = p.read("revenue?days=1&by=source").json;
    assert_eq!(
        lines(&by_source, "EUR"),
        [(json!("google"), 20.09, 2), (json!("bing"), 0.2, 1)],
        "{by_source}"
    );
    assert_eq!(lines(&by_source, "USD"), [(Value::Null, 5.0, 1)]);
    let by_campaign = p.read("revenue?days=1&by=campaign").json;
    assert_eq!(
        lines(&by_campaign, "EUR"),
        [(json!("spring"), 20.09, 2), (Value::Null, 0.2, 1)],
        "{by_campaign}"
    );
    // Under a filter on the new dimensions: from raw events, the same sums.
    let by_term = p.read("revenue?days=1&filter=term:running%20shoes").json;
    assert_eq!(by_term["served_by"], "raw", "{by_term}");
    assert_eq!(lines(&by_term, "EUR"), [(json!("purchase"), 20.09, 2)]);
    assert_eq!(by_term["currencies"].as_array().unwrap().len(), 1);
    let footer = p.read("overview?days=1&filter=content:footer").json;
    assert_eq!(footer["events"], 1, "{footer}");
    let bad = p.read("revenue?by=route");
    assert_eq!(bad.status, 400, "{}", bad.json);
    assert_eq!(bad.json["error"]["code"], "invalid_parameter");

    // Term and content are breakdowns and filters like source and campaign.
    let terms = p.read("breakdown/term?days=1").json;
    let values: Vec<(Value, Value)> = terms["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["value"].clone(), v["events"].clone()))
        .collect();
    assert_eq!(
        values,
        [
            (json!("running shoes"), json!(3)),
            (json!("socks"), json!(1))
        ],
        "{terms}"
    );
    let export = p.read("export?days=1&format=csv&filter=content:banner-a");
    assert_eq!(export.status, 200);
    let csv = export.json.as_str().unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",metadata,term,content"), "{header}");
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    assert!(csv.contains(",running shoes,banner-a"), "{csv}");

    // The dashboard shows the revenue per currency and the term and content tables,
    // their values linking to the page filtered by them.
    let page = p.dashboard("?days=1");
    assert_eq!(page.status, 200);
    let html = page.json.as_str().unwrap();
    for expected in [
        r#"id="revenue""#,
        r#"id="revenue-name-table""#,
        r#"id="revenue-source-table""#,
        r#"id="revenue-campaign-table""#,
        "<td>EUR</td><td>20.29</td><td>3</td>",
        "<td>EUR</td><td>20.09</td><td>2</td>",
        "<td>USD</td><td>5.00</td><td>1</td>",
        "Direct / none",
        r#"id="term-table""#,
        r#"id="content-table""#,
        "filter=source%3Agoogle",
        "filter=term%3Arunning",
        "filter=content%3Afooter",
    ] {
        assert!(html.contains(expected), "the dashboard lacks {expected}");
    }
}
