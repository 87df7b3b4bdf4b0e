//! The routing rules, each observed through the wire.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::client::{quantity, Http};
use crate::support::fake::{self, Mode};
use crate::support::gate::{test_config, Gate};

/// Routing rules are observed call by call, so nothing is answered from the cache here
/// (`cache.rs` tests the cache).
async fn setup(heads: &[u64]) -> (Vec<fake::Fake>, Gate, Http) {
    let fakes = fake::cluster(heads).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cache.max_bytes = 0;
    let gate = Gate::start(cfg).await;
    (fakes, gate, Http::default())
}

/// As [`setup`], with coalescing off too: the forwarding path `scripts/bench` compares with
/// nginx, once the gate serves `head`.
async fn forwarding_path(heads: &[u64], head: u64) -> (Vec<fake::Fake>, Gate, Http) {
    let fakes = fake::cluster(heads).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cache.max_bytes = 0;
    cfg.cache.coalesce = false;
    let gate = Gate::start(cfg).await;
    gate.wait_served(head).await;
    (fakes, gate, Http::default())
}

#[tokio::test]
async fn block_number_is_the_served_head_and_never_decreases() {
    let (fakes, gate, http) = setup(&[100, 101, 102]).await;
    gate.wait_served(100).await;
    assert_eq!(
        quantity(&http.result(&gate.url, "klay_blockNumber", json!([])).await),
        100
    );
    assert_eq!(
        quantity(&http.result(&gate.url, "eth_blockNumber", json!([])).await),
        100
    );
    assert_eq!(
        quantity(&http.result(&gate.url, "kaia_blockNumber", json!([])).await),
        100
    );

    // Nodes join and leave while heads move; the served head only goes up.
    let mut last = 100;
    let steps: &[(usize, Option<u64>)] = &[
        (0, Some(103)),
        (1, None),
        (2, Some(110)),
        (1, Some(109)),
        (0, None),
        (0, Some(111)),
    ];
    for &(node, head) in steps {
        match head {
            Some(h) => {
                fakes[node].revive().await;
                fakes[node].set_head(h);
            }
            None => fakes[node].kill(),
        }
        for _ in 0..10 {
            let n = quantity(&http.result(&gate.url, "klay_blockNumber", json!([])).await);
            assert!(n >= last, "blockNumber went back from {last} to {n}");
            last = n;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    // No upstream call was made for blockNumber.
    assert!(fakes.iter().all(|f| f.calls().is_empty()));
}

#[tokio::test]
async fn a_lagging_node_never_receives_a_latest_read() {
    let (fakes, gate, http) = setup(&[100, 100, 90]).await;
    let s = gate.wait_served(100).await;
    assert_eq!(s["nodes"][2]["state"], "lagging");
    for m in ["klay_getBalance", "kaia_getBalance", "eth_getBalance"] {
        for tag in ["latest"] {
            for _ in 0..10 {
                http.result(&gate.url, m, json!(["0x0000000000000000000000000000000000000001", tag]))
                    .await;
            }
        }
    }
    assert!(fakes[2].calls().is_empty(), "lagging node got {:?}", fakes[2].calls());
    // Every forwarded call carried the served head, and kaia_ went upstream as klay_.
    for f in &fakes[..2] {
        for (m, p) in f.calls() {
            assert!(m == "klay_getBalance" || m == "eth_getBalance", "{m}");
            assert_eq!(p[1], "0x64");
        }
    }
    assert_eq!(fakes[0].calls().len() + fakes[1].calls().len(), 30);
}

#[tokio::test]
async fn omitted_block_params_are_filled_where_the_node_takes_one() {
    let (fakes, gate, http) = setup(&[100]).await;
    gate.wait_served(100).await;
    http.result(
        &gate.url,
        "eth_estimateGas",
        json!([{"to": "0x0000000000000000000000000000000000000001"}]),
    )
    .await;
    http.result(
        &gate.url,
        "klay_estimateGas",
        json!([{"to": "0x0000000000000000000000000000000000000001"}]),
    )
    .await;
    let calls = fakes[0].calls();
    assert_eq!(
        calls[0].1,
        json!([{"to": "0x0000000000000000000000000000000000000001"}, "0x64"])
    );
    assert_eq!(
        calls[1].1,
        json!([{"to": "0x0000000000000000000000000000000000000001"}])
    );
}

#[tokio::test]
async fn explicit_blocks_go_only_to_nodes_that_have_them() {
    let (fakes, gate, http) = setup(&[100, 105, 102]).await;
    gate.wait_served(102).await;
    for _ in 0..30 {
        let b = http
            .result(&gate.url, "klay_getBlockByNumber", json!(["0x67", false]))
            .await;
        assert_eq!(b["number"], "0x67");
    }
    assert!(fakes[0].calls().is_empty());
    // Above every head: the highest node gives the truthful "not yet".
    let b = http
        .result(&gate.url, "klay_getBlockByNumber", json!(["0x100", false]))
        .await;
    assert_eq!(b, Value::Null);
    assert_eq!(fakes[1].calls_of("klay_getBlockByNumber").last().unwrap()[0], "0x100");
}

#[tokio::test]
async fn a_null_receipt_is_retried_on_a_higher_node_and_answered_once_announced() {
    let (fakes, gate, http) = setup(&[100, 100, 102]).await;
    gate.wait_served(100).await;
    let hash = format!("0x{:064x}", 0xabc);
    for f in &fakes {
        f.add_tx(&hash, 101); // only node 2 has block 101 so far
    }
    // Node 2 has the receipt, in block 101, above the served head (100): the answer is held
    // until kengate announces block 101, so a client told of it can read that block back.
    let lookups: Vec<_> = [
        "klay_getTransactionReceipt",
        "eth_getTransactionReceipt",
        "kaia_getTransactionByHash",
    ]
    .into_iter()
    .map(|m| {
        let (http, url, hash) = (http.clone(), gate.url.clone(), hash.clone());
        tokio::spawn(async move { (m, http.result(&url, m, json!([hash])).await) })
    })
    .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        lookups.iter().all(|l| !l.is_finished()),
        "answered before block 101 was served"
    );
    fakes[0].set_head(101);
    fakes[1].set_head(101);
    let served = gate.wait_served(101).await;
    assert_eq!(served["served_head"], 101);
    for l in lookups {
        let (m, r) = l.await.unwrap();
        assert_eq!(r["node"], 2, "{m} answered by a lagging node: {r}");
        assert_eq!(r["blockNumber"], "0x65", "{m}: {r}");
    }
    // Announced now: answered at once.
    let r = http
        .result(&gate.url, "klay_getTransactionReceipt", json!([hash]))
        .await;
    assert_eq!(r["blockNumber"], "0x65");
    // Unknown everywhere: null after asking each higher node once, not an error.
    let missing = format!("0x{:064x}", 0xdef);
    assert_eq!(
        http.result(&gate.url, "klay_getTransactionReceipt", json!([missing]))
            .await,
        Value::Null
    );
}

#[tokio::test]
async fn a_receipt_above_the_served_head_is_not_yet_when_it_never_gets_there() {
    let fakes = fake::cluster(&[100, 100, 102]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cache.max_bytes = 0;
    cfg.cluster.node_wait_ms = 300;
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let hash = format!("0x{:064x}", 0xabd);
    for f in &fakes {
        f.add_tx(&hash, 101);
    }
    let r = Http::default()
        .result(&gate.url, "klay_getTransactionReceipt", json!([hash]))
        .await;
    assert_eq!(r, Value::Null, "a receipt of an unannounced block was returned");
}

#[tokio::test]
async fn reads_are_retried_on_another_node_and_failed_nodes_are_avoided() {
    let (fakes, gate, http) = setup(&[100, 100, 100]).await;
    gate.wait_served(100).await;
    fakes[0].set_mode(Mode::Http500);
    for _ in 0..20 {
        let r = http.result(&gate.url, "klay_gasPrice", json!([])).await;
        assert_ne!(r["node"], 0);
    }
    fakes[0].set_mode(Mode::Empty200);
    for _ in 0..20 {
        let r = http.result(&gate.url, "klay_gasPrice", json!([])).await;
        assert_ne!(r["node"], 0, "an empty 200 was passed on");
    }
    fakes[0].set_mode(Mode::Ok);
    fakes[1].kill();
    for _ in 0..20 {
        let r = http
            .result(
                &gate.url,
                "klay_getBalance",
                json!(["0x0000000000000000000000000000000000000001", "latest"]),
            )
            .await;
        assert_ne!(r["node"], 1);
    }
    gate.wait_status("node 1 down", |s| s["nodes"][1]["state"] == "down")
        .await;
    fakes[1].revive().await;
    gate.wait_status("node 1 back", |s| s["nodes"][1]["state"] == "in_sync")
        .await;
}

#[tokio::test]
async fn a_hung_node_is_marked_down_and_reads_still_succeed() {
    let fakes = fake::cluster(&[100, 100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cluster.upstream_timeout_ms = 300;
    let gate = Gate::start(cfg).await;
    let http = Http::default();
    gate.wait_served(100).await;
    fakes[1].set_mode(Mode::Hang);
    for _ in 0..10 {
        let r = http.result(&gate.url, "klay_gasPrice", json!([])).await;
        assert_eq!(r["node"], 0);
    }
    gate.wait_status("node 1 down", |s| s["nodes"][1]["state"] == "down")
        .await;
}

#[tokio::test]
async fn undecodable_writes_go_to_one_node_and_are_not_retried_blindly() {
    let (fakes, gate, http) = setup(&[100, 100, 100]).await;
    gate.wait_served(100).await;
    for _ in 0..10 {
        http.result(&gate.url, "klay_sendRawTransaction", json!(["0x01"])).await;
    }
    let per_node: Vec<usize> = fakes
        .iter()
        .map(|f| f.calls_of("klay_sendRawTransaction").len())
        .collect();
    assert_eq!(per_node, vec![10, 0, 0]);
    // (Decodable raw txs go to their sender's home node instead: tests/it/writes.rs.)

    // A 500 from the write node is returned, not re-sent elsewhere.
    fakes[0].set_mode(Mode::Http500);
    let r = http.rpc(&gate.url, "eth_sendRawTransaction", json!(["0x02"])).await;
    assert_eq!(r["error"]["code"], -32011, "{r}");
    assert!(
        fakes[1].calls_of("eth_sendRawTransaction").is_empty()
            && fakes[2].calls_of("eth_sendRawTransaction").is_empty()
    );

    // A connection that could not be made is safe to send elsewhere.
    fakes[0].set_mode(Mode::Ok);
    fakes[0].kill();
    let r = http.result(&gate.url, "eth_sendRawTransaction", json!(["0x03"])).await;
    assert_ne!(r, Value::Null);
}

#[tokio::test]
async fn node_errors_pass_through_verbatim() {
    let mut cfg;
    let fakes = fake::cluster(&[100]).await;
    cfg = test_config(&fake::urls(&fakes));
    cfg.methods.allow = vec!["klay_fail".into()];
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let r = Http::default()
        .post(
            &gate.url,
            r#"{"jsonrpc":"2.0","id":"q","method":"klay_fail","params":[]}"#,
        )
        .await;
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        r#"{"error":{"code":-32000,"message":"nonce too low"},"id":"q","jsonrpc":"2.0"}"#
    );
}

#[tokio::test]
async fn batches_route_each_call_and_keep_order_and_ids() {
    let (fakes, gate, http) = setup(&[100, 100, 90]).await;
    gate.wait_served(100).await;
    let body = json!([
        {"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[]},
        {"jsonrpc":"2.0","id":"two","method":"klay_getBlockByNumber","params":["latest", false]},
        {"jsonrpc":"2.0","id":3,"method":"admin_peers","params":[]},
        {"jsonrpc":"2.0","method":"klay_gasPrice","params":[]},
        {"jsonrpc":"2.0","id":null,"method":"klay_getBlockByNumber","params":["0x5a", false]},
        7
    ]);
    let r = http.post(&gate.url, body.to_string()).await.json();
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 5, "the notification gets no reply: {r:?}");
    assert_eq!((r[0]["id"].clone(), r[0]["result"].clone()), (json!(1), json!("0x64")));
    assert_eq!(
        (r[1]["id"].clone(), r[1]["result"]["number"].clone()),
        (json!("two"), json!("0x64"))
    );
    assert_eq!(
        (r[2]["id"].clone(), r[2]["error"]["code"].clone()),
        (json!(3), json!(-32601))
    );
    assert_eq!(
        (r[3]["id"].clone(), r[3]["result"]["number"].clone()),
        (Value::Null, json!("0x5a"))
    );
    assert_eq!(r[4]["error"]["code"], -32600);
    assert_eq!(
        fakes[0].calls_of("klay_gasPrice").len() + fakes[1].calls_of("klay_gasPrice").len(),
        1
    );
}

#[tokio::test]
async fn no_node_in_sync_is_a_clear_error() {
    let fakes = fake::cluster(&[100]).await;
    fakes[0].kill();
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    let http = Http::default();
    let r = http.rpc(&gate.url, "klay_blockNumber", json!([])).await;
    assert_eq!(r["error"]["code"], -32010, "{r}");
    let r = http.rpc(&gate.url, "klay_gasPrice", json!([])).await;
    assert_eq!(r["error"]["code"], -32010, "{r}");
    assert_eq!(http.get(&format!("{}/ready", gate.url)).await.status, 503);
}

#[tokio::test]
async fn a_batch_of_reads_goes_upstream_as_one_request_and_nulls_still_retry_higher() {
    let (fakes, gate, http) = setup(&[100, 102]).await;
    gate.wait_served(100).await;
    let tx = "0x4444444444444444444444444444444444444444444444444444444444444444";
    // Only node 1 knows the tx (mined at 100, which both have).
    fakes[1].add_tx(tx, 100);
    let mut calls: Vec<Value> = (0..8)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"klay_getBalance","params":[format!("0x{i:040x}"), "latest"]}))
        .collect();
    calls.push(json!({"jsonrpc":"2.0","id":"receipt","method":"klay_getTransactionReceipt","params":[tx]}));
    calls.push(json!({"jsonrpc":"2.0","id":"old","method":"eth_getBlockByNumber","params":["0x10", false]}));
    let r = http.post(&gate.url, json!(calls).to_string()).await.json();
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 10);
    for (i, reply) in r.iter().take(8).enumerate() {
        assert_eq!(reply["id"], i, "{reply}");
        assert!(reply["result"].is_object(), "{reply}");
    }
    // Only node 1 has it; a null from node 0 is retried there.
    assert_eq!(r[8]["id"], "receipt");
    assert_eq!(r[8]["result"]["blockNumber"], "0x64", "{}", r[8]);
    assert_eq!(
        (r[9]["id"].clone(), r[9]["result"]["number"].clone()),
        (json!("old"), json!("0x10"))
    );
    let balances: usize = fakes.iter().map(|f| f.calls_of("klay_getBalance").len()).sum();
    assert_eq!(balances, 8);
    // One upstream batch; the receipt, if that batch's node said null, then takes the single-call
    // path (at most two more: the same node again, then the higher one).
    let requests: u64 = fakes.iter().map(|f| f.requests()).sum();
    assert!(
        (1..=3).contains(&requests),
        "{requests} upstream requests for one client batch"
    );
    // Every call of the upstream batch went to one node that has the served head.
    let per_node: Vec<usize> = fakes.iter().map(|f| f.calls_of("klay_getBalance").len()).collect();
    assert!(per_node.contains(&8), "{per_node:?}");
}

