//! A realistic mixed workload for benchmarks and tests (feature `test-utils`): API
//! requests with routes, statuses, errors and latencies; page views with sources and
//! campaigns; image deliveries with variants; installs; funnel steps and play/stop
//! sessions (each user's within a day); all from many users, instances, versions, colos
//! and countries.
//!
//! Deterministic: the same [`Workload`] yields the same events, byte for byte. Events
//! come hour by hour, oldest first (in random order within an hour), spread over
//! [`Workload::days`] ending at `now_ms`, with more traffic in the afternoon (UTC) than
//! at night. Each event goes through [`crate::validate()`] like one sent to ingest, so
//! identifiers are hashed with the given secret.

use serde_json::Value;

use crate::testing::SplitMix64;
use crate::time::{DAY_MS, HOUR_MS, Interval};
use crate::{Context, Event, RawEvent, Settings, validate};

/// The funnel the workload's users go through, in order.
pub const FUNNEL: [&str; 4] = ["visit", "signup", "activate", "purchase"];

/// The names that open and close a session (the project defaults).
pub const SESSION: [&str; 2] = ["play", "stop"];

/// Distinct users, instances and images.
const USERS: u64 = 20_000;
const INSTANCES: u64 = 1_500;
const IMAGES: u64 = 200;

const ROUTES: [&str; 12] = [
    "/api/posts",
    "/api/posts/:id",
    "/api/users/:id",
    "/api/search",
    "/api/feed",
    "/api/comments",
    "/api/login",
    "/api/upload",
    "/api/settings",
    "/api/billing",
    "/api/export",
    "/api/admin/stats",
];
const PAGES: [&str; 6] = ["/", "/pricing", "/docs", "/blog", "/blog/:slug", "/about"];
const VERSIONS: [&str; 5] = ["2.4.0", "2.4.1", "2.5.0", "2.5.1", "3.0.0-beta"];
const COLOS: [&str; 10] = [
    "FRA", "AMS", "LHR", "CDG", "IAD", "SJC", "ORD", "NRT", "SIN", "GRU",
];
const COUNTRIES: [&str; 14] = [
    "US", "DE", "GB", "FR", "NL", "IN", "BR", "JP", "CA", "ES", "IT", "PL", "SE", "AU",
];
const SOURCES: [(&str, &str); 6] = [
    ("google", "organic"),
    ("twitter", "social"),
    ("newsletter", "email"),
    ("github", "referral"),
    ("bing", "organic"),
    ("hn", "referral"),
];
const CAMPAIGNS: [&str; 4] = ["launch", "spring-sale", "webinar", "retargeting"];
const VARIANTS: [&str; 5] = ["w320", "w640", "w1024", "w1920", "webp"];
const ERRORS: [(&str, &str); 5] = [
    ("TimeoutError", "upstream did not answer within 10 s"),
    ("DatabaseError", "connection reset by peer"),
    ("ValidationError", "field `email` is not an address"),
    ("RateLimited", "too many requests from this key"),
    ("PaymentDeclined", "card declined: insufficient funds"),
];

/// A workload: how many events, over how many days, for which project.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    pub project: &'a str,
    pub events: u64,
    /// The events lie in the `days` × 24 hours before `now_ms`'s hour, and in that hour.
    pub days: u32,
    pub now_ms: i64,
    /// The secret identifiers are hashed with (ingest's `ID_SECRET`).
    pub id_secret: &'a [u8],
    pub seed: u64,
}

