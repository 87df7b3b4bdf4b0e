//! The write path against fake nodes: sender-sticky, nonce-ordered submission,
//! read-your-writes, and re-submission when a sender's home node fails.

use std::time::Duration;

use k256::ecdsa::SigningKey;
use serde_json::json;

use crate::support::client::{quantity, Http};
use crate::support::fake::{self, Fake};
use crate::support::gate::{test_config, Gate};
use crate::support::tx::{address_of, sign_transfer};

fn key(i: u8) -> SigningKey {
    let mut b = [0u8; 32];
    b[31] = i + 1;
    b[0] = 0x42;
    SigningKey::from_slice(&b).unwrap()
}

fn addr_hex(k: &SigningKey) -> String {
    format!("0x{}", hex::encode(address_of(k)))
}

fn raw(k: &SigningKey, nonce: u64) -> String {
    sign_transfer(k, 1337, nonce, 50_000_000_000, [7; 20], 1).raw_hex()
}

/// Which fake received each raw tx (by the raw hex param).
fn receivers(fakes: &[Fake], raw: &str) -> Vec<usize> {
    fakes
        .iter()
        .filter(|f| f.calls_of("klay_sendRawTransaction").iter().any(|p| p[0] == raw))
        .map(|f| f.id)
        .collect()
}

async fn setup() -> (Vec<Fake>, Gate, Http) {
    let fakes = fake::cluster(&[100, 100, 100]).await;
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    gate.wait_served(100).await;
    (fakes, gate, Http::default())
}

#[tokio::test]
async fn each_sender_sticks_to_one_home_node_and_senders_spread() {
    let (fakes, gate, http) = setup().await;
    let mut homes = std::collections::BTreeSet::new();
    for s in 0..12 {
        let k = key(s);
        let mut seen = Vec::new();
        for n in 0..4 {
            let tx = raw(&k, n);
            http.result(&gate.url, "klay_sendRawTransaction", json!([tx])).await;
            seen.extend(receivers(&fakes, &tx));
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "sender {s} went to {seen:?}");
        homes.insert(seen[0]);
        // Its pending state is read where its writes went.
        http.result(&gate.url, "klay_getTransactionCount", json!([addr_hex(&k), "pending"]))
            .await;
        let asked: Vec<usize> = fakes
            .iter()
            .filter(|f| {
                f.calls_of("klay_getTransactionCount")
                    .iter()
                    .any(|p| p[0] == addr_hex(&k))
            })
            .map(|f| f.id)
            .collect();
        assert_eq!(asked, seen);
    }
    assert!(homes.len() >= 2, "12 senders all on one node: {homes:?}");
}

