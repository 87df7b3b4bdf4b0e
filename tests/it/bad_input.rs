//! Bad input gets a clear JSON-RPC error or HTTP 4xx, and the gateway keeps serving.

use serde_json::json;

use crate::support::client::Http;
use crate::support::fake;
use crate::support::gate::{test_config, Gate};

#[tokio::test]
async fn malformed_requests_get_the_right_codes() {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.limits.max_batch = 3;
    cfg.limits.max_body_bytes = 4096;
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let http = Http::default();
    let code = |body: &'static str| {
        let (http, url) = (http.clone(), gate.url.clone());
        async move {
            let r = http.post(&url, body).await;
            assert_eq!(r.status, 200, "{body}");
            r.json()["error"]["code"]
                .as_i64()
                .unwrap_or_else(|| panic!("no error for {body}"))
        }
    };
    assert_eq!(code("{").await, -32700);
    assert_eq!(code("").await, -32700);
    assert_eq!(code("\u{1}garbage").await, -32700);
    assert_eq!(code("42").await, -32600);
    assert_eq!(code("[]").await, -32600);
    assert_eq!(code("[1,2,3,4]").await, -32600);
    assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#).await, -32600);
    // Params that are neither an array nor an object break the JSON-RPC envelope.
    assert_eq!(
        code(r#"{"jsonrpc":"2.0","id":1,"method":"klay_getBalance","params":"x"}"#).await,
        -32602
    );

    for m in [
        "admin_addPeer",
        "personal_unlockAccount",
        "debug_traceTransaction",
        "txpool_content",
        "klay_nope",
    ] {
        let r = http.rpc(&gate.url, m, json!([])).await;
        assert_eq!(r["error"]["code"], -32601, "{m}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(m),
            "the method is named: {r}"
        );
    }
    // Over HTTP, subscribe gets what a node says.
    let r = http.rpc(&gate.url, "klay_subscribe", json!(["newHeads"])).await;
    assert_eq!(r["error"]["message"], "notifications not supported");

    // Oversized bodies: 413, with or without a Content-Length that says so.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"klay_gasPrice","params":["{}"]}}"#,
        "a".repeat(5000)
    );
    assert_eq!(http.post(&gate.url, big).await.status, 413);

    // Still serving, and nothing reached the node for any of the above.
    let r = http.rpc(&gate.url, "klay_gasPrice", json!([])).await;
    assert_eq!(r["result"]["node"], 0);
    assert_eq!(fakes[0].calls().len(), 1, "{:?}", fakes[0].calls());
}

#[tokio::test]
async fn configured_methods_are_allowed_and_denied() {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.methods.allow = vec!["debug_traceTransaction".into(), "admin_nodeInfo".into()];
    cfg.methods.deny = vec!["klay_sendTransaction".into()];
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let http = Http::default();
    assert!(http
        .rpc(&gate.url, "debug_traceTransaction", json!(["0x01"]))
        .await
        .get("result")
        .is_some());
    assert!(http
        .rpc(&gate.url, "admin_nodeInfo", json!([]))
        .await
        .get("result")
        .is_some());
    assert_eq!(
        http.rpc(&gate.url, "klay_sendTransaction", json!([{}])).await["error"]["code"],
        -32601
    );
}

#[tokio::test]
async fn other_paths_and_verbs() {
    let fakes = fake::cluster(&[100]).await;
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    let http = Http::default();
    assert_eq!(http.get(&format!("{}/nope", gate.url)).await.status, 404);
    assert_eq!(http.get(&gate.url).await.status, 200);
    gate.wait_served(100).await;
    let r = http
        .post(
            &format!("{}/v1/klaytn", gate.url),
            r#"{"jsonrpc":"2.0","id":1,"method":"klay_blockNumber"}"#,
        )
        .await;
    assert_eq!(r.json()["result"], "0x64");
}
