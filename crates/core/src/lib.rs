//! Tally's pure core: the event model, validation, queue-message packing and SQL text.
//!
//! # Brief overview
//!
//! - [`RawEvent`] is what a client sends; [`validate()`] turns it into an [`Event`] (or a
//!   [`Rejection`] a person can act on), given the current time and an id source.
//! - [`queue::pack`] packs validated events into queue messages within the Queue limits.
//! - [`sketch::Sketch`] (quantiles within 1%) and [`hll::Hll`] (distinct counts with a
//!   1.6% standard error, 99% of counts within 5%) are the mergeable summaries every rollup row keeps; both encode to compact,
//!   versioned, canonical bytes.
//! - [`idempotency`] checks `Idempotency-Key` headers and derives event ids from them.
//! - [`hash`] turns raw identifiers into hashes; [`time`] and [`range`] give UTC buckets
//!   and query ranges.
//! - [`funnel::count`] counts the users who went through ordered steps within a window.
//! - [`sql`] holds every SQL statement Tally runs; values are always bound parameters.
//! - [`plausible::parse`] reads a Plausible Events API request as a [`RawEvent`];
//!   [`plausible::is_bot`] tells crawlers and scripts from people by user agent.
//! - [`revenue::of`] reads the revenue an event carries, in thousandths of its currency.
//! - [`alerts`] evaluates alert rules from minute rollups and signs their webhooks.
//! - [`realtime`] shapes the last 30 minutes from minute rollups: every minute filled,
//!   top values, the visitor count's row budget.
//! - [`digest`] schedules daily and weekly digests, finds their movers and writes their
//!   signed bodies.
//! - [`share`] signs and checks dashboard share links (HMAC-SHA256 over project and expiry).
//! - `testing` and `workload` (feature `test-utils`) generate reproducible data for other
//!   crates' tests and benchmarks from a seed they are given.
//!
//! This crate never touches the clock, the network, storage or randomness: `now`, ids and
//! salts are arguments, so every rule is deterministic and testable natively and on wasm32.

pub mod alerts;
pub mod digest;
pub mod event;
pub mod filter;
pub mod funnel;
pub mod gzip;
pub mod hash;
pub mod hll;
pub mod idempotency;
pub mod jobs;
pub mod json;
pub mod plausible;
pub mod project;
pub mod queue;
pub mod range;
pub mod realtime;
pub mod revenue;
pub mod rollup;
pub mod sessions;
pub mod share;
pub mod sketch;
pub mod sql;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod time;
pub mod validate;
pub mod varint;
#[cfg(any(test, feature = "test-utils"))]
pub mod workload;

mod error;

pub use error::Error;
pub use event::{Event, RawEvent};
pub use validate::{Accepted, Context, Rejection, Settings, Warning, validate};
