//! The seed's read scenario: `blockNumber` → `getBlockByNumber(n)` → `getBlockReceipts(n)`
//! → by-hash lookups of its txs, in a loop, under tx load, while EN2 is detached and
//! re-attached. Through kengate: zero failures. Through nginx round-robin over the same
//! ENs: failures (which proves the scenario really splits).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k256::ecdsa::SigningKey;
use serde_json::{json, Value};

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::{Localnet, Restore};
use crate::support::nginx::Nginx;
use crate::support::peers::Peer;
use crate::support::tx::{hex_bytes, sign_transfer};

#[derive(Debug, Default)]
struct Tally {
    rounds: u64,
    lookups: u64,
    failures: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn fail(&mut self, why: &'static str) {
        *self.failures.entry(why).or_default() += 1;
    }
    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// One client's loop through `url` until `stop`, in the cluster's native namespace (`ns`).
async fn read_loop(url: String, ns: &'static str, stop: Arc<AtomicBool>) -> Tally {
    let http = Http::default();
    let mut t = Tally::default();
    let mut last = 0u64;
    while !stop.load(Ordering::Relaxed) {
        t.rounds += 1;
        let r = http.rpc_lenient(&url, &format!("{ns}_blockNumber"), json!([])).await;
        if r.get("non_json").is_some() {
            t.fail("a reply that is not JSON");
            continue;
        }
        let Some(n) = r["result"].as_str().map(|_| quantity(&r["result"])) else {
            t.fail("blockNumber error");
            continue;
        };
        if n < last {
            t.fail("blockNumber went backwards");
        }
        last = last.max(n);
        let hex = format!("{n:#x}");
        let block = http
            .rpc_lenient(&url, &format!("{ns}_getBlockByNumber"), json!([hex, false]))
            .await;
        let txs = match block.get("result") {
            Some(Value::Object(b)) => b["transactions"].as_array().cloned().unwrap_or_default(),
            _ => {
                t.fail("getBlockByNumber(blockNumber) null/error");
                continue;
            }
        };
        let receipts = http
            .rpc_lenient(&url, &format!("{ns}_getBlockReceipts"), json!([hex]))
            .await;
        match receipts.get("result") {
            Some(Value::Array(rs)) if rs.len() == txs.len() => {}
            _ => t.fail("getBlockReceipts(blockNumber) null/error/short"),
        }
        for tx in txs {
            t.lookups += 1;
            let r = http
                .rpc_lenient(&url, &format!("{ns}_getTransactionReceipt"), json!([tx]))
                .await;
            if !r["result"].is_object() {
                t.fail("getTransactionReceipt null/error");
            }
            let r = http
                .rpc_lenient(&url, &format!("{ns}_getTransactionByHash"), json!([tx]))
                .await;
            if !r["result"].is_object() {
                t.fail("getTransactionByHash null/error");
            }
        }
    }
    t
}

/// Value transfers from a few funded accounts, straight to EN1 and EN3 (never detached).
async fn tx_load(net: Localnet, stop: Arc<AtomicBool>) -> u64 {
    let http = Http::default();
    let gas_price = u128::from(quantity(
        &http.result(&net.en_http[0], "klay_gasPrice", json!([])).await,
    )) * 2;
    // Each sender talks to one EN (EN1 or EN3, never the detached EN2) for its nonce and its
    // sends, so the load itself never trips over the split brain.
    let mut senders = Vec::new();
    for (i, a) in net.accounts[10..13].iter().enumerate() {
        let en = net.en_http[if i % 2 == 0 { 0 } else { 2 }].clone();
        let key = SigningKey::from_slice(&hex_bytes(&a.private_key)).expect("key");
        let nonce = quantity(
            &http
                .result(&en, "klay_getTransactionCount", json!([a.address, "pending"]))
                .await,
        );
        senders.push((key, nonce, en));
    }
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        for (key, nonce, en) in senders.iter_mut() {
            let to: [u8; 20] = std::array::from_fn(|_| fastrand::u8(..));
            let tx = sign_transfer(key, net.chain_id, *nonce, gas_price, to, 1);
            let r = http
                .rpc(en.as_str(), "klay_sendRawTransaction", json!([tx.raw_hex()]))
                .await;
            assert!(r.get("error").is_none(), "load tx refused: {r}");
            *nonce += 1;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    sent
}

/// Waits until EN1's head is at least `want` blocks ahead of EN2's; returns the gap.
async fn wait_for_gap(net: &Localnet, want: u64, within: Duration) -> u64 {
    let http = Http::default();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let en1 = quantity(&http.result(&net.en_http[0], "klay_blockNumber", json!([])).await);
        let en2 = quantity(&http.result(&net.en_http[1], "klay_blockNumber", json!([])).await);
        let gap = en1.saturating_sub(en2);
        if gap >= want {
            return gap;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "EN2 did not fall behind after `scripts/localnet detach 2` (EN1 {en1}, EN2 {en2}): the cluster did not split"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_see_the_split_brain_through_kengate() {
    let net = Localnet::load();
    let gate = Gate::start(test_config(&net.nodes())).await;
    gate.wait_all_in_sync().await;
    let nginx = Nginx::start(&net.en_http);
    // eRPC and proxyd over the same ENs in the same run, when built: findings, not assertions.
    let (peers, skipped) = Peer::all(&net.en_http, net.chain_id).await;
    for note in &skipped {
        println!("peer skipped: {note}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(tx_load(net.clone(), stop.clone()));
    let through_gate = tokio::spawn(read_loop(gate.url.clone(), net.ns(), stop.clone()));
    let through_nginx = tokio::spawn(read_loop(nginx.url.clone(), net.ns(), stop.clone()));
    let through_peers: Vec<_> = peers
        .iter()
        .map(|p| (p.name, tokio::spawn(read_loop(p.url.clone(), net.ns(), stop.clone()))))
        .collect();

    tokio::time::sleep(Duration::from_secs(4)).await;
    net.ctl(&["detach", "2"]);
    let restore = Restore {
        net: &net,
        args: vec!["attach", "2"],
    };
    // The scenario only means something if EN2 really falls behind: past max_lag (3 blocks).
    let gap = wait_for_gap(&net, 4, Duration::from_secs(15)).await;
    println!("EN2 fell {gap} blocks behind EN1 while detached");
    tokio::time::sleep(Duration::from_secs(8)).await;
    net.ctl(&["attach", "2"]);
    drop(restore);
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);

    let sent = load.await.expect("load task");
    let k = through_gate.await.expect("kengate loop");
    let n = through_nginx.await.expect("nginx loop");
    println!("tx load: {sent} transfers sent");
    println!(
        "kengate: {} rounds, {} tx lookups, {} failures {:?}",
        k.rounds,
        k.lookups,
        k.failed(),
        k.failures
    );
    println!(
        "nginx:   {} rounds, {} tx lookups, {} failures {:?}",
        n.rounds,
        n.lookups,
        n.failed(),
        n.failures
    );
    for (name, task) in through_peers {
        let p = task.await.expect("peer loop");
        println!(
            "{name}: {} rounds, {} tx lookups, {} failures {:?}",
            p.rounds,
            p.lookups,
            p.failed(),
            p.failures
        );
    }
    assert!(sent > 50, "the tx load did not run");
    assert!(k.rounds > 50 && k.lookups > 20, "kengate's loop barely ran: {k:?}");
    assert_eq!(k.failed(), 0, "kengate showed the split brain: {:?}", k.failures);
    assert!(
        n.failed() > 0,
        "the baseline saw no failures, so the scenario did not split the cluster: {n:?}"
    );
    gate.stop().await;
}