/// The forwarding path (cache and coalescing off) passes a batch reply's results on unread, each
/// as the node sent it; a batch reply with a `null` in it is read, and the null still retried
/// on the node that has the tx.
#[tokio::test]
async fn the_forwarding_path_passes_batch_results_on_unread_and_nulls_still_retry() {
    let (fakes, gate, http) = forwarding_path(&[100, 102], 100).await;
    #[derive(serde::Deserialize)]
    struct Reply<'a> {
        #[serde(borrow)]
        result: &'a serde_json::value::RawValue,
    }

    let mut calls: Vec<Value> = (0..8)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"klay_getBalance","params":[format!("0x{i:040x}"), "latest"]}))
        .collect();
    calls.push(json!({"jsonrpc":"2.0","id":8,"method":"klay_getBlockByNumber","params":["0x10", false]}));
    let through = http.post(&gate.url, json!(calls).to_string()).await.text();
    let through: Vec<&serde_json::value::RawValue> = serde_json::from_str(&through).unwrap();
    assert_eq!(through.len(), 9);
    for (i, element) in through.iter().enumerate() {
        let reply: Reply<'_> = serde_json::from_str(element.get()).unwrap();
        let node = serde_json::from_str::<Value>(reply.result.get()).unwrap()["node"]
            .as_u64()
            .unwrap();
        // The same call, as kengate sent it (`latest` read as the served head), to the same node.
        let mut direct = calls[i].clone();
        if i < 8 {
            direct["params"][1] = json!("0x64");
        }
        let direct = http.post(&fakes[node as usize].url, direct.to_string()).await.text();
        let direct: Reply<'_> = serde_json::from_str(&direct).unwrap();
        assert_eq!(
            reply.result.get(),
            direct.result.get(),
            "element {i}: {}",
            element.get()
        );
        assert!(element.get().contains(&format!("\"id\":{i}")), "{}", element.get());
    }
    assert_eq!(
        fakes.iter().map(|f| f.requests()).sum::<u64>(),
        9 + 1,
        "one upstream batch, then the 9 direct calls"
    );

    // Only node 1 knows the tx: node 0's null makes its batch reply one to read, and the
    // receipt is asked again where it is.
    let tx = "0x4444444444444444444444444444444444444444444444444444444444444444";
    fakes[1].add_tx(tx, 100);
    let mut nulls = 0;
    for round in 0..8 {
        let mut calls: Vec<Value> = (0..3)
            .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"klay_getBalance","params":[format!("0x{i:040x}"), "latest"]}))
            .collect();
        calls.push(json!({"jsonrpc":"2.0","id":"receipt","method":"klay_getTransactionReceipt","params":[tx]}));
        let r = http.post(&gate.url, json!(calls).to_string()).await.json();
        assert_eq!(r[3]["id"], "receipt", "round {round}: {r}");
        assert_eq!(r[3]["result"]["blockNumber"], "0x64", "round {round}: {r}");
        assert_eq!(r[3]["result"]["node"], 1, "round {round}: {r}");
        nulls = fakes[0].calls_of("klay_getTransactionReceipt").len();
        if nulls > 0 && round >= 3 {
            break;
        }
    }
    assert!(nulls > 0, "no batch went to node 0: its null was never put to the test");
}

