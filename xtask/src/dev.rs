//! `cargo xtask dev`: the whole stack on 127.0.0.1, until Ctrl-C.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::stack::{Config, Ports, Stack};
use crate::tools::root;
use crate::{bundle, proc, step, tools};

/// The first port of the dev stack, unless `TALLY_DEV_PORT` says otherwise.
const DEFAULT_PORT: u16 = 8787;

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask dev` takes no argument {arg:?}; set TALLY_DEV_PORT to move its ports");
    }
    let base = match std::env::var("TALLY_DEV_PORT") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("TALLY_DEV_PORT={v:?} is not a port number"))?,
        Err(_) => DEFAULT_PORT,
    };
    let started = Instant::now();
    tools::ensure()?;
    bundle::build_all()?;
    let mut stack = Stack::start(Config {
        dir: root().join(".tally/dev"),
        ports: Ports::fixed(base),
        echo: true,
    })
    .context("the local stack did not start")?;

    let (ingest, query, aggregator) = (
        stack.url("ingest"),
        stack.url("query"),
        stack.url("aggregator"),
    );
    step(&format!(
        "Tally is running (ready in {:.1} s). Ctrl-C stops it.",
        started.elapsed().as_secs_f64()
    ));
    println!(
        "  ingest      {ingest}      POST /v1/events
  query       {query}      GET /v1/projects/{{project}}/overview, /v1/health
  aggregator  {aggregator}      cron: GET /cdn-cgi/handler/scheduled?cron=*+*+*+*+*
  state       .tally/dev/ (delete it to start afresh); logs in .tally/dev/logs/

Send a first event and read it back:
  curl -X POST {ingest}/v1/events -H 'content-type: application/json' \\
       -d '[{{\"project\":\"demo\",\"name\":\"request\",\"route\":\"/hello\",\"status\":200,\"duration_ms\":12}}]'
  curl {query}/v1/projects/demo/overview"
    );

    loop {
        std::thread::sleep(Duration::from_millis(500));
        if proc::interrupted() {
            // The interrupt handler stops the workers and exits with 130.
            continue;
        }
        if let Some((worker, status)) = stack.exited() {
            stack.stop();
            bail!("{worker} stopped unexpectedly ({status}); see .tally/dev/logs/{worker}.log");
        }
    }
}