impl<'a> Workload<'a> {
    /// How many events each hour holds, oldest hour first: the total split over the
    /// hours in proportion to a daily curve (twice as busy at 15:00 as at 03:00 UTC)
    /// that grows by half over the span, by largest remainders so they add up exactly.
    pub fn hours(&self) -> Vec<(i64, u64)> {
        let last = Interval::Hour.floor(self.now_ms);
        let count = i64::from(self.days) * 24 + 1;
        let first = last - (count - 1) * HOUR_MS;
        let weights: Vec<f64> = (0..count)
            .map(|h| {
                let at = first + h * HOUR_MS;
                let hour = (at.rem_euclid(DAY_MS) / HOUR_MS) as f64;
                let daily = 1.0 - (std::f64::consts::TAU * (hour - 3.0) / 24.0).cos() / 3.0;
                let growth = 1.0 + 0.5 * h as f64 / count as f64;
                daily * growth
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let shares: Vec<f64> = weights
            .iter()
            .map(|w| w / total * self.events as f64)
            .collect();
        let mut counts: Vec<u64> = shares.iter().map(|s| s.floor() as u64).collect();
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by(|&a, &b| {
            let frac = |i: usize| shares[i] - shares[i].floor();
            frac(b).total_cmp(&frac(a)).then(a.cmp(&b))
        });
        let missing = self.events - counts.iter().sum::<u64>();
        for &i in order.iter().take(missing as usize) {
            counts[i] += 1;
        }
        (0..count)
            .map(|h| first + h * HOUR_MS)
            .zip(counts)
            .collect()
    }

    /// Every event, hour by hour, oldest hour first.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        let mut rng = SplitMix64(self.seed);
        let mut number = 0u64;
        self.hours().into_iter().flat_map(move |(start, n)| {
            let events: Vec<Event> = (0..n)
                .map(|_| {
                    number += 1;
                    self.event(number, start, &mut rng)
                })
                .collect();
            events
        })
    }

    /// Event number `n` (its id), somewhere in the hour from `hour`.
    fn event(&self, n: u64, hour: i64, rng: &mut SplitMix64) -> Event {
        let at = (hour + rng.below(HOUR_MS as u64) as i64).min(self.now_ms);
        let raw = self.raw(n, at, rng);
        let ctx = Context {
            project: self.project,
            now_ms: self.now_ms,
            settings: Settings::default(),
            id_secret: self.id_secret,
        };
        match validate(raw, &ctx, &mut || unreachable!("every event has an id")) {
            Ok(accepted) => accepted.event,
            Err(rejection) => panic!("the workload made an invalid event: {rejection:?}"),
        }
    }

    fn raw(&self, n: u64, at: i64, rng: &mut SplitMix64) -> RawEvent {
        let pick = |rng: &mut SplitMix64, list: &[&'static str]| -> Option<String> {
            Some(list[skewed(rng, list.len())].to_owned())
        };
        let user = rng.below(USERS);
        let mut e = RawEvent {
            event_id: Some(format!(
                "{:08x}-{:04x}-4000-8000-{n:012x}",
                self.seed as u32,
                (self.seed >> 32) as u16
            )),
            project: Some(self.project.to_owned()),
            timestamp: Some(Value::from(at)),
            colo: pick(rng, &COLOS),
            country: pick(rng, &COUNTRIES),
            user: Some(format!("user-{user}")),
            ..RawEvent::default()
        };
        let kind = rng.below(1000);
        match kind {
            // API requests from the plugin's instances.
            0..=549 => {
                let route = skewed(rng, ROUTES.len());
                e.name = Some("request".into());
                e.method = Some(if rng.below(4) == 0 { "POST" } else { "GET" }.into());
                e.route = Some(ROUTES[route].into());
                e.instance = Some(format!("site-{}", skewed(rng, INSTANCES as usize)));
                e.version = pick(rng, &VERSIONS);
                // Slower routes further down the list; a slow tail on exports.
                let median = 20.0 + 8.0 * route as f64;
                let tail = if route == 10 { 4.0 } else { 1.0 };
                e.duration_ms = Some(round3(rng.lognormal(median, 0.7) * tail));
                e.bytes = Some(200 + rng.below(20_000) as i64);
                let roll = rng.below(1000);
                e.status = Some(match roll {
                    0..=14 => 500,
                    15..=24 => 503,
                    25..=79 => 404,
                    80..=99 => 401,
                    _ => 200,
                });
                if roll < 25 || rng.below(200) == 0 {
                    let (class, message) = ERRORS[skewed(rng, ERRORS.len())];
                    e.error_class = Some(class.into());
                    e.error_message = Some(format!("{message} (#{})", rng.below(50)));
                }
            }
            // Page views from visitors, with their sources and campaigns.
            550..=749 => {
                e.name = Some("pageview".into());
                e.route = pick(rng, &PAGES);
                e.duration_ms = Some(round3(rng.lognormal(120.0, 0.5)));
                e.bytes = Some(5_000 + rng.below(60_000) as i64);
                if rng.below(3) > 0 {
                    let (source, medium) = SOURCES[skewed(rng, SOURCES.len())];
                    e.source = Some(source.into());
                    e.medium = Some(medium.into());
                    if rng.below(3) == 0 {
                        e.campaign = pick(rng, &CAMPAIGNS);
                    }
                }
            }
            // Images served by the CDN.
            750..=879 => {
                e.name = Some("image".into());
                e.item = Some(format!("img-{}", skewed(rng, IMAGES as usize)));
                e.variant = pick(rng, &VARIANTS);
                e.status = Some(if rng.below(100) == 0 { 404 } else { 200 });
                e.duration_ms = Some(round3(rng.lognormal(8.0, 0.9)));
                e.bytes = Some(20_000 + rng.below(400_000) as i64);
                e.user = None;
            }
            // Funnel steps: fewer users reach each later step.
            880..=939 => {
                let step = match rng.below(100) {
                    0..=49 => 0,
                    50..=79 => 1,
                    80..=94 => 2,
                    _ => 3,
                };
                e.name = Some(FUNNEL[step].into());
                e.user = Some(self.daily_user("f", at, 0.06, rng));
            }
            // Play/stop sessions.
            940..=979 => {
                e.name = Some(SESSION[usize::from(rng.below(2) == 1)].into());
                e.user = Some(self.daily_user("s", at, 0.04, rng));
                e.version = pick(rng, &VERSIONS);
            }
            // Installs and heartbeats of instances.
            _ => {
                e.name = Some(if kind < 990 { "install" } else { "heartbeat" }.into());
                e.instance = Some(format!("site-{}", rng.below(INSTANCES)));
                e.version = pick(rng, &VERSIONS);
                e.user = None;
            }
        }
        e
    }
}

impl Workload<'_> {
    /// A user of one UTC day who sends about four of the events that make up `share`
    /// of all events, so that funnel steps and session marks of one user fall within a
    /// day of each other, in random order, as a person's would.
    fn daily_user(&self, kind: &str, at: i64, share: f64, rng: &mut SplitMix64) -> String {
        let per_day = self.events as f64 * share / f64::from(self.days.max(1));
        let users = (per_day / 4.0).max(1.0) as u64;
        format!("user-{kind}{}-{}", at.div_euclid(DAY_MS), rng.below(users))
    }
}