/// The forwarding path (cache and coalescing off) passes a plain result on unread, byte for byte
/// as the node sent it; what it must read it still reads: an empty 200 is a node fault, retried
/// on another node.
#[tokio::test]
async fn the_forwarding_path_passes_results_on_unread_and_still_reads_what_it_must() {
    let (fakes, gate, http) = forwarding_path(&[100, 100, 100], 100).await;

    let body = r#"{"jsonrpc":"2.0","id":7,"method":"klay_getBlockByNumber","params":["0x5f",false]}"#;
    for _ in 0..6 {
        let through = http.post(&gate.url, body).await.text();
        let node = serde_json::from_str::<Value>(&through).unwrap()["result"]["node"]
            .as_u64()
            .unwrap();
        let direct = http.post(&fakes[node as usize].url, body).await.text();
        assert_eq!(through, direct, "the reply was not passed on as the node sent it");
    }

    // Node 0 stays in sync (its head polls are answered) but answers every call with an
    // empty 200.
    fakes[0].set_mode(Mode::CallsEmpty200);
    let before = fakes[0].requests();
    // Until node 0 has been asked (a node the selector passed over is asked again after a few
    // hundred calls, even when its latency estimate is the worst), and a few calls more.
    let mut after = None;
    for call in 0..1_000 {
        let r = http
            .result(&gate.url, "klay_getBlockByNumber", json!(["0x5f", false]))
            .await;
        assert_eq!(r["number"], "0x5f", "{r}");
        assert_ne!(r["node"], 0, "an empty 200 was passed on");
        match after {
            Some(a) if call >= a => break,
            Some(_) => {}
            None if fakes[0].requests() > before => after = Some(call + 6),
            None => {}
        }
    }
    assert!(
        after.is_some(),
        "node 0 was never asked: its empty 200 was not put to the test"
    );
    let metrics = http.get(&format!("{}/metrics", gate.url)).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kengate_upstream_errors") && l.contains("bad_reply")),
        "node 0's empty 200 was not counted as a bad reply\n{metrics}"
    );
}
