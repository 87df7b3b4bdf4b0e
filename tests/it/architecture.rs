//! ARCHITECTURE.md's invariants that a reading of the source can check: which module may use
//! what. A failure names the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with its path relative to `src/`.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).expect("read source"))
        })
        .collect()
}

/// Lines of files matching `scope` that contain any of `needles`, outside `allowed` files.
fn offenders(scope: impl Fn(&str) -> bool, needles: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (file, text) in sources() {
        if !scope(&file) || allowed.contains(&file.as_str()) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if needles.iter().any(|n| code.contains(n)) {
                out.push(format!("src/{file}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn routing_performs_no_io_and_reads_no_clock() {
    let bad = offenders(
        |f| f == "routing.rs" || f.starts_with("routing/"),
        &["tokio::", "std::fs", "std::net", "Instant::now", "SystemTime"],
        &[],
    );
    assert!(bad.is_empty(), "routing must stay pure:\n{}", bad.join("\n"));
}

#[test]
fn only_server_knows_http_and_nothing_but_the_entry_depends_on_it() {
    let bad = offenders(
        |f| !f.starts_with("server"),
        &["crate::server", "hyper::server"],
        &["lib.rs", "reload.rs"],
    );
    assert!(bad.is_empty(), "server is the only HTTP module:\n{}", bad.join("\n"));
}

#[test]
fn events_talk_to_the_rest_through_small_types_only() {
    let bad = offenders(
        |f| f == "events.rs" || f.starts_with("events/"),
        &["crate::proxy", "crate::server", "crate::access"],
        &[],
    );
    assert!(
        bad.is_empty(),
        "events must not import proxy, server or access:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_request_body_is_read_through_the_edge() {
    let bad = offenders(
        |f| f == "server.rs" || f.starts_with("server/"),
        &["Limited::new", ".collect().await", "BodyExt"],
        &["server/edge.rs"],
    );
    assert!(
        bad.is_empty(),
        "bodies are read only by server/edge.rs (deadlines, shared budget):\n{}",
        bad.join("\n")
    );
    // The plain front reads a JSON-RPC body off the socket itself, under the edge's deadlines
    // and drawing from its budget.
    let front = sources()
        .into_iter()
        .find(|(f, _)| f == "server/front.rs")
        .map(|(_, text)| non_test_code(&text).join("\n"))
        .unwrap_or_default();
    for needed in ["edge.charge(", "edge.body_deadlines()", "edge.body_timed_out()"] {
        assert!(
            front.contains(needed),
            "server/front.rs must read bodies under the edge's rules ({needed})"
        );
    }
}

#[test]
fn node_urls_are_shown_only_redacted() {
    // `.http` is a node's real URL: it may be used to send requests and to match stored
    // records, never formatted into something shown.
    let bad = offenders(
        |_| true,
        &["http.to_string()", "n.http.clone()", "node.http.clone()"],
        &["lib.rs", "cluster/node.rs"],
    );
    assert!(
        bad.is_empty(),
        "show node.shown or node.name instead:\n{}",
        bad.join("\n")
    );
}

#[test]
fn namespace_spellings_are_resolved_only_in_the_method_table() {
    // Building a method name from a namespace and a base, or renaming one namespace to another,
    // anywhere but methods.rs would bypass the dialect (a kaia_ call sent as klay_ to a Kaia
    // network, or as kaia_ to a Klaytn node). Access keys pair klay_x with kaia_x through
    // methods::klay_spelling / other_spelling.
    let bad = offenders(
        |f| !f.ends_with("tests.rs"),
        &[
            "format!(\"klay_",
            "format!(\"kaia_",
            "format!(\"eth_",
            "replace(\"kaia_",
            "replace(\"klay_",
            "strip_prefix(\"kaia_",
        ],
        &["methods.rs"],
    );
    assert!(
        bad.is_empty(),
        "namespace spellings belong to methods.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_index_talks_to_the_rest_through_small_types_only() {
    let bad = offenders(
        |f| f == "index.rs" || f.starts_with("index/"),
        &["crate::proxy", "crate::server", "crate::access", "crate::cluster"],
        &[],
    );
    assert!(
        bad.is_empty(),
        "index reads through events::Fetch; it must not import proxy, server, access or cluster:\n{}",
        bad.join("\n")
    );
}

#[test]
fn webhooks_talk_to_the_rest_through_small_types_only() {
    let bad = offenders(
        |f| f == "webhooks.rs" || f.starts_with("webhooks/"),
        &[
            "crate::proxy",
            "crate::server",
            "crate::access",
            "crate::cluster",
            "crate::networks",
        ],
        &[],
    );
    assert!(
        bad.is_empty(),
        "webhooks read blocks through events::Fetch and tx records through store::Store; \
         they must not import proxy, server, access, cluster or networks:\n{}",
        bad.join("\n")
    );
}

/// Which top-level modules each top-level module may import (`use crate::…` and `crate::x::`
/// paths in its non-test code), lowest layer first. `lib.rs` (the wiring) may use anything and
/// is not listed; a module added to `lib.rs` must be added here. The table itself must be
/// acyclic: the layers in ARCHITECTURE.md are the layers in the code.
const ALLOWED: &[(&str, &[&str])] = &[
    // Wire types and pure tables: import nothing of kengate.
    ("jsonrpc", &[]),
    ("methods", &[]),
    ("rawtx", &[]),
    ("config", &[]),
    // What kengate persists; an access key's scope is the configuration's `KeyScope`.
    ("store", &["config"]),
    // Node clients, head tracking, the published view.
    ("cluster", &["config", "jsonrpc", "methods"]),
    ("metrics", &["cluster"]),
    // Pure rules over a view.
    ("routing", &["cluster", "config", "jsonrpc", "methods", "rawtx"]),
    // The write path: ordering, lifecycle, upkeep (through its own `WritePath` trait).
    ("txpath", &["cluster", "jsonrpc", "routing", "store"]),
    ("access", &["config", "jsonrpc", "methods", "store"]),
    // Reads through its `Fetch` trait; never the request path.
    ("events", &["cluster", "config", "jsonrpc", "methods"]),
    // Their own rooms: read through `events::Fetch` and `store::Store`.
    (
        "index",
        &["config", "events", "jsonrpc", "methods", "rawtx", "store", "txpath"],
    ),
    (
        "webhooks",
        &[
            "config", "events", "index", "jsonrpc", "methods", "rawtx", "store", "txpath",
        ],
    ),
    // The per-call pipeline.
    (
        "proxy",
        &[
            "access", "cluster", "config", "events", "jsonrpc", "methods", "metrics", "routing", "txpath",
        ],
    ),
    ("networks", &["events", "jsonrpc", "methods", "proxy"]),
    // The only HTTP server module; nothing but the wiring depends on it.
    (
        "server",
        &[
            "access", "cluster", "config", "events", "index", "jsonrpc", "metrics", "networks", "proxy", "store",
            "txpath", "webhooks",
        ],
    ),
    // Live reload replaces gateways, access and the server's settings.
    ("reload", &["access", "config", "proxy", "server", "txpath"]),
];

/// The top-level modules `lib.rs` declares.
fn top_level_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("read lib.rs");
    lib.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or_else(|| l.trim().strip_prefix("mod "))
        })
        .filter_map(|rest| rest.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

/// `text` without comments and without `#[cfg(test)]` items, line numbers kept (removed text
/// becomes blank lines).
fn non_test_code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut skipping = false;
    let mut depth = 0i64;
    let mut opened = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        if !skipping && code.trim() == "#[cfg(test)]" {
            skipping = true;
            depth = 0;
            opened = false;
            out.push(String::new());
            continue;
        }
        if skipping {
            for c in without_literals(code).chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // The item ends at its closing brace, or at a `;` when it has no body.
            if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                skipping = false;
            }
            out.push(String::new());
            continue;
        }
        out.push(code.to_owned());
    }
    out
}

/// `line` with the contents of its string and char literals removed, so that a `"{"` in a test
/// does not count as a brace. One line at a time: a string spanning lines is not followed.
fn without_literals(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // To the closing quote, skipping escaped characters.
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            // A char literal ('{', '\'') but not a lifetime ('a).
            '\'' if chars.clone().nth(1) == Some('\'') || chars.peek() == Some(&'\\') => {
                // The character (two for an escape), then to the closing quote.
                if chars.next() == Some('\\') {
                    chars.next();
                }
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every `crate::x` a file names, as (line number, x): plain paths and each member of a
/// `crate::{a, b::c}` group, across lines.
fn crate_paths(lines: &[String]) -> Vec<(usize, String)> {
    let text = lines.join("\n");
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let ident = |at: usize| -> String {
        text[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("crate::") {
        let at = from + found;
        from = at + "crate::".len();
        // `$crate::` and `other_crate::` are not paths into this crate.
        if text[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            continue;
        }
        if !text[from..].starts_with('{') {
            out.push((line_of(from), ident(from)));
            continue;
        }
        // A group: each member at depth 1 starts after the `{` or a `,`.
        let mut depth = 0;
        let mut member = true;
        for (j, c) in text[from..].char_indices() {
            match c {
                '{' => {
                    depth += 1;
                    member = depth == 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' => member = depth == 1,
                c if c.is_whitespace() => {}
                _ => {
                    if member {
                        out.push((line_of(from + j), ident(from + j)));
                    }
                    member = false;
                }
            }
        }
    }
    out
}

#[test]
fn every_import_between_top_level_modules_is_in_the_table() {
    let modules = top_level_modules();
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let missing: Vec<&String> = modules.iter().filter(|m| !table.contains_key(m.as_str())).collect();
    assert!(missing.is_empty(), "add these modules to ALLOWED: {missing:?}");
    let mut bad = Vec::new();
    for (file, text) in sources() {
        let top = file.split('/').next().unwrap_or("").trim_end_matches(".rs");
        let Some(allowed) = table.get(top) else {
            continue; // lib.rs and main.rs: the wiring and the binary.
        };
        if file.ends_with("/tests.rs") || file.contains("/tests/") {
            continue;
        }
        for (line, used) in crate_paths(&non_test_code(&text)) {
            if used != top && modules.contains(&used) && !allowed.contains(&used.as_str()) {
                bad.push(format!("src/{file}:{line}: {top} imports {used}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports the dependency table in tests/it/architecture.rs does not allow:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_dependency_table_has_no_cycles() {
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // Depth-first search; a module met again while on the stack closes a cycle.
    fn visit<'a>(
        m: &'a str,
        table: &BTreeMap<&'a str, &'a [&'a str]>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), String> {
        if let Some(at) = stack.iter().position(|s| *s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m);
            return Err(cycle.join(" -> "));
        }
        if !done.insert(m) {
            return Ok(());
        }
        stack.push(m);
        for dep in table.get(m).copied().unwrap_or_default() {
            assert!(
                table.contains_key(dep),
                "{m} may import {dep}, which is not in the table"
            );
            visit(dep, table, stack, done)?;
        }
        stack.pop();
        Ok(())
    }
    let mut done = BTreeSet::new();
    for m in table.keys() {
        if let Err(cycle) = visit(m, &table, &mut Vec::new(), &mut done) {
            panic!("the dependency table has a cycle: {cycle}");
        }
    }
}

#[test]
fn the_import_reader_sees_groups_and_skips_tests_and_comments() {
    let text = "use crate::jsonrpc::hex;\n\
                use crate::{\n    cluster::{Node, View},\n    config,\n};\n\
                // use crate::proxy;\n\
                fn f() { crate::metrics::x(); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::server;\n    fn g() { let _ = (\"{\", '{'); }\n}\n\
                use crate::{routing::X, store};\n";
    assert_eq!(
        without_literals(r#"let a = ("{", '{', '\'', 'x'); f::<'a>() {"#),
        "let a = (, , , ); f::<'a>() {"
    );
    let found = crate_paths(&non_test_code(text));
    let names: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        names,
        [
            (1, "jsonrpc"),
            (3, "cluster"),
            (4, "config"),
            (7, "metrics"),
            (13, "routing"),
            (13, "store")
        ]
    );
}

#[test]
fn only_server_names_http_types() {
    // Outside `server`, each allowed file with the reason it speaks HTTP. Access and networks
    // speak their own small types (`access::Headers`, `Denied`, `NetworkError`), which
    // `server/domain.rs` maps to and from HTTP.
    const ALLOWED: &[(&str, &str)] = &[
        ("lib.rs", "the wiring"),
        (
            "cluster/node.rs",
            "the upstream HTTP client: requests to nodes and their statuses",
        ),
        (
            "cluster/relay.rs",
            "kengate's own HTTP/1.1 client to http:// nodes (the forwarding path)",
        ),
        ("cluster/h1.rs", "the relay's HTTP/1.1 reply framing, without IO"),
        (
            "cluster/stream.rs",
            "a node's large reply, passed on to the client as the HTTP body it arrived as",
        ),
        (
            "config.rs",
            "node URLs are checked with http::Uri, the parser the node client uses",
        ),
        ("webhooks/send.rs", "the webhook sender: an HTTP client to receivers"),
    ];
    const HTTP: &[&str] = &[
        "hyper::",
        "httparse::",
        "hyper_util::",
        "hyper_rustls::",
        "http::",
        "http_body_util::",
        "HeaderMap",
        "StatusCode",
    ];
    let mut bad = Vec::new();
    for (file, text) in sources() {
        if file == "server.rs"
            || file.starts_with("server/")
            || ALLOWED.iter().any(|(f, _)| *f == file)
            || file.ends_with("/tests.rs")
            || file.contains("/tests/")
        {
            continue;
        }
        for (i, code) in non_test_code(&text).iter().enumerate() {
            if HTTP.iter().any(|n| code.contains(n)) {
                bad.push(format!("src/{file}:{}: {}", i + 1, code.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "HTTP types belong to server (and the HTTP clients allowed in tests/it/architecture.rs):\n{}",
        bad.join("\n")
    );
}

/// Lines of non-test code in files matching `scope` that contain any of `needles`, outside
/// `allowed` files (comments and `#[cfg(test)]` items skipped).
fn non_test_offenders(scope: impl Fn(&str) -> bool, needles: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (file, text) in sources() {
        if !scope(&file) || allowed.contains(&file.as_str()) || file.ends_with("tests.rs") || file.contains("/tests/") {
            continue;
        }
        for (i, code) in non_test_code(&text).iter().enumerate() {
            if needles.iter().any(|n| code.contains(n)) {
                out.push(format!("src/{file}:{}: {}", i + 1, code.trim()));
            }
        }
    }
    out
}

#[test]
fn the_store_is_written_only_by_the_write_path_upkeep_and_key_management() {
    // Tx records: only the lifecycle writes them, and only the write path (proxy/forward.rs:
    // created, attempts, outcomes) and the upkeep loop record transitions. Keys: only Access's
    // key management. Reads (and authentication) never write the store.
    let bad = non_test_offenders(|f| !f.starts_with("store"), &["put_tx("], &["txpath/lifecycle.rs"]);
    assert!(
        bad.is_empty(),
        "tx records are written only by txpath/lifecycle.rs:\n{}",
        bad.join("\n")
    );
    let bad = non_test_offenders(|f| !f.starts_with("store"), &["put_key("], &["access.rs"]);
    assert!(
        bad.is_empty(),
        "keys are written only by Access's key management:\n{}",
        bad.join("\n")
    );
    let bad = non_test_offenders(
        |_| true,
        &[".created(", ".transition("],
        &["proxy/forward.rs", "txpath/upkeep.rs", "txpath/lifecycle.rs"],
    );
    assert!(
        bad.is_empty(),
        "lifecycle records change only on the write path and in the upkeep:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_cluster_opens_connections_to_nodes() {
    // The node HTTP client (cluster/node.rs) and the node WebSocket connect (cluster/tls.rs);
    // webhooks/send.rs is the webhook sender's client, to receivers, never to nodes.
    let bad = non_test_offenders(
        |f| !f.starts_with("cluster"),
        &[
            "legacy::Client",
            "Client::builder",
            "connect_async",
            "TcpStream::connect",
        ],
        &["webhooks/send.rs"],
    );
    assert!(
        bad.is_empty(),
        "connections to nodes are opened by cluster only:\n{}",
        bad.join("\n")
    );
}
