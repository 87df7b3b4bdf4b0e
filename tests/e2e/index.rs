//! The embedded index end to end, on the real cluster, driven by real client libraries
//! (`examples/kas-token-history`): `make.js` deploys a KIP-7, a KIP-17 and a KIP-37 token
//! through kengate (index on, auth on) and makes transfers of every kind while EN2 is detached
//! and re-attached; once the index has reached the block of the last tx, `check.js` calls every
//! `caver.kas.tokenHistory` method of caver-js-ext-kas (and kengate's presets, and the
//! Etherscan-compatible `/api`; internal transfers from a second kengate with `index.internal`) and compares each answer with what `make.js` recorded: 0
//! failures. Then a second kengate (the binary) backfills the same chain from block 0 into a
//! fresh index and is killed with SIGKILL twice mid-backfill (once before the run's blocks, once
//! inside them); restarted on the same data dir it catches up, and its Etherscan answers hold
//! every tx and transfer of the run exactly once and equal, over the whole chain, those of the
//! first kengate's uninterrupted index.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kengate::config::{KeyConfig, KeyScope};
use serde_json::{json, Value};

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::{Localnet, Restore};
use crate::support::process::Process;

const KEY_ID: &str = "KASK-index-e2e";
const SECRET: &str = "s3cret-index-e2e-0123456789";
/// How long the index may take to reach a block once the chain has it.
const CATCH_UP: Duration = Duration::from_secs(240);

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"))
    )
}

/// `index.indexed_head` in a `/status` answer.
fn indexed(status: &Value) -> Option<u64> {
    status["index"]["indexed_head"].as_u64()
}

/// Waits until `status_url`'s index has reached `block` (bounded by [`CATCH_UP`]).
async fn wait_indexed(http: &Http, base: &str, block: u64) -> Value {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the index at {base} did not reach block {block} within {CATCH_UP:?}"
        );
        // A kengate just restarted may not listen yet.
        if http.get_opt(&format!("{base}/ready")).await != Some(200) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let s = http.get(&format!("{base}/status")).await.json();
        assert!(s["index"]["halted"].is_null(), "the index halted: {s}");
        if indexed(&s).is_some_and(|h| h >= block) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a node program of `examples/kas-token-history`; its stdout (printed) when it exits 0.
