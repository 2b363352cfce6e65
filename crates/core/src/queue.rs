//! The `events` queue message: a versioned JSON envelope packing many events.
//!
//! Cloudflare Queues allow 128 KB per message, so [`pack`] splits a request's events
//! into as few messages as fit under [`MAX_MESSAGE_BYTES`].

use serde::{Deserialize, Serialize};

use crate::{Error, Event};

/// The envelope format this build writes and reads.
pub const VERSION: u64 = 1;
/// Budget for one message body: under the 128 KB limit, with room for the runtime's framing.
pub const MAX_MESSAGE_BYTES: usize = 120_000;

/// One queue message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub v: u64,
    pub events: Vec<Event>,
    /// Requests answered but not stored, to be counted (absent in most messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
}

/// A request ingest answered but did not store as an event (a known bot), so that it
/// is counted exactly once: the id makes a redelivered record harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub event_id: String,
    pub project: String,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// Why it was dropped: `bot`.
    pub reason: String,
}

/// The message body recording one dropped request.
pub fn pack_dropped(dropped: Dropped) -> String {
    let message = Message {
        v: VERSION,
        events: Vec::new(),
        dropped: vec![dropped],
    };
    serde_json::to_string(&message).expect("a message serializes")
}

/// Packs events into JSON message bodies of at most `max_bytes` each, keeping their order.
///
/// An event larger than `max_bytes` on its own still gets a message of its own;
/// validation caps every field so this does not happen with real budgets.
pub fn pack(events: &[Event], max_bytes: usize) -> Vec<String> {
    let head = format!(r#"{{"v":{VERSION},"events":["#);
    crate::json::chunks(events, max_bytes, &head, "]}")
}

/// Decodes one message body.
///
/// # Errors
///
/// [`Error::MalformedMessage`] for bodies that are not a message, and
/// [`Error::UnsupportedVersion`] for envelopes from a newer format.
pub fn unpack(body: &str) -> Result<Message, Error> {
    let message: Message =
        serde_json::from_str(body).map_err(|e| Error::MalformedMessage(e.to_string()))?;
    if message.v != VERSION {
        return Err(Error::UnsupportedVersion(message.v));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize, pad: usize) -> Event {
        let mut event = Event::new(
            &format!("00000000-0000-4000-8000-{i:012}"),
            "demo",
            &"x".repeat(pad.max(1)),
            1,
        );
        event.received_at = 2;
        event.status = Some(200);
        event
    }

    #[test]
    fn round_trips_and_respects_budget() {
        let events: Vec<Event> = (0..500).map(|i| event(i, 100)).collect();
        let bodies = pack(&events, 10_000);
        assert!(
            bodies.len() > 1,
            "500 events of ~200 bytes need several messages"
        );
        let mut back = Vec::new();
        for body in &bodies {
            assert!(body.len() <= 10_000, "body of {} bytes", body.len());
            back.extend(unpack(body).unwrap().events);
        }
        assert_eq!(back, events);
    }

    #[test]
    fn empty_input_packs_nothing() {
        assert!(pack(&[], MAX_MESSAGE_BYTES).is_empty());
    }

    #[test]
    fn oversized_event_gets_its_own_message() {
        let events = vec![event(0, 10), event(1, 500), event(2, 10)];
        let bodies = pack(&events, 300);
        assert_eq!(bodies.len(), 3);
    }

    #[test]
    fn dropped_records_round_trip_beside_no_events() {
        let d = Dropped {
            event_id: "00000000-0000-4000-8000-000000000001".into(),
            project: "site".into(),
            timestamp: 5,
            reason: "bot".into(),
        };
        let m = unpack(&pack_dropped(d.clone())).unwrap();
        assert!(m.events.is_empty());
        assert_eq!(m.dropped, vec![d]);
        assert!(
            unpack(&pack(&[event(0, 1)], MAX_MESSAGE_BYTES)[0])
                .unwrap()
                .dropped
                .is_empty()
        );
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(matches!(unpack("nope"), Err(Error::MalformedMessage(_))));
        assert!(matches!(
            unpack(r#"{"v":2,"events":[]}"#),
            Err(Error::UnsupportedVersion(2))
        ));
    }
}
