//! Faults without client-visible errors, against fake nodes: a call that finds no node waits,
//! bounded, for one; a signed write whose node hangs or breaks mid-reply is re-sent to the
//! sender's next node and answered with its hash; and the operator sees each fault.

use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use serde_json::json;

use crate::support::client::Http;
use crate::support::fake::{self, Fake, Mode};
use crate::support::gate::{test_config, Gate};
use crate::support::tx::{sign_transfer, Signed};

fn key(i: u8) -> SigningKey {
    let mut b = [0u8; 32];
    b[31] = i + 1;
    b[0] = 0x17;
    SigningKey::from_slice(&b).unwrap()
}

fn tx(k: &SigningKey, nonce: u64) -> Signed {
    sign_transfer(k, 1337, nonce, 50_000_000_000, [7; 20], 1)
}

/// Which fake received the raw tx.
fn receivers(fakes: &[Fake], raw: &str) -> Vec<usize> {
    fakes
        .iter()
        .filter(|f| f.calls_of("klay_sendRawTransaction").iter().any(|p| p[0] == raw))
        .map(|f| f.id)
        .collect()
}

/// The node a sender's txs go to: sends nonce 0 and sees who got it.
async fn home_of(fakes: &[Fake], gate: &Gate, http: &Http, k: &SigningKey) -> usize {
    let t = tx(k, 0);
    http.result(&gate.url, "klay_sendRawTransaction", json!([t.raw_hex()]))
        .await;
    receivers(fakes, &t.raw_hex())[0]
}

async fn setup(heads: &[u64], wait_ms: u64) -> (Vec<Fake>, Gate, Http) {
    let fakes = fake::cluster(heads).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cluster.node_wait_ms = wait_ms;
    cfg.cache.max_bytes = 0;
    let gate = Gate::start(cfg).await;
    gate.wait_all_in_sync().await;
    (fakes, gate, Http::default())
}

