//! Transparency: what kengate does not need to rewrite reaches a node as the client sent it,
//! and the node's answer — result or error, code and message — reaches the client unchanged.
//! Each test pins one cause the conformance suite found (`scripts/conformance`).

use serde_json::{json, Value};

use crate::support::client::Http;
use crate::support::fake;
use crate::support::gate::{test_config, Gate};

async fn setup(heads: &[u64]) -> (Vec<fake::Fake>, Gate, Http) {
    let fakes = fake::cluster(heads).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cache.max_bytes = 0;
    let gate = Gate::start(cfg).await;
    gate.wait_served(heads.iter().copied().min().unwrap_or(0)).await;
    (fakes, gate, Http::default())
}

/// Every call any fake received, in order.
fn all_calls(fakes: &[fake::Fake]) -> Vec<(String, Value)> {
    fakes.iter().flat_map(|f| f.calls()).collect()
}

#[tokio::test]
async fn params_kengate_cannot_read_reach_the_node_and_its_error_comes_back() {
    let (fakes, gate, http) = setup(&[100]).await;
    let addr = "0x0000000000000000000000000000000000000001";
    let cases = [
        (
            "klay_getBalance",
            json!([addr, "soon"]),
            "invalid argument 1: hex string without 0x prefix",
        ),
        (
            "eth_getBalance",
            json!([addr, "safe"]),
            "invalid argument 1: hex string without 0x prefix",
        ),
        (
            "klay_getBalance",
            json!([addr, "0x"]),
            "invalid argument 1: hex string without 0x prefix",
        ),
        (
            "kaia_getBlockReceipts",
            json!([{"x": 1}]),
            "invalid argument 0: hex string without 0x prefix",
        ),
        (
            "klay_getFilterChanges",
            json!([1]),
            "invalid argument 0: json: cannot unmarshal number into Go value of type rpc.ID",
        ),
        (
            "eth_uninstallFilter",
            json!([]),
            "missing value for required argument 0",
        ),
    ];
    for (method, params, message) in cases {
        fakes[0].clear_calls();
        let r = http.rpc(&gate.url, method, params.clone()).await;
        assert_eq!(
            r["error"],
            json!({"code": -32602, "message": message}),
            "{method} {params}: the node's error, unchanged"
        );
        // Sent as the client sent it (kaia_ goes upstream as klay_ on Klaytn); filters are
        // kengate's own (events/), which answers with the node's words.
        if !method.contains("Filter") {
            let upstream = method.replace("kaia_", "klay_");
            assert_eq!(fakes[0].calls(), vec![(upstream, params)], "{method}");
        }
    }
    // A getLogs filter kengate cannot read is the node's to judge too.
    for params in [json!([5]), json!([{"fromBlock": "soon"}]), json!([])] {
        fakes[0].clear_calls();
        http.rpc(&gate.url, "eth_getLogs", params.clone()).await;
        assert_eq!(fakes[0].calls(), vec![("eth_getLogs".into(), params)]);
    }
    // Named params: Klaytn's "non-array args" is the node's to give.
    fakes[0].clear_calls();
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"klay_getBalance","params":{"a":1}}"#;
    let r = http.post(&gate.url, body).await.json();
    assert_eq!(r["id"], 7);
    assert_eq!(fakes[0].calls().len(), 1, "forwarded: {r}");
}

#[tokio::test]
async fn json_integer_block_numbers_are_block_numbers() {
    let (fakes, gate, http) = setup(&[100, 102]).await;
    for method in ["klay_getBlockReceipts", "eth_getBlockReceipts", "kaia_getBlockReceipts"] {
        for _ in 0..10 {
            let r = http.result(&gate.url, method, json!([101])).await;
            // Only the node that has block 101 is asked, with the param as sent.
            assert_eq!(r, json!({"block": 101, "node": 1}), "{method}");
        }
    }
    let r = http.result(&gate.url, "klay_getBlockReceipts", json!([10])).await;
    assert_eq!(r["block"], 10);
    assert!(all_calls(&fakes)
        .iter()
        .all(|(m, p)| m.ends_with("_getBlockReceipts") && p[0].is_u64()));
}

#[tokio::test]
async fn required_block_arguments_are_not_filled() {
    let (fakes, gate, http) = setup(&[100]).await;
    let cases = [
        ("klay_getBlockTransactionCountByNumber", json!([]), 0),
        ("eth_getBlockReceipts", json!([]), 0),
        ("klay_forkStatus", json!([]), 0),
        ("eth_getUncleByBlockNumberAndIndex", json!([]), 0),
        ("klay_getTransactionByBlockNumberAndIndex", json!([]), 0),
        (
            "eth_call",
            json!([{"to": "0x0000000000000000000000000000000000000001"}]),
            1,
        ),
        (
            "klay_getBalance",
            json!(["0x0000000000000000000000000000000000000001"]),
            1,
        ),
    ];
    for (method, params, arg) in cases {
        fakes[0].clear_calls();
        let r = http.rpc(&gate.url, method, params.clone()).await;
        assert_eq!(
            r["error"]["message"],
            format!("missing value for required argument {arg}"),
            "{method}: {r}"
        );
        assert_eq!(fakes[0].calls()[0].1, params, "{method} sent unchanged");
    }
    // Where the node reads an omitted block as its current one, the served head is sent.
    fakes[0].clear_calls();
    http.result(&gate.url, "klay_getCouncil", json!([])).await;
    http.result(
        &gate.url,
        "eth_estimateGas",
        json!([{"to": "0x0000000000000000000000000000000000000001"}]),
    )
    .await;
    let calls = fakes[0].calls();
    assert_eq!(calls[0].1, json!(["0x64"]));
    assert_eq!(calls[1].1[1], "0x64");
}

