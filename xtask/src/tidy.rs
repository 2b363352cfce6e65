//! Project rules, checked as tests (in the manner of rust-analyzer's `tidy.rs`).

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::tools::root;
    use tally_core::jobs::Job;

    fn read(path: &str) -> String {
        std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() && name != "build" && name != "target" {
                rust_files(&path, out);
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_source_file_starts_with_a_doc_line() {
        let mut files = Vec::new();
        for dir in ["crates", "workers", "xtask", "e2e"] {
            rust_files(&root().join(dir), &mut files);
        }
        assert!(files.len() > 10, "found only {} files", files.len());
        let missing: Vec<String> = files
            .iter()
            .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
            .map(|f| f.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a leading `//!` line: {missing:?}"
        );
    }

    #[test]
    fn aggregator_crons_are_the_core_jobs() {
        let toml = read("wrangler/aggregator.toml");
        let line = toml
            .lines()
            .find(|l| l.trim_start().starts_with("crons"))
            .expect("aggregator.toml has [triggers] crons");
        let listed: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        let jobs: Vec<&str> = Job::ALL.iter().map(|j| j.cron()).collect();
        assert_eq!(
            listed, jobs,
            "wrangler/aggregator.toml crons vs tally_core::jobs"
        );
    }

    #[test]
    fn rate_limit_tiers_have_their_bindings() {
        use tally_core::project::RateLimit;
        let toml = read("wrangler/ingest.toml");
        for tier in RateLimit::ALL {
            let (Some(binding), Some(limit)) = (tier.binding(), tier.requests()) else {
                continue;
            };
            let at = toml
                .find(&format!("name = \"{binding}\""))
                .unwrap_or_else(|| panic!("wrangler/ingest.toml lacks ratelimit {binding}"));
            let simple = toml[at..]
                .lines()
                .find(|l| l.starts_with("simple"))
                .unwrap_or_default();
            let expected = format!(
                "simple = {{ limit = {limit}, period = {} }}",
                RateLimit::PERIOD_S
            );
            assert_eq!(simple, expected, "{binding}");
        }
    }

    /// The file of a worker that holds its binding names and its clock: `lib.rs`, but
    /// for the query worker its ground floor, `edge/mod.rs`.
    fn environment_file(worker: &str) -> String {
        let file = if worker == "query" {
            "edge/mod.rs"
        } else {
            "lib.rs"
        };
        format!("workers/{worker}/src/{file}")
    }

    /// A worker reads the wall clock in one function, so every time it uses is that
    /// function's (and a test double or a clippy rule has one place to look).
    #[test]
    fn workers_read_the_clock_in_one_function() {
        for worker in crate::bundle::WORKERS {
            let mut files = Vec::new();
            rust_files(&root().join("workers").join(worker).join("src"), &mut files);
            let reads: Vec<String> = files
                .iter()
                .flat_map(|f| {
                    let text = std::fs::read_to_string(f).unwrap();
                    let name = f.strip_prefix(root()).unwrap().display().to_string();
                    text.lines()
                        .enumerate()
                        .filter(|(_, l)| {
                            ["Date::now", "Date::new", "SystemTime", "Instant::now"]
                                .iter()
                                .any(|clock| l.contains(clock))
                        })
                        .map(|(i, _)| format!("{name}:{}", i + 1))
                        .collect::<Vec<_>>()
                })
                .collect();
            let file = environment_file(worker);
            assert!(
                reads.len() == 1 && reads[0].starts_with(&format!("{file}:")),
                "workers/{worker} reads the clock at {reads:?}; only `now_ms` in {file} may"
            );
            assert!(read(&file).contains("pub fn now_ms() -> i64 {"));
        }
    }

    #[test]
    fn no_worker_keeps_invocation_logs() {
        // Invocation logs hold each request's IP headers, user agent and URL (with
        // `?key=` and `?share=`): privacy as promised means none are kept.
        for worker in crate::bundle::WORKERS {
            let config: toml::Table = read(&format!("wrangler/{worker}.toml")).parse().unwrap();
            let logs = &config["observability"]["logs"];
            assert_eq!(
                logs.get("invocation_logs").and_then(toml::Value::as_bool),
                Some(false),
                "wrangler/{worker}.toml must set [observability.logs] invocation_logs = false"
            );
        }
    }

    #[test]
    fn binding_constants_match_the_wrangler_configs() {
        for worker in crate::bundle::WORKERS {
            let source = read(&environment_file(worker));
            let config = read(&format!("wrangler/{worker}.toml"));
            let bindings: Vec<&str> = source
                .lines()
                .filter_map(|l| l.strip_prefix("pub const "))
                .filter(|l| l.contains(": &str = \""))
                .filter_map(|l| l.split('"').nth(1))
                .collect();
            assert!(
                !bindings.is_empty(),
                "{worker} declares no binding constants"
            );
            let secrets = config
                .lines()
                .find_map(|l| l.strip_prefix("# Secrets:"))
                .unwrap_or_default();
            let table: toml::Table = config.parse().unwrap();
            let vars = table.get("vars").and_then(toml::Value::as_table);
            for binding in bindings {
                let declared = config.contains(&format!("binding = \"{binding}\""))
                    || config.contains(&format!("queue = \"{binding}\""))
                    || vars.is_some_and(|v| v.contains_key(binding))
                    || config.contains(&format!("name = \"{binding}\""))
                    || secrets.split([' ', ',', '(']).any(|s| s == binding);
                assert!(
                    declared,
                    "workers/{worker} uses binding {binding:?}, which wrangler/{worker}.toml lacks"
                );
            }
        }
    }
}
