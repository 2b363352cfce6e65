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

use crate::Error;
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

/// [`stats`] of the sessions that hold an event meeting a report's filters: `sessions`
/// paired as [`stats`] requires, `hits` the `(user, timestamp)` of every event that meets
/// them (in any order). A session holds the events of its user from its start to its
/// stop, both included (so its own start and stop count); a kept session is counted
/// whole (its duration, whatever its other events).
pub fn stats_of_sessions_with(
    sessions: &[Session],
    hits: Vec<(String, i64)>,
    interval: Interval,
    from_ms: i64,
    to_ms: i64,
) -> BTreeMap<i64, Stats> {
    let mut by_user: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (user, timestamp) in hits {
        by_user.entry(user).or_default().push(timestamp);
    }
    for times in by_user.values_mut() {
        times.sort_unstable();
    }
    let holds_a_hit = |user: &str, start: i64, stop: i64| {
        by_user.get(user).is_some_and(|times| {
            let first = times.partition_point(|&t| t < start);
            times.get(first).is_some_and(|&t| t <= stop)
        })
    };
    let kept: Vec<Session> = sessions
        .iter()
        .filter(|s| match s {
            Session::Closed { user, start, stop } => holds_a_hit(user, *start, *stop),
            _ => false,
        })
        .cloned()
        .collect();
    stats(&kept, interval, from_ms, to_ms)
}

/// The order marks stream in for [`Pairing`]: by time; at one instant starts before
/// stops (as [`pair`] orders them), then by event id. Per user this is [`pair`]'s order.
pub fn stream_order(mark: &Mark) -> (i64, bool, &str) {
    (mark.timestamp, !mark.is_start, mark.event_id.as_str())
}

/// [`stats`] of [`pair`] computed as marks stream in, in [`stream_order`], so that a
/// read can page through marks and hold only the starts of the last
/// [`MAX_SESSION_MS`], not every mark: a start older than that can no longer be closed
/// by a session that counts, and forgetting it changes no stop's partner that counts (a
/// stop closes the most recent open start, and every start forgotten is older than any
/// it could close in time).
#[derive(Debug)]
pub struct Pairing {
    interval: Interval,
    from_ms: i64,
    to_ms: i64,
    /// Each user's open starts, oldest first.
    open: BTreeMap<String, Vec<i64>>,
    stats: BTreeMap<i64, Stats>,
    /// The last mark added, in [`stream_order`].
    last: Option<(i64, bool, String)>,
    /// Marks added since open starts were last forgotten.
    since_forgetting: usize,
}

/// Marks added between two sweeps of the starts too old to count.
const FORGET_EVERY: usize = 4096;

impl Pairing {
    /// Sessions that start in `[from_ms, to_ms)`, per `interval` bucket, from marks that
    /// must include every mark in `[from_ms, to_ms + MAX_SESSION_MS)` (see [`stats`]).
    pub fn new(interval: Interval, from_ms: i64, to_ms: i64) -> Self {
        Self {
            interval,
            from_ms,
            to_ms,
            open: BTreeMap::new(),
            stats: BTreeMap::new(),
            last: None,
            since_forgetting: 0,
        }
    }

    /// Adds one mark, which must come after every mark added so far in
    /// [`stream_order`].
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with code `marks_out_of_order` when it does not: the caller's
    /// read is wrong, and an answer from it would be too.
    pub fn add(&mut self, mark: &Mark) -> Result<(), Error> {
        let key = stream_order(mark);
        if let Some(last) = &self.last
            && (last.0, last.1, last.2.as_str()) >= key
        {
            return Err(Error::invalid(
                "marks_out_of_order",
                "session marks must be added in time order",
            ));
        }
        self.last = Some((key.0, key.1, key.2.to_owned()));
        if mark.is_start {
            self.open
                .entry(mark.user.clone())
                .or_default()
                .push(mark.timestamp);
        } else if let Some(start) = self.open.get_mut(&mark.user).and_then(Vec::pop) {
            let stop = mark.timestamp;
            if (self.from_ms..self.to_ms).contains(&start) && stop - start <= MAX_SESSION_MS {
                let sum = self.stats.entry(self.interval.floor(start)).or_default();
                sum.sessions += 1;
                sum.total_ms += stop - start;
            }
        }
        self.since_forgetting += 1;
        if self.since_forgetting >= FORGET_EVERY {
            self.forget_before(mark.timestamp - MAX_SESSION_MS);
        }
        Ok(())
    }