#[tokio::test]
async fn uninstalling_an_unknown_filter_is_false_as_on_the_node() {
    let (_fakes, gate, http) = setup(&[100, 100]).await;
    let id = http.result(&gate.url, "klay_newBlockFilter", json!([])).await;
    assert_eq!(http.result(&gate.url, "klay_uninstallFilter", json!([id])).await, true);
    // Already removed, and never created: `false`, not an error.
    assert_eq!(http.result(&gate.url, "klay_uninstallFilter", json!([id])).await, false);
    for m in ["klay_uninstallFilter", "eth_uninstallFilter", "kaia_uninstallFilter"] {
        assert_eq!(http.result(&gate.url, m, json!(["0x1234"])).await, false, "{m}");
    }
    // Polling an unknown id: the node's own error.
    let r = http.rpc(&gate.url, "eth_getFilterChanges", json!(["0x1234"])).await;
    assert_eq!(r["error"], json!({"code": -32000, "message": "filter not found"}));
}

#[tokio::test]
async fn harmless_methods_are_forwarded() {
    let (fakes, gate, http) = setup(&[100]).await;
    let methods = [
        ("klay_sha3", json!(["0x68656c6c6f"])),
        ("web3_sha3", json!(["0x68656c6c6f"])),
        (
            "klay_recoverFromMessage",
            json!(["0x0000000000000000000000000000000000000001", "0x01", "0x02", "latest"]),
        ),
        ("klay_clientVersion", json!([])),
        ("net_peerCountByType", json!([])),
        ("eth_getHashrate", json!([])),
        ("eth_pendingTransactions", json!([])),
        ("klay_pendingTransactions", json!([])),
        ("eth_fillTransaction", json!([{}])),
        ("eth_submitWork", json!(["0x0000000000000001", "0x01", "0x02"])),
        ("eth_submitHashrate", json!(["0x1", "0x01"])),
        ("klay_getTransactionReceiptInCache", json!(["0x01"])),
    ];
    for (m, params) in methods {
        let r = http.rpc(&gate.url, m, params).await;
        assert_eq!(r["result"]["node"], 0, "{m}: {r}");
    }
    // recoverFromMessage reads at a block: `latest` became the served head.
    let calls = fakes[0].calls_of("klay_recoverFromMessage");
    assert_eq!(calls[0][3], "0x64");
}

#[tokio::test]
async fn methods_that_use_the_nodes_keys_are_denied_with_the_reason() {
    let (fakes, gate, http) = setup(&[100]).await;
    for m in [
        "klay_sendTransaction",
        "kaia_sendTransaction",
        "eth_sendTransaction",
        "klay_sendTransactionAsFeePayer",
        "klay_signTransaction",
        "klay_signTransactionAsFeePayer",
        "eth_signTransaction",
        "klay_sign",
        "eth_sign",
        "klay_accounts",
        "eth_accounts",
        "klay_resend",
        "personal_unlockAccount",
        "personal_listAccounts",
    ] {
        let r = http.rpc(&gate.url, m, json!([])).await;
        assert_eq!(r["error"]["code"], -32601, "{m}");
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(m) && msg.contains("keys it holds") && msg.contains("[methods]"),
            "{m}: {msg}"
        );
    }
    // Internal wiring the node registers by reflection is never reached either.
    let r = http.rpc(&gate.url, "eth_setPublicKlayAPI", json!([null])).await;
    assert!(r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("not a public API"));
    assert!(fakes[0].calls().is_empty(), "{:?}", fakes[0].calls());

    // An operator may allow one.
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.methods.allow = vec!["klay_accounts".into()];
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    assert_eq!(http.result(&gate.url, "klay_accounts", json!([])).await["node"], 0);
}

#[tokio::test]
async fn unknown_methods_are_answered_as_a_node_answers_them() {
    let (fakes, gate, http) = setup(&[100]).await;
    let r = http.rpc(&gate.url, "klay_nope", json!([])).await;
    assert_eq!(
        r["error"],
        json!({"code": -32601, "message": "the method klay_nope does not exist/is not available"})
    );
    // A hostile method name is not echoed whole.
    let long = format!("klay_{}", "x".repeat(100_000));
    let r = http.rpc(&gate.url, &long, json!([])).await;
    assert!(r["error"]["message"].as_str().unwrap().len() < 400);
    assert!(fakes[0].calls().is_empty());
}