async fn node(net: &Localnet, script: &str, env: &[(&str, &str)], limit: Duration) -> (bool, String) {
    let mut cmd = net.example("kas-token-history", "node");
    cmd.arg(script).stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .expect("run node (scripts/clients install installs examples/kas-token-history)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    (out.status.success(), text)
}

/// Waits until EN1's head is at least `want` blocks ahead of EN2's; returns the gap.
async fn wait_for_gap(net: &Localnet, want: u64, within: Duration) -> u64 {
    let http = Http::default();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let head = |i: usize| {
            let (http, url) = (http.clone(), net.en_http[i].clone());
            async move { quantity(&http.result(&url, "klay_blockNumber", json!([])).await) }
        };
        let (en1, en2) = (head(0).await, head(1).await);
        if en1 >= en2 + want {
            return en1 - en2;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "EN2 did not fall behind after `scripts/localnet detach 2` (EN1 {en1}, EN2 {en2}): the cluster did not split"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every row of an Etherscan-compatible account query (`status` "0" with no rows is empty).
async fn api_rows(http: &Http, base: &str, query: &str) -> Vec<Value> {
    let auth = basic();
    let r = http
        .get_with_headers(
            &format!("{base}/api?{query}&page=1&offset=10000&sort=asc"),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200, "/api?{query}: {}", r.text());
    let v = r.json();
    match &v["result"] {
        Value::Array(rows) => rows.clone(),
        _ => panic!("/api?{query}: {v}"),
    }
}

/// What identifies a row: the tx hash, and for a token transfer its log index and token id.
fn row_key(row: &Value) -> String {
    let s = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
    format!("{}/{}/{}", s("hash"), s("logIndex"), s("tokenID"))
}

/// Rows that occur more than once.
fn duplicates(rows: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    rows.iter().map(row_key).filter(|k| !seen.insert(k.clone())).collect()
}

/// The kengate binary with an index of its own (fresh at first), backfilling from block 0.
struct Backfiller(Process);

impl Backfiller {
    fn new(net: &Localnet) -> Self {
        // One block per store transaction, one read at a time: the backfill stays long enough
        // to be caught in the middle.
        Self(Process::new(
            "index-kill9",
            net,
            // A window of a few transfers: parts are sealed all through the backfill, and the
            // kill lands with a window to make again from the file.
            "[index]\nenabled = true\nstart_block = \"first\"\nbatch = 1\nconcurrency = 1\nwindow_transfers = 7\n",
        ))
    }

    fn url(&self) -> String {
        self.0.url()
    }

    fn start(&mut self) {
        self.0.start();
    }

    fn kill_9(&mut self) {
        self.0.kill_9();
    }

    /// Polls `/status` as fast as it answers until `pred(indexed head, served head)` holds;
    /// the heads then, and the indexed heads seen before.
    async fn watch(&self, http: &Http, what: &str, pred: impl Fn(u64, u64) -> bool) -> (u64, u64, Vec<u64>) {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        let mut seen = Vec::new();
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not seen within {CATCH_UP:?} (indexed heads seen: {seen:?})"
            );
            let Some(200) = http.get_opt(&format!("{}/ready", self.url())).await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let s = http.get(&format!("{}/status", self.url())).await.json();
            assert!(s["index"]["halted"].is_null(), "the index halted: {s}");
            let (Some(h), Some(served)) = (indexed(&s), s["index"]["served_head"].as_u64()) else {
                continue;
            };
            if pred(h, served) {
                return (h, served, seen);
            }
            if seen.last() != Some(&h) {
                seen.push(h);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kas_token_history_answers_what_real_clients_did_and_a_kill_9_mid_backfill_loses_nothing() {
    let net = Arc::new(Localnet::load());
    let http = Http::default();
    let mut cfg = test_config(&net.nodes());
    cfg.cluster.poll_interval_ms = 250;
    cfg.auth.enabled = true;
    cfg.auth.keys = vec![KeyConfig {
        scope: KeyScope {
            label: "index e2e".into(),
            ..Default::default()
        },
        ..KeyConfig::new(KEY_ID, SECRET)
    }];
    cfg.index.enabled = true;
    // Windows of a few dozen transfers: every answer below reads sealed parts and the window
    // together (the default window would hold this whole chain in memory).
    cfg.index.window_transfers = 20;
    // The internal-transfers kengate (below): its own store and index files.
    let mut internal_cfg = test_config(&net.nodes());
    internal_cfg.cluster.poll_interval_ms = 250;
    internal_cfg.auth = cfg.auth.clone();
    internal_cfg.index.enabled = true;
    internal_cfg.index.window_transfers = 20;
    let gate = Gate::start(cfg).await;
    gate.wait_status("chain id learned, a node in sync, the index started", |s| {
        s["served_head"].as_u64().unwrap_or(0) > 0
            && s["chain_id"].as_u64() == Some(net.chain_id)
            && indexed(s).is_some()
    })
    .await;
    let chain = net.chain_id.to_string();
    // Stock JSON-RPC clients take one URL: the access token goes in the path.
    let rpc_url = format!("{}/v1/klaytn/{KEY_ID}.{SECRET}", gate.url);
    let work = std::env::temp_dir().join(format!("kengate-index-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let expected_path = work.join("expected.json");
    let expected_str = expected_path.to_str().expect("utf-8 path").to_owned();

    // ---- phase 1: make.js through kengate while EN2 is detached and re-attached ----
    let stop = Arc::new(AtomicBool::new(false));
    let states = gate.watch_states(stop.clone());
    let faults = {
        let net = net.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(6)).await;
            net.ctl(&["detach", "2"]);
            // The scenario only means something if EN2 really falls behind: past max_lag (3).
            let gap = wait_for_gap(&net, 5, Duration::from_secs(20)).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
            net.ctl(&["attach", "2"]);
            gap
        })
    };
    let _restore = Restore {
        net: &net,
        args: vec!["attach", "2"],
    };
    let (ok, text) = node(
        &net,
        "make.js",
        &[("RPC_URL", &rpc_url), ("OUT", &expected_str)],
        Duration::from_secs(300),
    )
    .await;
    let gap = faults.await.expect("fault task");
    assert!(
        ok && text.contains("make: OK"),
        "make.js through kengate failed:\n{text}"
    );
    println!("EN2 fell {gap} blocks behind EN1 while detached, during make.js");
    gate.wait_all_in_sync().await;
    stop.store(true, Ordering::SeqCst);
    let seen = states.await.expect("state watcher");
    assert!(
        seen.contains(&(1, "lagging".to_owned())),
        "kengate never saw EN2 lagging while it was detached: {seen:?}"
    );

    let expected: Value = serde_json::from_slice(&std::fs::read(&expected_path).expect("expected.json")).expect("JSON");
    let (first, last) = (
        expected["first_block"].as_u64().expect("first_block"),
        expected["last_block"].as_u64().expect("last_block"),
    );
    let s = wait_indexed(&http, &gate.url, last).await;
    println!("index: {} (the run's txs are in blocks {first}..{last})", s["index"]);
    assert!(
        s["index"]["parts"].as_u64().unwrap_or(0) > 0,
        "no window was sealed: the answers below would not read parts: {s}"
    );
    // Internal transfers: a second kengate with index.internal on, from the run's first block
    // (tracing the whole chain the other e2e tests loaded is the cost the option documents).
    internal_cfg.index.internal = true;
    internal_cfg.index.start_block = kengate::config::StartBlock::Number(first);
    let internal_gate = Gate::start(internal_cfg).await;
    let si = wait_indexed(&http, &internal_gate.url, last).await;
    assert_eq!(
        si["index"]["internal_transfers"],
        json!(true),
        "the nodes' call tracer was refused: {si}"
    );

    // ---- check.js: every caver.kas.tokenHistory method, presets, /api ----
    let (ok, text) = node(
        &net,
        "check.js",
        &[
            ("KENGATE_URL", &gate.url),
            ("CHAIN_ID", &chain),
            ("ACCESS_KEY_ID", KEY_ID),
            ("SECRET_ACCESS_KEY", SECRET),
            ("EXPECTED", &expected_str),
            ("RPC_URL", &rpc_url),
            ("INTERNAL_URL", &internal_gate.url),
        ],
        Duration::from_secs(300),
    )
    .await;
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("kas: "))
        .unwrap_or("(no summary)")
        .to_owned();
    let checked = ok && summary.ends_with(" passed, 0 failed") && !summary.starts_with("kas: 0 passed");

    // ---- phase 2: kill -9 of a second kengate in the middle of its backfill ----
    let mut bf = Backfiller::new(&net);
    bf.start();
    // First kill: the backfill half-way to the run's blocks.
    let (h1, served1, seen1) = bf
        .watch(&http, "the backfill under way", |h, served| {
            h >= last || (h >= first / 2 && h + 2 <= served)
        })
        .await;
    assert!(
        h1 < last && h1 + 2 <= served1,
        "the backfill reached the run's last block {last} (indexed {h1}, served {served1}) before it was seen under way \
         (indexed heads seen: {seen1:?}): nothing to kill in the middle"
    );
    bf.kill_9();
    println!(
        "kill -9 #1 at indexed head {h1} of {served1} ({} polls saw it progress before)",
        seen1.len()
    );
    bf.start();
    // It resumes from what it had committed, not from block 0.
    let (h_resumed, _, _) = bf.watch(&http, "the index back after the restart", |_, _| true).await;
    assert!(
        h_resumed >= h1,
        "after kill -9 at {h1} the index restarted at {h_resumed}: committed blocks lost"
    );
    // Second kill inside the run's blocks, when a poll lands there.
    let (h2, served2, _) = match h_resumed >= first {
        true => (h_resumed, 0, Vec::new()),
        false => {
            bf.watch(&http, "the backfill at the run's blocks", |h, _| h >= first)
                .await
        }
    };
    if h2 < last {
        bf.kill_9();
        println!("kill -9 #2 at indexed head {h2}, inside the run's blocks {first}..{last} (served {served2})");
        bf.start();
    } else {
        println!("kill -9 #2 skipped: the backfill passed the run's blocks {first}..{last} between two polls");
    }
    let s = wait_indexed(&http, &bf.url(), last).await;
    assert!(
        indexed(&s).unwrap_or(0) >= h2.min(last),
        "the index went back after the restart: {s}"
    );
    println!("restarted kengate caught up: {}", s["index"]);
    assert!(
        s["index"]["parts"].as_u64().unwrap_or(0) > 0,
        "no window was sealed during the backfill: {s}"
    );

    // No gap, no duplicate: the run's txs and transfers exactly once, as make.js recorded them.
    let txs = expected["txs"].as_array().expect("txs");
    let transfers = expected["transfers"].as_array().expect("transfers");
    let accounts = expected["accounts"].as_object().expect("accounts");
    let contracts = expected["contracts"].as_object().expect("contracts");
    let addr = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut problems = Vec::new();
    for (name, a) in accounts.iter().filter(|(n, _)| n.as_str() != "Z") {
        let a = addr(a);
        let rows = api_rows(&http, &bf.url(), &format!("module=account&action=txlist&address={a}")).await;
        let mut got: Vec<String> = rows.iter().map(|r| addr(&r["hash"])).collect();
        let mut want: Vec<String> = txs
            .iter()
            .filter(|t| addr(&t["from"]) == a || addr(&t["to"]) == a)
            .map(|t| addr(&t["hash"]))
            .collect();
        got.sort();
        want.sort();
        if got != want {
            problems.push(format!(
                "txlist {name}: {} rows, want {}: {got:?} vs {want:?}",
                got.len(),
                want.len()
            ));
        }
    }
    for (kind, action) in [("ft", "tokentx"), ("nft", "tokennfttx"), ("mt", "token1155tx")] {
        let c = addr(&contracts[kind]["address"]);
        let rows = api_rows(
            &http,
            &bf.url(),
            &format!("module=account&action={action}&contractaddress={c}"),
        )
        .await;
        let got: Vec<String> = rows.iter().map(row_key).collect();
        let want: Vec<String> = transfers
            .iter()
            .filter(|t| t["kind"] == kind)
            .map(|t| {
                let id = if kind == "ft" {
                    String::new()
                } else {
                    addr(&t["token_id"])
                };
                format!("{}/{}/{id}", addr(&t["tx_hash"]), t["log_index"])
            })
            .collect();
        if got != want {
            problems.push(format!("{action} {kind}: {got:?}\n  want {want:?}"));
        }
        let rows = api_rows(&http, &bf.url(), &format!("module=account&action=txlist&address={c}")).await;
        let n = txs
            .iter()
            .filter(|t| addr(&t["to"]) == c || addr(&t["created"]) == c)
            .count();
        if rows.len() != n || !duplicates(&rows).is_empty() {
            problems.push(format!("txlist {kind} contract: {} rows, want {n}", rows.len()));
        }
    }
    // The whole chain, block 0 to the run's last: the killed index answers exactly as the
    // uninterrupted one, for every funded account of the cluster (other tests' senders).
    let mut compared = BTreeMap::new();
    for a in net.accounts.iter().map(|a| a.address.to_lowercase()) {
        let q = format!("module=account&action=txlist&address={a}&startblock=0&endblock={last}");
        let (killed, whole) = (
            api_rows(&http, &bf.url(), &q).await,
            api_rows(&http, &gate.url, &q).await,
        );
        let dup = duplicates(&killed);
        if !dup.is_empty() {
            problems.push(format!("txlist {a}: duplicated after kill -9: {dup:?}"));
        }
        let keys = |rows: &[Value]| rows.iter().map(row_key).collect::<Vec<_>>();
        if keys(&killed) != keys(&whole) {
            problems.push(format!(
                "txlist {a} (blocks 0..={last}): {} rows after kill -9, {} in the uninterrupted index",
                killed.len(),
                whole.len()
            ));
        }
        compared.insert(a, killed.len());
    }
    assert!(checked, "check.js through kengate: {summary}");
    assert!(
        problems.is_empty(),
        "after kill -9 mid-backfill:\n{}",
        problems.join("\n")
    );
    println!(
        "after kill -9 mid-backfill: the run's {} txs and {} transfers each once; {} txs of {} cluster accounts \
         (blocks 0..={last}) as in the uninterrupted index",
        txs.len(),
        transfers.len(),
        compared.values().sum::<usize>(),
        compared.len()
    );
    drop(bf);
    let _ = std::fs::remove_dir_all(&work);
    internal_gate.stop().await;
    gate.stop().await;
}