    /// Forgets open starts before `before_ms`, and users with none left.
    fn forget_before(&mut self, before_ms: i64) {
        self.open.retain(|_, starts| {
            let too_old = starts.partition_point(|&start| start < before_ms);
            starts.drain(..too_old);
            !starts.is_empty()
        });
        self.since_forgetting = 0;
    }

    /// The users with open starts held now (for tests of the memory bound).
    pub fn open_users(&self) -> usize {
        self.open.len()
    }

    /// The sessions per bucket, as [`stats`] gives them.
    pub fn finish(self) -> BTreeMap<i64, Stats> {
        self.stats
    }
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
    fn a_session_is_kept_when_one_of_its_events_meets_the_filters_and_counted_whole() {
        let marks = vec![
            mark("a", 10, true),
            mark("a", 20, false),
            mark("a", 30, true),
            mark("a", 45, false),
            mark("b", 10, true),
            mark("b", 50, false),
            // Never stopped: never counted, whatever its events.
            mark("c", 10, true),
        ];
        let sessions = pair(marks);
        let check = |hits: &[(&str, i64)], expected: (u64, i64)| {
            let owned = hits.iter().map(|(u, t)| ((*u).to_owned(), *t)).collect();
            let got = stats_of_sessions_with(&sessions, owned, Interval::Day, 0, 100);
            let got = got.get(&0).copied().unwrap_or_default();
            assert_eq!((got.sessions, got.total_ms), expected, "{hits:?}");
        };
        check(&[], (0, 0));
        // The start and the stop are the session's own events, both ends included.
        check(&[("a", 10)], (1, 10));
        check(&[("a", 20)], (1, 10));
        check(&[("a", 25)], (0, 0));
        check(&[("a", 31), ("b", 49), ("c", 11)], (2, 55));
        // One session counts once, however many of its events meet the filters.
        check(
            &[("b", 10), ("b", 20), ("b", 50), ("a", 44), ("a", 12)],
            (3, 65),
        );
        // Another user's event keeps nothing.
        check(&[("x", 15)], (0, 0));
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

    #[test]
    fn pairing_as_marks_stream_in_equals_pairing_them_all() {
        use crate::testing::SplitMix64 as Rng;
        const HOUR: i64 = 3_600_000;
        for seed in 0..40 {
            let mut rng = Rng(seed);
            let mut marks = Vec::new();
            // Up to 12,000 marks: the starts too old to count are forgotten along the way.
            for i in 0..(200 + rng.below(12_000)) {
                // Few users and coarse times: many marks share an instant.
                let timestamp = rng.below(6 * 24) as i64 * HOUR / 2;
                marks.push(Mark {
                    user: format!("u{}", rng.below(1 + seed % 20)),
                    timestamp,
                    event_id: format!("{:08x}", rng.below(1 << 32) ^ i),
                    is_start: rng.below(2) == 0,
                });
            }
            marks.sort();
            marks.dedup_by(|a, b| a.event_id == b.event_id);
            let (from, to) = (DAY_MS / 2, 2 * DAY_MS + HOUR);
            for interval in [Interval::Day, Interval::Month] {
                let expected = stats(&pair(marks.clone()), interval, from, to);
                let mut streamed = marks.clone();
                streamed.sort_by(|a, b| stream_order(a).cmp(&stream_order(b)));
                let mut pairing = Pairing::new(interval, from, to);
                for mark in &streamed {
                    pairing.add(mark).unwrap();
                }
                assert_eq!(pairing.finish(), expected, "seed {seed}");
            }
        }
    }

    #[test]
    fn pairing_holds_only_recent_starts_and_refuses_marks_out_of_order() {
        let mut pairing = Pairing::new(Interval::Day, 0, 100 * DAY_MS);
        for i in 0..20_000 {
            // Starts never stopped, a new user every 10 minutes.
            pairing
                .add(&mark(&format!("u{i}"), i * 600_000, true))
                .unwrap();
        }
        assert!(
            pairing.open_users() <= 24 * 6 + FORGET_EVERY,
            "{}",
            pairing.open_users()
        );
        let late = mark("u0", 0, false);
        let refused = pairing.add(&late).unwrap_err();
        assert!(refused.to_string().contains("time order"), "{refused}");
    }
}