/// Every fake stops listening, and kengate has seen them all go down.
async fn kill_all(fakes: &[Fake], gate: &Gate) {
    for f in fakes {
        f.kill();
    }
    gate.wait_status("every node down", |s| {
        s["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["state"] == "down"))
    })
    .await;
}

async fn attempts(gate: &Gate, http: &Http, hash: &str) -> serde_json::Value {
    http.result(&gate.url, "kengate_getTransactionStatus", json!([hash]))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_home_node_hangs_is_answered_through_the_next_node() {
    let (fakes, gate, http) = setup(&[100, 100, 100], 10_000).await;
    let k = key(1);
    let home = home_of(&fakes, &gate, &http, &k).await;
    // The home node accepts connections and never answers (a paused node).
    fakes[home].set_mode(Mode::Hang);
    let t = tx(&k, 1);
    let r = http
        .rpc(&gate.url, "klay_sendRawTransaction", json!([t.raw_hex()]))
        .await;
    assert_eq!(
        r["result"],
        t.hash_hex(),
        "the client gets the hash, not a timeout: {r}"
    );
    let got = receivers(&fakes, &t.raw_hex());
    assert_eq!(got.len(), 1);
    assert_ne!(got[0], home);
    // The lifecycle shows the attempt that timed out, then the node that took it.
    let rec = attempts(&gate, &http, &t.hash_hex()).await;
    assert_eq!(rec["attempts"][0]["outcome"], "timeout", "{rec}");
    // Tx records name nodes (`en1`, …), never show their URLs.
    assert_eq!(rec["attempts"][0]["node"], format!("en{}", home + 1));
    assert_eq!(rec["node"], format!("en{}", got[0] + 1));
    // Its next tx goes on in nonce order to a live node.
    let t2 = tx(&k, 2);
    let r = http
        .rpc(&gate.url, "klay_sendRawTransaction", json!([t2.raw_hex()]))
        .await;
    assert_eq!(r["result"], t2.hash_hex());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_reply_is_cut_is_answered_with_its_hash() {
    let (fakes, gate, http) = setup(&[100, 100, 100], 10_000).await;
    let k = key(2);
    let home = home_of(&fakes, &gate, &http, &k).await;
    // The home node takes the tx and breaks the connection before answering; the tx reached
    // the next node too (gossip), which says "known transaction".
    fakes[home].set_mode(Mode::ResetSends);
    for f in fakes.iter().filter(|f| f.id != home) {
        f.known_sends(true);
    }
    let t = tx(&k, 1);
    let r = http
        .rpc(&gate.url, "klay_sendRawTransaction", json!([t.raw_hex()]))
        .await;
    assert_eq!(r["result"], t.hash_hex(), "{r}");
    let rec = attempts(&gate, &http, &t.hash_hex()).await;
    assert_eq!(rec["attempts"][0]["outcome"], "io", "{rec}");
    assert_eq!(rec["status"], "Submitted", "{rec}");

    // A first attempt's "known transaction" is the node's answer, passed through unchanged:
    // kengate reads it as success only after a reply was lost.
    fakes[home].set_mode(Mode::Ok);
    fakes[home].known_sends(true);
    let t = tx(&k, 2);
    let r = http
        .rpc(&gate.url, "klay_sendRawTransaction", json!([t.raw_hex()]))
        .await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("known transaction"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refusing_the_resent_tx_is_the_clients_answer() {
    let (fakes, gate, http) = setup(&[100, 100], 10_000).await;
    let k = key(3);
    let home = home_of(&fakes, &gate, &http, &k).await;
    fakes[home].set_mode(Mode::ResetSends);
    fakes[1 - home].reject_sends(true);
    // "nonce too low", and the node does not have the tx's hash: a real rejection.
    let t = tx(&k, 1);
    let r = http
        .rpc(&gate.url, "klay_sendRawTransaction", json!([t.raw_hex()]))
        .await;
    assert_eq!(r["error"]["message"], "nonce too low", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_no_node_waits_for_one_to_return() {
    let (fakes, gate, http) = setup(&[100, 100], 10_000).await;
    kill_all(&fakes, &gate).await;
    let started = Instant::now();
    let call = {
        let (http, url) = (http.clone(), gate.url.clone());
        tokio::spawn(async move {
            let addr = "0x0000000000000000000000000000000000000001";
            http.rpc(&url, "klay_getBalance", json!([addr, "latest"])).await
        })
    };
    // The call is waiting, not failed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "the call did not wait for a node");
    fakes[1].revive().await;
    let r = call.await.unwrap();
    assert_eq!(r["result"]["node"], 1, "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let m = http.get(&format!("{}/metrics", gate.url)).await.text();
    assert!(m.contains("kengate_no_node_waits_total{network=\"klaytn\"} "), "{m}");
    assert!(
        m.contains("kengate_no_node_episodes_total{network=\"klaytn\"} 1"),
        "{m}"
    );
    assert!(m.contains("to=\"down\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_no_node_fails_clearly_after_the_bound() {
    let (fakes, gate, http) = setup(&[100, 100], 600).await;
    kill_all(&fakes, &gate).await;
    let started = Instant::now();
    let r = http.rpc(&gate.url, "eth_gasPrice", json!([])).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(600), "answered after {waited:?}");
    assert_eq!(r["error"]["code"], -32010, "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("within 6") && msg.contains("served head 100"), "{msg}");
    for i in 1..=fakes.len() {
        assert!(msg.contains(&format!("en{i} down at 100")), "{msg}");
    }
    let m = http.get(&format!("{}/metrics", gate.url)).await.text();
    assert!(m.contains("kengate_no_node_errors_total{network=\"klaytn\"} 1"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_a_served_block_waits_rather_than_asking_a_node_without_it() {
    // Node 1 is in sync at 100, node 0 lags at 90.
    let (fakes, gate, http) = setup(&[100, 100], 10_000).await;
    fakes[0].set_head(90);
    gate.wait_status("node 0 lagging", |s| s["nodes"][0]["state"] == "lagging")
        .await;
    fakes[1].kill();
    gate.wait_status("node 1 down", |s| s["nodes"][1]["state"] == "down")
        .await;
    let call = {
        let (http, url) = (http.clone(), gate.url.clone());
        tokio::spawn(async move { http.rpc(&url, "klay_getBlockByNumber", json!(["latest", false])).await })
    };
    // Node 0 catches up to the served head: it may answer now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call.is_finished());
    fakes[0].set_head(100);
    let r = call.await.unwrap();
    assert_eq!(r["result"]["number"], "0x64", "{r}");
}

/// A node refusing one client's request (HTTP 413: Klaytn's body limit is below kengate's) is
/// that client's answer: not retried on the other nodes, not a node error, not a health change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_a_node_refuses_is_the_clients_answer_not_a_node_fault() {
    let (fakes, gate, http) = setup(&[100, 100], 500).await;
    for f in &fakes {
        f.set_mode(Mode::Refuse413);
    }
    let r = http
        .rpc(&gate.url, "klay_getBlockByNumber", json!(["0x1", false]))
        .await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("413") && msg.contains("content length too large"), "{msg}");
    let asked: u64 = fakes.iter().map(Fake::requests).sum();
    assert_eq!(asked, 1, "the refusal was retried on another node");
    let s = gate.status().await;
    for n in s["nodes"].as_array().unwrap() {
        assert_eq!(
            (&n["state"], &n["last_error"]),
            (&json!("in_sync"), &json!(null)),
            "{s}"
        );
    }
    let m = http.get(&format!("{}/metrics", gate.url)).await.text();
    assert!(!m.contains("kengate_upstream_errors_total{"), "{m}");
}
