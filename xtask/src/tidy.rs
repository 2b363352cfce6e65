//! Project rules, checked as tests (in the manner of rust-analyzer's `tidy.rs`). Rules
//! about code read its tokens ([`lex`]), not its lines.

#[cfg(test)]
mod lex;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::lex::{self, Token};
    use crate::stack::tools::root;
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
    /// function's (and a test double or a clippy rule has one place to look); a worker
    /// that needs no time (the front) reads it nowhere.
    #[test]
    fn workers_read_the_clock_in_one_function() {
        for worker in crate::stack::bundle::WORKERS {
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
            let has_now_ms = read(&file).contains("pub fn now_ms() -> i64 {");
            assert!(
                (reads.len() == 1 && reads[0].starts_with(&format!("{file}:")) && has_now_ms)
                    || (reads.is_empty() && !has_now_ms),
                "workers/{worker} reads the clock at {reads:?}; only `now_ms` in {file} may"
            );
        }
    }

    #[test]
    fn no_worker_keeps_invocation_logs() {
        // Invocation logs hold each request's IP headers, user agent and URL (with
        // `?key=` and `?share=`): privacy as promised means none are kept.
        for worker in crate::stack::bundle::WORKERS {
            let config: toml::Table = read(&format!("wrangler/{worker}.toml")).parse().unwrap();
            let logs = &config["observability"]["logs"];
            assert_eq!(
                logs.get("invocation_logs").and_then(toml::Value::as_bool),
                Some(false),
                "wrangler/{worker}.toml must set [observability.logs] invocation_logs = false"
            );
        }
    }

    /// The tokens of every `.rs` file under `dir` (relative to the root), by path.
    fn sources(dir: &str) -> Vec<(String, Vec<Token>)> {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        files.sort();
        files
            .iter()
            .map(|f| {
                let name = f.strip_prefix(root()).unwrap().display().to_string();
                (name, lex::tokens(&std::fs::read_to_string(f).unwrap()))
            })
            .collect()
    }

    /// Fails with every violation found, one per line.
    fn assert_none(violations: &[String], rule: &str) {
        let mut violations = violations.to_vec();
        violations.dedup();
        assert!(
            violations.is_empty(),
            "{rule}:\n  {}",
            violations.join("\n  ")
        );
    }

    /// The binding names a worker looks up (`env.d1(DB)`, `env.secret("X")`, ...) in
    /// any of its files, each a string literal or a `const` declared in one of them.
    /// Lookups by a computed name are listed in `COMPUTED` with where their names are
    /// checked.
    /// Returns the names and the lookups it could not resolve.
    fn binding_lookups(worker: &str) -> (Vec<String>, Vec<String>) {
        const LOOKUPS: [&str; 14] = [
            "d1",
            "kv",
            "queue",
            "var",
            "secret",
            "rate_limiter",
            "durable_object",
            "service",
            "bucket",
            "assets",
            "hyperdrive",
            "analytics_engine",
            "object_var",
            "ai",
        ];
        const COMPUTED: [(&str, &str, &str); 4] = [
            (
                "ingest",
                "rate_limiter(binding)",
                "a tier's binding: rate_limit_tiers_have_their_bindings",
            ),
            (
                "aggregator",
                "var(name)",
                "QueueNames::from_env's closure, called with lib.rs's consts",
            ),
            (
                "aggregator",
                "d1(&tally_storage::d1::shard_binding(n))",
                "the data shards: shard_bindings_are_numbered_from_zero_and_alike",
            ),
            (
                "query",
                "d1(name)",
                "edge::store's closure, called with DB and the data shards' names: \
                 shard_bindings_are_numbered_from_zero_and_alike",
            ),
        ];
        let files = sources(&format!("workers/{worker}/src"));
        let mut consts = std::collections::BTreeMap::new();
        for (_, tokens) in &files {
            // `const NAME: &str = "value";` (or `&'static str`).
            for (i, t) in tokens.iter().enumerate() {
                let Some(name) = tokens.get(i + 1).and_then(Token::ident) else {
                    continue;
                };
                let Some(eq) = tokens[i..].iter().take(8).position(|t| t.is_punct('=')) else {
                    continue;
                };
                let is_str = tokens[i..i + eq].iter().any(|t| t.is_ident("str"));
                if t.is_ident("const")
                    && is_str
                    && let Some(value) = tokens.get(i + eq + 1).and_then(Token::str)
                {
                    consts.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let (mut names, mut unresolved) = (Vec::new(), Vec::new());
        for (file, tokens) in &files {
            for i in 0..tokens.len().saturating_sub(3) {
                let Some(method) = tokens[i + 1].ident() else {
                    continue;
                };
                if !tokens[i].is_punct('.')
                    || !LOOKUPS.contains(&method)
                    || !tokens[i + 2].is_punct('(')
                {
                    continue;
                }
                let args = &tokens[i + 3..lex::close(tokens, i + 2) - 1];
                let line = tokens[i].line;
                match args {
                    [] => {} // `batch.queue()`: a batch's queue name, not a lookup.
                    [t] if t.str().is_some() => names.push(t.str().unwrap().to_owned()),
                    [.., last] if last.ident().is_some_and(|n| consts.contains_key(n)) => {
                        names.push(consts[last.ident().unwrap()].clone());
                    }
                    _ => {
                        let text: String = args
                            .iter()
                            .map(|t| match &t.kind {
                                lex::Kind::Ident(i) => i.clone(),
                                lex::Kind::Punct(c) => c.to_string(),
                                _ => "…".into(),
                            })
                            .collect();
                        let call = format!("{method}({text})");
                        if !COMPUTED.iter().any(|&(w, c, _)| w == worker && c == call) {
                            unresolved.push(format!("{file}:{line}: .{call}"));
                        }
                    }
                }
            }
        }
        (names, unresolved)
    }

    /// Every binding a worker looks up, in any of its files, and every binding constant
    /// of its `lib.rs`, is declared in its wrangler config (as a binding, a queue, a var,
    /// a rate limit or a secret).
    #[test]
    fn binding_names_match_the_wrangler_configs() {
        let mut violations = Vec::new();
        for worker in crate::stack::bundle::WORKERS {
            let source = read(&environment_file(worker));
            let config = read(&format!("wrangler/{worker}.toml"));
            let mut bindings: Vec<String> = source
                .lines()
                .filter_map(|l| l.strip_prefix("pub const "))
                .filter(|l| l.contains(": &str = \""))
                .filter_map(|l| l.split('"').nth(1))
                .map(str::to_owned)
                .collect();
            let (names, unresolved) = binding_lookups(worker);
            assert!(!names.is_empty(), "workers/{worker} looks up no binding");
            bindings.extend(names);
            violations.extend(
                unresolved.into_iter().map(|u| {
                    format!("{u}: name the binding with a string or a const of the worker")
                }),
            );
            bindings.sort();
            bindings.dedup();
            let secrets = config
                .lines()
                .find_map(|l| l.strip_prefix("# Secrets:"))
                .unwrap_or_default();
            let table: toml::Table = config.parse().unwrap();
            let vars = table.get("vars").and_then(toml::Value::as_table);
            for binding in bindings {
                let declared = config.contains(&format!("binding = \"{binding}\""))
                    || config.contains(&format!("queue = \"{binding}\""))
                    || vars.is_some_and(|v| v.contains_key(&binding))
                    || config.contains(&format!("name = \"{binding}\""))
                    || secrets.split([' ', ',', '(']).any(|s| s == binding);
                if !declared {
                    violations.push(format!(
                        "workers/{worker} uses binding {binding:?}, which wrangler/{worker}.toml lacks"
                    ));
                }
            }
        }
        assert_none(&violations, "bindings the configs lack");
    }

    /// The data shards' bindings (`SHARD_0` …) of the two workers that bind them are
    /// numbered from 0 without a gap (a worker binds the first ones it finds, so a gap
    /// would hide the shards after it) and name the same databases in both configs
    /// (the aggregator writes a project's data where the query worker reads it).
    #[test]
    fn shard_bindings_are_numbered_from_zero_and_alike() {
        let shards = |worker: &str| -> Vec<(String, String)> {
            let table: toml::Table = read(&format!("wrangler/{worker}.toml")).parse().unwrap();
            table
                .get("d1_databases")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|db| {
                    let binding = db.get("binding")?.as_str()?;
                    binding.starts_with("SHARD_").then(|| {
                        let name = db.get("database_name").and_then(toml::Value::as_str);
                        (binding.to_owned(), name.unwrap_or_default().to_owned())
                    })
                })
                .collect()
        };
        let aggregator = shards("aggregator");
        assert!(
            !aggregator.is_empty(),
            "wrangler/aggregator.toml binds no SHARD_0"
        );
        for (n, (binding, _)) in aggregator.iter().enumerate() {
            assert_eq!(
                *binding,
                format!("SHARD_{n}"),
                "wrangler/aggregator.toml: the shards are SHARD_0, SHARD_1, … in order"
            );
        }
        assert_eq!(
            shards("query"),
            aggregator,
            "wrangler/query.toml binds other shards than wrangler/aggregator.toml"
        );
        for worker in ["ingest", "front"] {
            assert!(
                shards(worker).is_empty(),
                "{worker} reads no project's data, so it binds no shard"
            );
        }
    }

    /// What of `tally_storage` ingest may name: the D1 store for reading keys, the KV
    /// cache and the events queue. Not `Writer`/`Write`, `JobLog`, `exec` (raw
    /// statements), `pipeline` or `alerts`.
    const INGEST_STORAGE: [&str; 8] = [
        "AdminStore",
        "Cache",
        "EventQueue",
        "Error",
        "cloudflare::CfQueue",
        "cloudflare::KvCache",
        "d1::D1Store",
        // The in-memory queue double of ingest's native tests: it writes nowhere.
        "memory::MemoryQueue",
    ];
    /// `AdminStore`'s methods, read or write: a new one must be sorted into one list.
    const ADMIN_READS: [&str; 7] = [
        "project",
        "all_projects",
        "keys",
        "key_by_hash",
        "project_by_plausible_domain",
        "project_shards",
        "projects_per_shard",
    ];
    const ADMIN_WRITES: [&str; 5] = [
        "create_project",
        "create_project_on",
        "update_project",
        "create_key",
        "revoke_key",
    ];
    /// Methods of the D1 binding itself (`worker::D1Database`): ingest hands the
    /// binding to `D1Store` and runs no statement of its own.
    const D1_METHODS: [&str; 4] = ["prepare", "exec", "batch", "dump"];

    /// Architecture invariant: ingest never writes D1. It names only read paths of
    /// storage, calls no writing method of `AdminStore`, no method of the D1 binding and
    /// no SQL of core's.
    #[test]
    fn ingest_uses_no_write_path_of_storage() {
        // Keep the lists above in step with the trait.
        let storage = lex::tokens(&read("crates/storage/src/lib.rs"));
        let at = storage
            .windows(2)
            .position(|w| w[0].is_ident("trait") && w[1].is_ident("AdminStore"))
            .expect("storage declares AdminStore");
        let body = at + storage[at..].iter().position(|t| t.is_punct('{')).unwrap();
        let mut methods: Vec<&str> = storage[body..lex::close(&storage, body)]
            .windows(2)
            .filter(|w| w[0].is_ident("fn"))
            .filter_map(|w| w[1].ident())
            .collect();
        methods.sort_unstable();
        let mut known: Vec<&str> = ADMIN_READS.iter().chain(&ADMIN_WRITES).copied().collect();
        known.sort_unstable();
        assert_eq!(
            methods, known,
            "sort AdminStore's methods into ADMIN_READS and ADMIN_WRITES"
        );

        let mut violations = Vec::new();
        for (file, tokens) in sources("workers/ingest/src") {
            for (path, line) in lex::paths_under(&tokens, "tally_storage") {
                let allowed = INGEST_STORAGE
                    .iter()
                    .find(|&&item| path == item || path.starts_with(&format!("{item}::")));
                let method = allowed.and_then(|item| path.get(item.len() + 2..));
                if allowed.is_none() || method.is_some_and(|m| ADMIN_WRITES.contains(&m)) {
                    violations.push(format!("{file}:{line}: tally_storage::{path}"));
                }
            }
            for (path, line) in lex::paths_under(&tokens, "tally_core") {
                if path == "sql" || path.starts_with("sql::") {
                    violations.push(format!("{file}:{line}: tally_core::{path}"));
                }
            }
            for w in tokens.windows(3) {
                let Some(method) = w[1].ident() else { continue };
                let called = w[0].is_punct('.') && w[2].is_punct('(');
                if called && (ADMIN_WRITES.contains(&method) || D1_METHODS.contains(&method)) {
                    violations.push(format!("{file}:{}: .{method}(…)", w[0].line));
                }
            }
        }
        assert_none(
            &violations,
            "ingest must not write D1 (it reads keys and settings only)",
        );
    }

    /// Words that make a string SQL.
    const SQL_WORDS: [&str; 11] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "WHERE", "VALUES", "PRAGMA", "CREATE", "DROP",
        "EXPLAIN", "JOIN",
    ];
    fn is_sql(text: &str) -> bool {
        text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|word| SQL_WORDS.contains(&word))
    }
    /// What builds a string at run time.
    const STRING_BUILDERS: [&str; 9] = [
        "format",
        "format_args",
        "write",
        "writeln",
        "push_str",
        "join",
        "replace",
        "to_string",
        "leak",
    ];

    /// Architecture invariant: every SQL value is a bound parameter; nothing is formatted
    /// into SQL. Outside tests, SQL text is written only in `tally_core::sql`, as
    /// constants (joined by `concat!` at compile time, never at run time); no
    /// `format!`, `write!` or `push_str` in core or storage takes SQL or a `sql::` const;
    /// and `Executor::query` takes `&'static str`, as `Statement` does, so a string
    /// built at run time cannot reach an executor.
    #[test]
    fn sql_is_never_built_from_strings() {
        let mut violations = Vec::new();
        for (file, tokens) in sources("crates/core/src")
            .into_iter()
            .chain(sources("crates/storage/src"))
        {
            let tokens = lex::without_tests(&tokens);
            let sql_module = file == "crates/core/src/sql.rs";
            for (i, t) in tokens.iter().enumerate() {
                if let Some(text) = t.str()
                    && is_sql(text)
                    && !sql_module
                {
                    violations.push(format!(
                        "{file}:{}: SQL outside tally_core::sql: {text:?}",
                        t.line
                    ));
                }
                let Some(name) = t.ident() else { continue };
                if !STRING_BUILDERS.contains(&name) {
                    continue;
                }
                if sql_module {
                    violations.push(format!(
                        "{file}:{}: `{name}` in the SQL module, which holds constants only",
                        t.line
                    ));
                    continue;
                }
                // A macro's or a call's arguments.
                let open = i + 1 + usize::from(tokens.get(i + 1).is_some_and(|t| t.is_punct('!')));
                if !tokens.get(open).is_some_and(|t| t.is_punct('(')) {
                    continue;
                }
                let args = &tokens[open..lex::close(&tokens, open)];
                let names_sql = args
                    .windows(3)
                    .any(|w| w[0].is_ident("sql") && w[1].is_punct(':') && w[2].is_punct(':'));
                if names_sql || args.iter().any(|a| a.str().is_some_and(is_sql)) {
                    violations.push(format!("{file}:{}: `{name}` builds SQL", t.line));
                }
            }
        }
        let exec = read("crates/storage/src/exec.rs");
        assert!(
            exec.contains(
                "sql: &'static str,\n        values: Vec<Bound>,\n    ) -> Result<Vec<T>, Error>;"
            ),
            "Executor::query takes its SQL as &'static str"
        );
        assert_none(&violations, "SQL built from strings");
    }

    /// Core returns its own error enum (`tally_core::Error`), never a string: the edges
    /// decide how an error is answered, and a caller can match on what went wrong.
    /// (Tests may expect `Result<_, &str>` fragments.)
    #[test]
    fn core_returns_its_own_errors() {
        let mut violations = Vec::new();
        for (file, tokens) in sources("crates/core/src") {
            let tokens = lex::without_tests(&tokens);
            for (i, t) in tokens.iter().enumerate() {
                if !t.is_ident("Result") || !tokens.get(i + 1).is_some_and(|t| t.is_punct('<')) {
                    continue;
                }
                let args = &tokens[i + 2..lex::close(&tokens, i + 1) - 1];
                let mut depth = 0i32;
                let comma = args.iter().position(|a| {
                    match a.kind {
                        lex::Kind::Punct('<' | '(' | '[') => depth += 1,
                        lex::Kind::Punct('>' | ')' | ']') => depth -= 1,
                        _ => {}
                    }
                    depth == 0 && a.is_punct(',')
                });
                let Some(comma) = comma else { continue };
                let error: Vec<&str> = args[comma + 1..].iter().filter_map(Token::ident).collect();
                let text = matches!(
                    error.as_slice(),
                    ["String" | "str"] | [.., "string", "String"]
                ) || error.contains(&"Cow") && error.contains(&"str");
                if text {
                    violations.push(format!("{file}:{}: a string as an error", t.line));
                }
            }
        }
        assert_none(&violations, "core errors must be tally_core::Error");
    }

    /// Core and storage build no HTTP error values: `ApiError` is `tally-edge`'s, the
    /// workers' edges answer with it, and `From<tally_core::Error>` there is the one
    /// mapping of core's errors to answers. Neither crate names it (nor defines its own).
    #[test]
    fn core_builds_no_http_errors() {
        let mut violations = Vec::new();
        for (file, tokens) in [sources("crates/core/src"), sources("crates/storage/src")].concat() {
            for t in &tokens {
                if t.is_ident("ApiError") {
                    violations.push(format!("{file}:{}: ApiError", t.line));
                }
            }
        }
        assert_none(
            &violations,
            "core and storage return their own errors; ApiError is tally-edge's, the workers' edges",
        );
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
