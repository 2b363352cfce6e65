//! End-to-end tests: real HTTP against the four workers running under local workerd.
//!
//! `cargo xtask test` starts the stack on free ports and passes the URLs in
//! `TALLY_INGEST_URL`, `TALLY_QUERY_URL`, `TALLY_AGGREGATOR_URL` and `TALLY_FRONT_URL`.
//! Every test uses its own project slug, so tests run in parallel against one stack.

mod alerts;
mod alerts_api;
mod aliases;
mod context;
mod dashboard;
mod dashboard_filters;
mod digest;
mod erasure;
mod filtered_reports;
mod filters;
mod front;
mod funnel;
mod hostile;
mod ingest;
mod keyless;
mod layout;
mod middleware;
mod moves;
mod openapi;
mod pipeline;
mod projects;
mod query;
mod realtime;
mod revenue;
mod shards;
mod support;
mod surface;
mod validation;
