//! Sessions from start/stop event pairs (`play`/`stop` by default), per user.
//!
//! Pairing is a pure function of a user's marks sorted by time, so it does not depend on
//! the order events arrived in: a stop closes the most recent open start of that user;
//! a stop with no open start, and a start never stopped, are kept as such, not guessed.
//!
//! A session lasts at most [`MAX_SESSION_MS`]: a start closed later than that counts as
//! never stopped. That bound makes a day's sessions a function of the marks of that day
//! and the next only, so they can be paired once per day and stored, and an answer does
//! not depend on how far past its range marks happened to be read.

use std::collections::BTreeMap;

use crate::time::{DAY_MS, Interval};

/// The longest a session lasts; a start closed later counts as never stopped.
pub const MAX_SESSION_MS: i64 = DAY_MS;

/// A start or stop event of one user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    pub user: String,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// Breaks ties between marks at the same millisecond, deterministically.
    pub event_id: String,
    pub is_start: bool,
}

/// A paired session, or an unmatched mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// A start closed by a stop.
    Closed { user: String, start: i64, stop: i64 },
    /// A start with no stop (yet).
    Open { user: String, start: i64 },
    /// A stop with no open start before it.
    UnmatchedStop { user: String, stop: i64 },
}

/// Pairs marks into sessions. The input may be in any order.
pub fn pair(mut marks: Vec<Mark>) -> Vec<Session> {
    // By user, then time; at one instant starts come before stops, so a start and a
    // stop sent together make a zero-length session rather than an unmatched stop.
    marks.sort_by(|a, b| {
        (&a.user, a.timestamp, !a.is_start, &a.event_id).cmp(&(
            &b.user,
            b.timestamp,
            !b.is_start,
            &b.event_id,
        ))
    });
    let mut sessions = Vec::new();
    let mut open: Vec<i64> = Vec::new();
    let mut current: Option<&str> = None;
    for (i, mark) in marks.iter().enumerate() {
        if current != Some(mark.user.as_str()) {
            if let Some(user) = current {
                close_user(user, &mut open, &mut sessions);
            }
            current = Some(&mark.user);
        }
        if mark.is_start {
            open.push(mark.timestamp);
        } else if let Some(start) = open.pop() {
            sessions.push(Session::Closed {
                user: mark.user.clone(),
                start,
                stop: mark.timestamp,
            });
        } else {
            sessions.push(Session::UnmatchedStop {
                user: mark.user.clone(),
                stop: mark.timestamp,
            });
        }
        if i + 1 == marks.len() {
            close_user(&mark.user, &mut open, &mut sessions);
        }
    }
    sessions
}

fn close_user(user: &str, open: &mut Vec<i64>, sessions: &mut Vec<Session>) {
    sessions.extend(open.drain(..).map(|start| Session::Open {
        user: user.to_owned(),
        start,
    }));
}

/// Closed sessions grouped by the period their start falls in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sessions: u64,
    /// Total duration in milliseconds.
    pub total_ms: i64,
}

/// Sums closed sessions that start in `[from_ms, to_ms)` and last at most
/// [`MAX_SESSION_MS`] per `interval` bucket. `sessions` must be paired from every mark
/// in `[from_ms, to_ms + MAX_SESSION_MS)` at least: earlier marks do not change how
/// starts in the range pair (a stop closes the most recent open start, and every start
/// in the range is more recent), later ones could only close a session too long to
/// count.
pub fn stats(
    sessions: &[Session],
    interval: Interval,
    from_ms: i64,
    to_ms: i64,
) -> BTreeMap<i64, Stats> {
    let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
    for session in sessions {
        if let Session::Closed { start, stop, .. } = session
            && (from_ms..to_ms).contains(start)
            && stop - start <= MAX_SESSION_MS
        {
            let s = out.entry(interval.floor(*start)).or_default();
            s.sessions += 1;
            s.total_ms += stop - start;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(user: &str, timestamp: i64, is_start: bool) -> Mark {
        Mark {
            user: user.into(),
            timestamp,
            event_id: format!("{user}-{timestamp}-{is_start}"),
            is_start,
        }
    }

    fn closed(user: &str, start: i64, stop: i64) -> Session {
        Session::Closed {
            user: user.into(),
            start,
            stop,
        }
    }

    #[test]
    fn pairs_like_the_seed_api_describes() {
        let marks = vec![
            mark("a", 10, true),
            mark("a", 20, false),
            // Two starts: the stop closes the most recent one; the first stays open.
            mark("a", 30, true),
            mark("a", 40, true),
            mark("a", 50, false),
            // A stop without a play is kept, not paired.
            mark("b", 5, false),
            mark("b", 6, true),
            mark("b", 9, false),
        ];
        let mut shuffled = marks.clone();
        shuffled.reverse();
        let sessions = pair(shuffled);
        assert_eq!(
            sessions,
            vec![
                closed("a", 10, 20),
                closed("a", 40, 50),
                Session::Open {
                    user: "a".into(),
                    start: 30
                },
                Session::UnmatchedStop {
                    user: "b".into(),
                    stop: 5
                },
                closed("b", 6, 9),
            ]
        );
        assert_eq!(pair(marks), sessions, "arrival order does not matter");
    }

    #[test]
    fn a_start_and_stop_at_the_same_instant_pair() {
        assert_eq!(
            pair(vec![mark("u", 7, false), mark("u", 7, true)]),
            vec![closed("u", 7, 7)]
        );
    }

    #[test]
    fn stats_per_day() {
        const DAY: i64 = 86_400_000;
        let sessions = vec![
            closed("a", 0, 480_000),
            closed("b", 1000, 121_000),
            closed("a", DAY + 5, DAY + 65),
            Session::Open {
                user: "c".into(),
                start: 10,
            },
        ];
        let got = stats(&sessions, Interval::Day, 0, 2 * DAY);
        assert_eq!(
            got[&0],
            Stats {
                sessions: 2,
                total_ms: 600_000
            }
        );
        assert_eq!(
            got[&DAY],
            Stats {
                sessions: 1,
                total_ms: 60
            }
        );
        assert!(!stats(&sessions, Interval::Day, DAY, 2 * DAY).contains_key(&0));
    }

    #[test]
    fn a_session_longer_than_the_bound_counts_as_never_stopped() {
        let sessions = vec![
            closed("a", 0, MAX_SESSION_MS),
            closed("b", 0, MAX_SESSION_MS + 1),
        ];
        assert_eq!(
            stats(&sessions, Interval::Month, 0, 1),
            BTreeMap::from([(
                0,
                Stats {
                    sessions: 1,
                    total_ms: MAX_SESSION_MS
                }
            )])
        );
    }
}
