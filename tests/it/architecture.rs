//! ARCHITECTURE.md's invariants that a reading of the source can check: which module may use
//! what. A failure names the file and the line.

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
    // network, or as kaia_ to a Klaytn node). access/keys.rs pairs klay_x with kaia_x in a key's
    // allowed-method list: a permission, never a name sent upstream.
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
        &["methods.rs", "access/keys.rs"],
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
