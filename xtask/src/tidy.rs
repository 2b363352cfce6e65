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

    /// The query worker's wings, each serving one audience; they import only the ground
    /// floor and their own modules.
    const QUERY_WINGS: [&str; 7] = [
        "admin",
        "read",
        "aliases",
        "dashboard",
        "badge",
        "health",
        "openapi",
    ];
    /// The query worker's ground floor, which imports no wing.
    const QUERY_FLOOR: [&str; 3] = ["edge", "access", "route"];

    /// The module path of a source file below `src/`: `lib.rs` is the crate root (`[]`),
    /// `a/mod.rs` and `a.rs` are `[a]`, `a/b.rs` is `[a, b]`.
    fn module_of(file: &str) -> Vec<String> {
        let mut path: Vec<String> = file
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        if path
            .last()
            .is_some_and(|last| last == "mod" || last == "lib")
        {
            path.pop();
        }
        path
    }

    /// The paths a source names through `crate::`, `super::` or `self::`, each as written
    /// (`["super", "scope", "range_json"]`), with `use` groups expanded. Comments and the
    /// test module (from `#[cfg(test)]` on) are left out.
    fn named_paths(source: &str) -> Vec<Vec<String>> {
        let code: String = source
            .lines()
            .take_while(|l| l.trim() != "#[cfg(test)]")
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let chars: Vec<char> = code.chars().collect();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let at_start = i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':');
            let rest: String = chars[i..chars.len().min(i + 8)].iter().collect();
            if at_start
                && ["crate::", "super::", "self::"]
                    .iter()
                    .any(|p| rest.starts_with(p))
            {
                let (paths, end) = path_at(&chars, i);
                out.extend(paths);
                i = end;
            } else {
                i += 1;
            }
        }
        out
    }

    /// The paths of the path (or `use` tree) that starts at `chars[i]`, and where it ends.
    fn path_at(chars: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut prefix = Vec::new();
        loop {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if chars.get(i) == Some(&'{') {
                // A group: `{a, b::c, self}`, each member under the prefix.
                let mut paths = Vec::new();
                i += 1;
                loop {
                    while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                        i += 1;
                    }
                    if i >= chars.len() || chars[i] == '}' {
                        return (paths, i + 1);
                    }
                    let (members, end) = path_at(chars, i);
                    for member in members {
                        let mut path = prefix.clone();
                        if member != ["self"] {
                            path.extend(member);
                        }
                        paths.push(path);
                    }
                    i = end;
                }
            }
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            if start == i {
                return (vec![prefix], i);
            }
            prefix.push(chars[start..i].iter().collect());
            if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
                i += 2;
            } else {
                return (vec![prefix], i);
            }
        }
    }

    /// What breaks the query worker's import rules in `files` (paths below `src/` and
    /// their text): a wing that imports another wing, the floor importing a wing, a
    /// module importing the crate root, a module in no floor, and any two modules that
    /// import each other, however indirectly.
    fn query_import_problems(files: &[(String, String)]) -> Vec<String> {
        let modules: Vec<Vec<String>> = files.iter().map(|(f, _)| module_of(f)).collect();
        let mut problems = Vec::new();
        let mut edges: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for ((file, text), module) in files.iter().zip(&modules) {
            let Some(top) = module.first() else {
                continue; // The crate root routes to every wing.
            };
            let is_wing = QUERY_WINGS.contains(&top.as_str());
            if !is_wing && !QUERY_FLOOR.contains(&top.as_str()) {
                problems.push(format!("{file}: `{top}` is neither a wing nor the floor"));
            }
            for path in named_paths(text) {
                let mut absolute: Vec<String> = match path[0].as_str() {
                    "crate" => Vec::new(),
                    "self" => module.clone(),
                    _ => {
                        // `super::` of `a/b.rs` is `a`; of `a/mod.rs`, the crate root.
                        let mut m = module.clone();
                        m.pop();
                        m
                    }
                };
                absolute.extend(path[1..].iter().cloned());
                let target = (0..=absolute.len())
                    .rev()
                    .map(|n| absolute[..n].to_vec())
                    .find(|prefix| modules.contains(prefix))
                    .unwrap_or_default();
                if &target == module {
                    continue;
                }
                let shown = format!("{file} imports `{}`", path.join("::"));
                match target.first().map(String::as_str) {
                    None => problems.push(format!("{shown}: the crate root")),
                    Some(other) if other == top => {}
                    Some(other) if QUERY_FLOOR.contains(&other) => {}
                    Some(other) if is_wing => {
                        problems.push(format!("{shown}: wing `{top}` imports wing `{other}`"))
                    }
                    Some(other) => {
                        problems.push(format!("{shown}: the floor imports wing `{other}`"))
                    }
                }
                if !edges.contains(&(module.clone(), target.clone())) {
                    edges.push((module.clone(), target));
                }
            }
        }
        // Two modules in a cycle: each reaches the other.
        let reaches = |from: &Vec<String>, to: &Vec<String>| {
            let mut seen = vec![from.clone()];
            let mut next = vec![from.clone()];
            while let Some(m) = next.pop() {
                for (a, b) in &edges {
                    if *a == m && !seen.contains(b) {
                        seen.push(b.clone());
                        next.push(b.clone());
                    }
                }
            }
            seen.contains(to)
        };
        for (a, b) in &edges {
            if reaches(b, a) {
                problems.push(format!(
                    "`{}` imports `{}`, which imports it back",
                    a.join("::"),
                    b.join("::")
                ));
            }
        }
        problems
    }

    /// The query worker has a ground floor (`edge`, `access`, `route`) and wings by
    /// audience that import only the floor; no module imports one that imports it back.
    #[test]
    fn query_wings_import_only_the_ground_floor() {
        let src = root().join("workers/query/src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        let files: Vec<(String, String)> = paths
            .iter()
            .map(|p| {
                let name = p.strip_prefix(&src).unwrap().display().to_string();
                (name, std::fs::read_to_string(p).unwrap())
            })
            .collect();
        assert!(files.len() > 30, "found only {} files", files.len());
        let problems = query_import_problems(&files);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_import_check_sees_what_it_forbids() {
        let file = |name: &str, text: &str| (name.to_owned(), text.to_owned());
        let files = [
            file("lib.rs", "mod read;\nmod admin;\nmod edge;"),
            file("edge/mod.rs", "pub fn store() {}"),
            file("edge/respond.rs", "use super::{self, store};"),
            file(
                "read/mod.rs",
                "// crate::admin in a comment\nuse crate::edge::{respond::json, store};",
            ),
            file("read/alerts.rs", "use crate::{admin::alerts::rules, edge};"),
            file("read/scope.rs", "fn f() { super::alerts::x(); }"),
            file("admin/alerts.rs", "fn f() { crate::read::scope::g(); }"),
            file("admin/mod.rs", "use self::alerts::y;"),
            file("admin/projects.rs", "use crate::edge;"),
            file("badge.rs", "use crate::RequestEnv;"),
            file("stray.rs", "#[cfg(test)]\nmod tests { use crate::admin; }"),
        ];
        let files: Vec<(String, String)> = files.into_iter().collect();
        let problems = query_import_problems(&files);
        let expected = [
            "read/alerts.rs imports `crate::admin::alerts::rules`: wing `read` imports wing `admin`",
            "admin/alerts.rs imports `crate::read::scope::g`: wing `admin` imports wing `read`",
            "badge.rs imports `crate::RequestEnv`: the crate root",
            "stray.rs: `stray` is neither a wing nor the floor",
            "`read::alerts` imports `admin::alerts`, which imports it back",
        ];
        for e in expected {
            assert!(problems.iter().any(|p| p == e), "{e} in {problems:#?}");
        }
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }
}