#[tokio::test]
async fn a_sender_txs_are_forwarded_in_nonce_order() {
    let (fakes, gate, http) = setup().await;
    let k = key(1);
    let (tx0, tx1, tx2) = (raw(&k, 0), raw(&k, 1), raw(&k, 2));
    http.result(&gate.url, "klay_sendRawTransaction", json!([tx0])).await;
    // nonce 2 arrives before nonce 1: it waits for the gap to fill.
    let (h, u) = (http.clone(), gate.url.clone());
    let late = tokio::spawn(async move { h.result(&u, "eth_sendRawTransaction", json!([tx2])).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    http.result(&gate.url, "klay_sendRawTransaction", json!([tx1])).await;
    late.await.unwrap();
    let home = receivers(&fakes, &tx0)[0];
    let order: Vec<String> = fakes[home]
        .calls()
        .into_iter()
        .filter(|(m, _)| m.ends_with("_sendRawTransaction"))
        .map(|(_, p)| p[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, vec![raw(&k, 0), raw(&k, 1), raw(&k, 2)]);
}

#[tokio::test]
async fn pending_nonce_never_goes_below_what_was_forwarded() {
    let (_fakes, gate, http) = setup().await;
    let k = key(2);
    for n in 0..5 {
        http.result(&gate.url, "klay_sendRawTransaction", json!([raw(&k, n)]))
            .await;
    }
    // The fake node answers 0x0 (it "has not pooled them yet"); kengate answers 5.
    for m in [
        "klay_getTransactionCount",
        "kaia_getTransactionCount",
        "eth_getTransactionCount",
    ] {
        let n = http.result(&gate.url, m, json!([addr_hex(&k), "pending"])).await;
        assert_eq!(quantity(&n), 5, "{m}");
    }
    // `latest` is the mined state: not raised.
    let n = http
        .result(&gate.url, "klay_getTransactionCount", json!([addr_hex(&k), "latest"]))
        .await;
    assert_eq!(quantity(&n), 0);
}

#[tokio::test]
async fn lookups_of_a_sent_tx_go_to_the_node_that_accepted_it() {
    let (fakes, gate, http) = setup().await;
    let k = key(3);
    let signed = sign_transfer(&k, 1337, 0, 50_000_000_000, [7; 20], 1);
    http.result(&gate.url, "klay_sendRawTransaction", json!([signed.raw_hex()]))
        .await;
    let home = receivers(&fakes, &signed.raw_hex())[0];
    fakes[home].add_tx(&signed.hash_hex(), 100); // only the home node has it so far
    for _ in 0..10 {
        let r = http
            .result(&gate.url, "klay_getTransactionReceipt", json!([signed.hash_hex()]))
            .await;
        assert_eq!(r["node"], home);
    }
}

#[tokio::test]
async fn unmined_txs_move_to_the_new_home_when_the_home_node_fails() {
    let (fakes, gate, http) = setup().await;
    let k = key(4);
    let txs: Vec<String> = (0..3).map(|n| raw(&k, n)).collect();
    for tx in &txs {
        http.result(&gate.url, "klay_sendRawTransaction", json!([tx])).await;
    }
    let home = receivers(&fakes, &txs[0])[0];
    fakes[home].kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let moved: Vec<Vec<usize>> = txs.iter().map(|t| receivers(&fakes, t)).collect();
        if moved.iter().all(|r| r.len() == 2) {
            let new_home = moved[0].iter().copied().find(|&n| n != home).unwrap();
            // Re-submitted in nonce order.
            let order: Vec<String> = fakes[new_home]
                .calls_of("klay_sendRawTransaction")
                .into_iter()
                .map(|p| p[0].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(order, txs);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not re-submitted: {moved:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // New txs of the sender go to the new home too, and the nonce floor holds.
    let n = http
        .result(&gate.url, "klay_getTransactionCount", json!([addr_hex(&k), "pending"]))
        .await;
    assert_eq!(quantity(&n), 3);
}

async fn wait_status(http: &Http, url: &str, hash: &str, want: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = http.result(url, "kengate_getTransactionStatus", json!([hash])).await;
        if r["status"] == want {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{hash} never reached {want}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_lifecycle_is_recorded_and_queryable() {
    let (fakes, gate, http) = setup().await;
    let k = key(5);
    let signed = sign_transfer(&k, 1337, 0, 50_000_000_000, [7; 20], 1);
    http.result(&gate.url, "klay_sendRawTransaction", json!([signed.raw_hex()]))
        .await;
    let home = receivers(&fakes, &signed.raw_hex())[0];
    let r = wait_status(&http, &gate.url, &signed.hash_hex(), "Pending").await;
    assert_eq!(r["node"], format!("en{}", home + 1));
    assert_eq!(r["sender"], addr_hex(&k));
    assert!(r["created_at"].as_u64() <= r["submitted_at"].as_u64());

    for f in &fakes {
        f.add_tx(&signed.hash_hex(), 100); // mined: every node has the receipt
    }
    let r = wait_status(&http, &gate.url, &signed.hash_hex(), "InBlock").await;
    assert_eq!(
        (r["block_number"].clone(), r["success"].clone(), r["gas_used"].clone()),
        (json!(100), json!(true), json!(21000))
    );

    // Refused by the node: Rejected, with the node's error.
    for f in &fakes {
        f.reject_sends(true);
    }
    let bad = sign_transfer(&k, 1337, 1, 50_000_000_000, [7; 20], 1);
    let reply = http
        .rpc(&gate.url, "klay_sendRawTransaction", json!([bad.raw_hex()]))
        .await;
    assert_eq!(reply["error"]["message"], "nonce too low");
    let r = wait_status(&http, &gate.url, &bad.hash_hex(), "Rejected").await;
    assert!(r["error"].as_str().unwrap().contains("nonce too low"));

    // REST: one record, and the sender's history newest first, paginated.
    let one = http.get(&format!("{}/v1/tx/{}", gate.url, signed.hash_hex())).await;
    assert_eq!((one.status, one.json()["status"].clone()), (200, json!("InBlock")));
    assert_eq!(
        http.get(&format!("{}/v1/tx/0x{}", gate.url, "0".repeat(64)))
            .await
            .status,
        404
    );
    assert_eq!(http.get(&format!("{}/v1/tx/0x12", gate.url)).await.status, 400);
    let page = http
        .get(&format!("{}/v1/tx?sender={}&size=1", gate.url, addr_hex(&k)))
        .await
        .json();
    assert_eq!(page["items"][0]["hash"], bad.hash_hex());
    let next = http
        .get(&format!(
            "{}/v1/tx?sender={}&size=1&cursor={}",
            gate.url,
            addr_hex(&k),
            page["cursor"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(next["items"][0]["hash"], signed.hash_hex());
    assert_eq!(next["cursor"], serde_json::Value::Null);
    let failed = http.get(&format!("{}/v1/tx?status=Rejected", gate.url)).await.json();
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(http.get(&format!("{}/v1/tx?status=Lost", gate.url)).await.status, 400);
    let r = http
        .rpc(&gate.url, "kengate_getTransactionStatus", json!(["0x12"]))
        .await;
    assert_eq!(r["error"]["code"], -32602);
}

#[tokio::test]
async fn a_restart_keeps_every_record_and_rechecks_txs_in_flight() {
    let fakes = fake::cluster(&[100, 100, 100]).await;
    let cfg = test_config(&fake::urls(&fakes));
    let gate = Gate::start(cfg.clone()).await;
    gate.wait_served(100).await;
    let http = Http::default();
    let k = key(6);
    let txs: Vec<_> = (0..3)
        .map(|n| sign_transfer(&k, 1337, n, 50_000_000_000, [7; 20], 1))
        .collect();
    for t in &txs {
        http.result(&gate.url, "klay_sendRawTransaction", json!([t.raw_hex()]))
            .await;
    }
    gate.stop().await;

    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    for t in &txs {
        let r = http
            .result(&gate.url, "kengate_getTransactionStatus", json!([t.hash_hex()]))
            .await;
        assert!(r["status"] == "Submitted" || r["status"] == "Pending", "{r}");
        for f in &fakes {
            f.add_tx(&t.hash_hex(), 100);
        }
    }
    for t in &txs {
        wait_status(&http, &gate.url, &t.hash_hex(), "InBlock").await;
    }
    // The restored state still backs read-your-writes.
    let n = http
        .result(&gate.url, "klay_getTransactionCount", json!([addr_hex(&k), "pending"]))
        .await;
    assert!(quantity(&n) == 3 || quantity(&n) == 0, "{n}");
}

#[tokio::test]
async fn a_pending_tx_that_leaves_the_pool_is_sent_again() {
    let (fakes, gate, http) = setup().await;
    let k = key(7);
    let signed = sign_transfer(&k, 1337, 0, 50_000_000_000, [7; 20], 1);
    http.result(&gate.url, "klay_sendRawTransaction", json!([signed.raw_hex()]))
        .await;
    wait_status(&http, &gate.url, &signed.hash_hex(), "Pending").await;
    let home = receivers(&fakes, &signed.raw_hex())[0];
    fakes[home].clear_pool();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fakes[home].calls_of("klay_sendRawTransaction").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "not sent again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in &fakes {
        f.add_tx(&signed.hash_hex(), 100);
    }
    wait_status(&http, &gate.url, &signed.hash_hex(), "InBlock").await;
}
