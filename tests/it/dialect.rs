//! Kaia v2 beside Klaytn v1 against fake nodes: each node's software is read from its
//! `rpc_modules`; a network whose nodes all run Kaia gets `kaia_` calls as sent and the v2
//! method table, one Klaytn node makes it speak `klay_` (which both serve), a node that comes
//! back upgraded is probed again, and `kaia_sendRawTransactions` goes through the write path
//! one transaction at a time.

use k256::ecdsa::SigningKey;
use serde_json::json;

use crate::support::client::Http;
use crate::support::fake::{self, Fake};
use crate::support::gate::{test_config, Gate};
use crate::support::tx::sign_transfer;

async fn gate_over(kaia: &[bool]) -> (Vec<Fake>, Gate, Http) {
    let fakes = fake::cluster(&vec![100; kaia.len()]).await;
    for (f, &k) in fakes.iter().zip(kaia) {
        f.set_kaia(k);
    }
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    gate.wait_served(100).await;
    (fakes, gate, Http::default())
}

fn sent(fakes: &[Fake], method: &str) -> usize {
    fakes.iter().map(|f| f.calls_of(method).len()).sum()
}

const ACCT: &str = "0x00000000000000000000000000000000000000aa";

#[tokio::test]
async fn a_kaia_network_gets_kaia_calls_as_sent() {
    let (fakes, gate, http) = gate_over(&[true, true, true]).await;
    let s = gate
        .wait_status("the nodes' software known", |s| s["dialect"] == "kaia")
        .await;
    assert!(
        s["nodes"].as_array().unwrap().iter().all(|n| n["software"] == "kaia"),
        "{s}"
    );
    // (a block each: kaia_x and klay_x share cache entries)
    for (m, at) in [
        ("kaia_getBalance", "0x60"),
        ("klay_getBalance", "0x61"),
        ("eth_getBalance", "0x62"),
    ] {
        http.result(&gate.url, m, json!([ACCT, at])).await;
        assert_eq!(sent(&fakes, m), 1, "{m} went upstream under another name");
    }
    // ... and share them: the same method, the same answer
    http.result(&gate.url, "klay_getBalance", json!([ACCT, "0x60"])).await;
    assert_eq!(
        sent(&fakes, "klay_getBalance"),
        1,
        "a kaia_ answer is not shared with klay_"
    );
    // v2's estimateGas takes a block: an omitted one is the served head, as for eth_.
    http.result(&gate.url, "kaia_estimateGas", json!([{"to": ACCT}])).await;
    let p = fakes
        .iter()
        .flat_map(|f| f.calls_of("kaia_estimateGas"))
        .next()
        .unwrap();
    assert_eq!(p, json!([{"to": ACCT}, "0x64"]));
    // methods only v2 has are known; v1-only wiring is not
    http.result(&gate.url, "eth_blobBaseFee", json!([])).await;
    assert_eq!(sent(&fakes, "eth_blobBaseFee"), 1);
    let r = http.rpc(&gate.url, "eth_setPublicKlayAPI", json!([])).await;
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = http.rpc(&gate.url, "auction_submitBid", json!([{}])).await;
    assert!(r["error"]["message"].as_str().unwrap().contains("not allowed"), "{r}");
    gate.stop().await;
}

#[tokio::test]
async fn one_klaytn_node_makes_the_network_speak_klay_until_it_is_upgraded() {
    let (fakes, gate, http) = gate_over(&[false, true, true]).await;
    let s = gate
        .wait_status("every node's software known", |s| {
            s["nodes"].as_array().unwrap().iter().all(|n| n["software"].is_string())
        })
        .await;
    assert_eq!(s["dialect"], "klaytn", "{s}");
    http.result(&gate.url, "kaia_getBalance", json!([ACCT, "latest"])).await;
    assert_eq!(sent(&fakes, "kaia_getBalance"), 0);
    assert_eq!(sent(&fakes, "klay_getBalance"), 1);
    // v1's estimateGas takes no block: nothing is added
    http.result(&gate.url, "kaia_estimateGas", json!([{"to": ACCT}])).await;
    let p = fakes
        .iter()
        .flat_map(|f| f.calls_of("klay_estimateGas"))
        .next()
        .unwrap();
    assert_eq!(p, json!([{"to": ACCT}]));

    // The Klaytn node goes down and comes back running Kaia: probed again.
    fakes[0].kill();
    gate.wait_status("node 0 down", |s| s["nodes"][0]["state"] == "down")
        .await;
    fakes[0].set_kaia(true);
    fakes[0].revive().await;
    let s = gate
        .wait_status("node 0 back as Kaia", |s| {
            s["nodes"][0]["state"] == "in_sync" && s["nodes"][0]["software"] == "kaia"
        })
        .await;
    assert_eq!(s["dialect"], "kaia", "{s}");
    http.result(&gate.url, "kaia_getBalance", json!([ACCT, "0x63"])).await;
    assert_eq!(sent(&fakes, "kaia_getBalance"), 1);
    gate.stop().await;
}

fn key(i: u8) -> SigningKey {
    let mut b = [0u8; 32];
    b[31] = i + 1;
    b[0] = 0x51;
    SigningKey::from_slice(&b).unwrap()
}

#[tokio::test]
async fn send_raw_transactions_goes_through_the_write_path_one_by_one() {
    let (fakes, gate, http) = gate_over(&[true, true, true]).await;
    gate.wait_status("kaia", |s| s["dialect"] == "kaia").await;
    let txs: Vec<_> = (0..4)
        .map(|i| sign_transfer(&key(i % 2), 1337, u64::from(i / 2), 50_000_000_000, [7; 20], 1))
        .collect();
    let raws: Vec<String> = txs.iter().map(|t| t.raw_hex()).collect();
    let hashes: Vec<String> = txs.iter().map(|t| t.hash_hex()).collect();
    let r = http.result(&gate.url, "kaia_sendRawTransactions", json!([raws])).await;
    assert_eq!(r, json!(hashes));
    // each one alone, as the single send, to its sender's node; never the lot to one node
    assert_eq!(sent(&fakes, "kaia_sendRawTransactions"), 0);
    assert_eq!(sent(&fakes, "kaia_sendRawTransaction"), 4);
    for t in &txs {
        let st = http
            .result(&gate.url, "kengate_getTransactionStatus", json!([t.hash_hex()]))
            .await;
        assert!(st.is_object(), "{st}");
    }

    // The node's wording for a failure: stops there, says which one.
    for f in &fakes {
        f.reject_sends(true);
    }
    let more: Vec<String> = (0..2)
        .map(|i| sign_transfer(&key(5), 1337, i, 50_000_000_000, [7; 20], 1).raw_hex())
        .collect();
    let r = http.rpc(&gate.url, "kaia_sendRawTransactions", json!([more])).await;
    assert_eq!(r["error"]["code"], -32000, "{r}");
    assert_eq!(r["error"]["message"], "Index 0: nonce too low", "{r}");
    // Malformed params reach a node as sent, for its own error.
    let before = sent(&fakes, "kaia_sendRawTransactions");
    http.rpc(&gate.url, "kaia_sendRawTransactions", json!([[]])).await;
    assert_eq!(sent(&fakes, "kaia_sendRawTransactions"), before + 1);
    gate.stop().await;
}