/// An index in `0..len`, lower ones more likely (roughly Zipf-like: the first of ten is
/// picked about five times as often as the last).
fn skewed(rng: &mut SplitMix64, len: usize) -> usize {
    let u = rng.unit();
    ((u * u * len as f64) as usize).min(len - 1)
}

/// Milliseconds to the microsecond, as stored.
fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    fn workload(events: u64) -> Workload<'static> {
        Workload {
            project: "bench",
            events,
            days: 3,
            // 2025-01-10T12:34:56Z.
            now_ms: 1_736_512_496_000,
            id_secret: b"secret",
            seed: 7,
        }
    }

    #[test]
    fn hours_hold_every_event_once_in_order() {
        let w = workload(10_000);
        let hours = w.hours();
        assert_eq!(hours.len(), 3 * 24 + 1);
        assert_eq!(hours.iter().map(|h| h.1).sum::<u64>(), 10_000);
        assert_eq!(hours.last().unwrap().0, Interval::Hour.floor(w.now_ms));
        let events: Vec<Event> = w.iter().collect();
        assert_eq!(events.len(), 10_000);
        let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids.len(), 10_000, "ids are unique");
        let hour_of = |e: &Event| Interval::Hour.floor(e.timestamp);
        assert!(events.windows(2).all(|p| hour_of(&p[0]) <= hour_of(&p[1])));
        assert!(events.iter().all(|e| e.timestamp <= w.now_ms));
    }

    #[test]
    fn the_same_seed_makes_the_same_events() {
        let a: Vec<Event> = workload(500).iter().collect();
        let b: Vec<Event> = workload(500).iter().collect();
        assert_eq!(a, b);
        let other = Workload {
            seed: 8,
            ..workload(500)
        };
        assert_ne!(a, other.iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_mix_has_every_kind_of_event() {
        let events: Vec<Event> = workload(20_000).iter().collect();
        let mut names: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &events {
            *names.entry(e.name.as_str()).or_default() += 1;
        }
        for name in FUNNEL.iter().chain(&SESSION).chain(&[
            "request",
            "pageview",
            "image",
            "install",
            "heartbeat",
        ]) {
            assert!(
                names.get(name).copied().unwrap_or(0) > 20,
                "{name}: {names:?}"
            );
        }
        let share = |f: &dyn Fn(&Event) -> bool| {
            events.iter().filter(|e| f(e)).count() as f64 / events.len() as f64
        };
        assert!((0.005..0.05).contains(&share(&|e| e.error_class.is_some())));
        assert!((0.005..0.05).contains(&share(&|e| e.status.is_some_and(|s| s >= 500))));
        assert!(share(&|e| e.campaign.is_some()) > 0.01);
        assert!(share(&|e| e.variant.is_some()) > 0.05);
        assert!(
            events
                .iter()
                .all(|e| e.country.is_some() && e.colo.is_some())
        );
        // Users go through the funnel and hold sessions, as people do.
        let hits: Vec<crate::funnel::Hit> = events
            .iter()
            .filter(|e| FUNNEL.contains(&e.name.as_str()))
            .map(|e| crate::funnel::Hit {
                user: e.user.clone().unwrap(),
                timestamp: e.timestamp,
                event_id: e.event_id.clone(),
                name: e.name.clone(),
            })
            .collect();
        let steps: Vec<String> = FUNNEL.iter().map(|s| (*s).to_owned()).collect();
        let through = crate::funnel::count(hits, &steps, DAY_MS);
        assert!(through[0] > 100 && through[3] > 0, "{through:?}");
        assert!(through.windows(2).all(|p| p[0] > p[1]), "{through:?}");
        let marks: Vec<crate::sessions::Mark> = events
            .iter()
            .filter(|e| SESSION.contains(&e.name.as_str()))
            .map(|e| crate::sessions::Mark {
                user: e.user.clone().unwrap(),
                timestamp: e.timestamp,
                event_id: e.event_id.clone(),
                is_start: e.name == SESSION[0],
            })
            .collect();
        let marks_sent = marks.len();
        let sessions = crate::sessions::pair(marks).len();
        assert!(
            sessions * 4 > marks_sent,
            "{sessions} of {marks_sent} marks"
        );
        // Identifiers are hashed, never stored raw.
        assert!(
            events
                .iter()
                .filter_map(|e| e.user.as_deref())
                .all(|u| !u.starts_with("user-"))
        );
    }
}
