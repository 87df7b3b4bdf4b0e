//! The cluster itself (its lag controls) and kengate's view of it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::{Localnet, Restore};

async fn heads(http: &Http, net: &Localnet) -> Vec<u64> {
    let mut v = Vec::new();
    for url in &net.en_http {
        v.push(quantity(&http.result(url, "klay_blockNumber", json!([])).await));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_freezes_one_en_and_attach_lets_it_catch_up() {
    let net = Localnet::load();
    let http = Http::default();
    net.ctl(&["detach", "2"]);
    let _restore = Restore {
        net: &net,
        args: vec!["attach", "2"],
    };
    let before = heads(&http, &net).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = heads(&http, &net).await;
    println!("heads before {before:?}, after 6 s {after:?}");
    assert!(
        after[1] <= before[1] + 1,
        "EN2 kept syncing while detached: {before:?} -> {after:?}"
    );
    assert!(
        after[0] >= before[0] + 3 && after[2] >= before[2] + 3,
        "EN1/EN3 stalled: {before:?} -> {after:?}"
    );
    assert!(
        after[0] - after[1] > before[0].saturating_sub(before[1]) + 2,
        "the gap did not grow"
    );

    net.ctl(&["attach", "2"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        let h = heads(&http, &net).await;
        if h[0].abs_diff(h[1]) <= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "EN2 did not catch up: {h:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kengate_serves_the_real_cluster_in_every_namespace_and_transport() {
    let net = Localnet::load();
    let gate = Gate::start(test_config(&net.nodes())).await;
    let http = Http::default();
    let s = gate
        .wait_status("3 nodes in sync", |s| {
            s["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().all(|n| n["state"] == "in_sync"))
        })
        .await;
    let served = s["served_head"].as_u64().unwrap();
    let en = heads(&http, &net).await;
    assert!(
        en.iter().all(|&h| h + 2 >= served && h <= served + 3),
        "served {served} vs ENs {en:?}"
    );

    // klay_ / kaia_ / eth_: Klaytn v1.12 has no kaia_ namespace, so kengate sends it as klay_;
    // Kaia v2 serves kaia_ natively (klay_ is its alias), so kengate sends it as is.
    let acct = &net.accounts[0].address;
    let direct = http
        .rpc(&net.en_http[0], "kaia_getBalance", json!([acct, "latest"]))
        .await;
    match net.flavour.as_str() {
        "kaia" => assert!(direct["result"].is_string(), "a Kaia node serves kaia_: {direct}"),
        _ => assert_eq!(direct["error"]["code"], -32601, "the node itself lacks kaia_: {direct}"),
    }
    assert_eq!(s["dialect"], net.flavour, "{s}");
    assert!(
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["software"] == net.flavour.as_str()),
        "{s}"
    );
    for m in ["klay_getBalance", "kaia_getBalance", "eth_getBalance"] {
        let b = http.result(&gate.url, m, json!([acct, "latest"])).await;
        assert!(
            b.as_str().is_some_and(|s| s.starts_with("0x") && s != "0x0"),
            "{m}: {b}"
        );
    }
    assert_eq!(
        quantity(&http.result(&gate.url, "klay_chainID", json!([])).await),
        net.chain_id
    );
    assert_eq!(
        quantity(&http.result(&gate.url, "eth_chainId", json!([])).await),
        net.chain_id
    );

    // A block filter lives on one node; its changes come back through kengate.
    let f = http.result(&gate.url, "klay_newBlockFilter", json!([])).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let changes = http.result(&gate.url, "klay_getFilterChanges", json!([f])).await;
    assert!(
        !changes.as_array().unwrap().is_empty(),
        "no new blocks in 2.5 s: {changes}"
    );
    assert_eq!(
        http.result(&gate.url, "klay_uninstallFilter", json!([f])).await,
        json!(true)
    );

    // Over WebSocket on the same port.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"jsonrpc":"2.0","id":9,"method":"klay_getBlockByNumber","params":["latest",false]}).to_string(),
    ))
    .await
    .unwrap();
    let reply = loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert!(quantity(&reply["result"]["number"]) >= served, "{reply}");

    // Admin stays closed.
    assert_eq!(
        http.rpc(&gate.url, "admin_peers", json!([])).await["error"]["code"],
        -32601
    );

    // A stopped EN is seen down and avoided; a hung (paused) one too; reads keep working.
    for (stop, start) in [(["stop", "3"], ["start", "3"]), (["pause", "1"], ["resume", "1"])] {
        net.ctl(&stop);
        let restore = Restore {
            net: &net,
            args: start.to_vec(),
        };
        let node = if stop[1] == "3" { 2 } else { 0 };
        for _ in 0..20 {
            let b = http
                .result(&gate.url, "klay_getBlockByNumber", json!(["latest", false]))
                .await;
            assert!(b.is_object(), "{b}");
        }
        gate.wait_status("the node down", |s| s["nodes"][node]["state"] == "down")
            .await;
        net.ctl(&start);
        drop(restore);
        gate.wait_status("the node back in sync", |s| s["nodes"][node]["state"] == "in_sync")
            .await;
    }
    gate.stop().await;
}

/// The forwarding path (cache and coalescing off, where replies nothing reads are passed on
/// unread) gives the nodes' own bytes on the real cluster: a batch of reads and a single block
/// read through kengate carry, text for text, the results EN1 gives for the same calls (a
/// final block, which every EN has and serves alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kengate_serves_the_forwarding_path_with_the_nodes_own_bytes() {
    let net = Localnet::load();
    let mut cfg = test_config(&net.nodes());
    cfg.cache.max_bytes = 0;
    cfg.cache.coalesce = false;
    let gate = Gate::start(cfg).await;
    let served = gate.wait_all_in_sync().await["served_head"].as_u64().unwrap();
    let block = format!("0x{:x}", served.saturating_sub(2));
    let acct = &net.accounts[0].address;
    let http = Http::default();

    /// Each element's id and its result's text, in id order.
    fn results(body: &[u8]) -> Vec<(u64, String)> {
        #[derive(serde::Deserialize)]
        struct Element {
            id: u64,
            result: Box<serde_json::value::RawValue>,
        }
        let mut out: Vec<(u64, String)> = serde_json::from_slice::<Vec<Element>>(body)
            .unwrap_or_else(|e| panic!("not a batch of results ({e}): {}", String::from_utf8_lossy(body)))
            .into_iter()
            .map(|e| (e.id, e.result.get().to_owned()))
            .collect();
        out.sort();
        out
    }
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "klay_getBlockByNumber", "params": [block, true]},
        {"jsonrpc": "2.0", "id": 2, "method": "klay_getBalance", "params": [acct, block]},
        {"jsonrpc": "2.0", "id": 3, "method": "klay_getBlockByNumber", "params": ["0x0", false]},
        {"jsonrpc": "2.0", "id": 4, "method": "klay_getTransactionCount", "params": [acct, block]},
    ])
    .to_string();
    let direct = results(&http.post(&net.en_http[0], batch.clone()).await.body);
    assert_eq!(direct.len(), 4, "{direct:?}");
    for _ in 0..6 {
        // Several times: round-robin takes the batch to every EN in turn.
        assert_eq!(results(&http.post(&gate.url, batch.clone()).await.body), direct);
    }

    let single =
        json!({"jsonrpc": "2.0", "id": 7, "method": "klay_getBlockByNumber", "params": [block, false]}).to_string();
    let result = |body: &[u8]| results(format!("[{}]", String::from_utf8_lossy(body)).as_bytes());
    let direct = result(&http.post(&net.en_http[0], single.clone()).await.body);
    for _ in 0..6 {
        assert_eq!(result(&http.post(&gate.url, single.clone()).await.body), direct);
    }
    gate.stop().await;
}
