//! Subscriptions and polling filters served from the served head, against fake nodes whose
//! heads move, stall, jump and die: every block exactly once, in order, no gaps; logs
//! matched by address and topics; filters that outlive the node that was asked; one
//! upstream fetch per block per kind; limits and slow subscribers.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::client::{quantity, Http};
use crate::support::fake::{self, Fake};
use crate::support::gate::{test_config, Gate};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn setup(heads: &[u64], tweak: impl FnOnce(&mut kengate::config::Config)) -> (Vec<Fake>, Gate) {
    let fakes = fake::cluster(heads).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    tweak(&mut cfg);
    let gate = Gate::start(cfg).await;
    gate.wait_served(heads.iter().copied().min().unwrap_or(0)).await;
    (fakes, gate)
}

async fn connect(gate: &Gate) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
        .await
        .expect("ws connect")
        .0
}

/// Sends one call and returns its reply (notifications arriving meanwhile are kept).
async fn call(ws: &mut Ws, kept: &mut Vec<Value>, id: u64, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(Message::text(req.to_string())).await.unwrap();
    loop {
        let v = next(ws).await.expect("a reply");
        if v["id"] == id {
            return v;
        }
        kept.push(v);
    }
}

async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Collects notifications of `sub` until one for block `last` (by `number`) arrived.
async fn heads_until(ws: &mut Ws, kept: Vec<Value>, sub: &str, last: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut queue = kept.into_iter();
    loop {
        let v = match queue.next() {
            Some(v) => v,
            None => next(ws).await.unwrap_or_else(|| panic!("stream ended; saw {seen:?}")),
        };
        if v["params"]["subscription"] != sub {
            continue;
        }
        let n = quantity(&v["params"]["result"]["number"]);
        seen.push(n);
        if n >= last {
            return seen;
        }
    }
}

fn set_heads(fakes: &[Fake], h: u64) {
    for f in fakes {
        f.set_head(h);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_heads_arrive_once_in_order_without_gaps_whatever_the_nodes_do() {
    let (fakes, gate) = setup(&[100, 100, 100], |_| {}).await;
    let mut ws = connect(&gate).await;
    let mut kept = Vec::new();
    let klay = call(&mut ws, &mut kept, 1, "klay_subscribe", json!(["newHeads"])).await;
    let eth = call(&mut ws, &mut kept, 2, "eth_subscribe", json!(["newHeads"])).await;
    let (klay, eth) = (
        klay["result"].as_str().unwrap().to_owned(),
        eth["result"].as_str().unwrap().to_owned(),
    );
    assert!(klay.starts_with("0x") && klay.len() == 34 && klay != eth);
    // Heads move one by one, then one node races ahead (the served head waits for the
    // others), one stalls and falls out, one dies, and the rest jump.
    for h in 101..=103 {
        set_heads(&fakes, h);
        gate.wait_served(h).await;
    }
    fakes[2].set_head(110);
    fakes[0].set_head(104);
    fakes[1].set_head(104);
    // Nodes 0 and 1 fall more than max_lag behind: the served head jumps to node 2's.
    gate.wait_served(110).await;
    fakes[1].kill();
    fakes[0].set_head(112);
    fakes[2].set_head(112);
    gate.wait_served(112).await;
    let mut all = kept.clone();
    let got = heads_until(&mut ws, std::mem::take(&mut all), &klay, 112).await;
    assert_eq!(got, (101..=112).collect::<Vec<_>>(), "klay_ newHeads");
    // The same blocks in the eth_ format, from the same stream.
    let mut ws2 = connect(&gate).await;
    let mut kept2 = Vec::new();
    let sub2 = call(&mut ws2, &mut kept2, 3, "kaia_subscribe", json!(["newHeads"])).await;
    let sub2 = sub2["result"].as_str().unwrap().to_owned();
    set_heads(&fakes, 115);
    let got = heads_until(&mut ws2, kept2, &sub2, 115).await;
    assert_eq!(
        got,
        vec![113, 114, 115],
        "a later subscriber starts with the next block"
    );
    // Each notification carries the namespace's header (the fake tags which was asked).
    let mut kept3 = Vec::new();
    let r = call(&mut ws, &mut kept3, 4, "eth_unsubscribe", json!([eth])).await;
    assert_eq!(r["result"], true);
    let r = call(&mut ws, &mut kept3, 5, "eth_unsubscribe", json!([eth])).await;
    assert_eq!(r["error"], json!({"code": -32000, "message": "subscription not found"}));
    for v in kept3.iter().filter(|v| v["params"]["subscription"] == klay) {
        assert_eq!(v["method"], "klay_subscription");
        assert_eq!(v["params"]["result"]["ns"], "klay");
    }
    // Every block was fetched once per kind, whatever the number of subscribers.
    let mut per_block = std::collections::HashMap::new();
    for f in &fakes {
        for p in f.calls_of("klay_getHeaderByNumber") {
            *per_block.entry(p[0].as_str().unwrap_or("").to_owned()).or_insert(0) += 1;
        }
    }
    assert!(per_block.values().all(|&c| c == 1), "{per_block:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eth_subscribers_get_ethereum_headers() {
    let (fakes, gate) = setup(&[100, 100], |_| {}).await;
    let mut ws = connect(&gate).await;
    let mut kept = Vec::new();
    let sub = call(&mut ws, &mut kept, 1, "eth_subscribe", json!(["newHeads"])).await;
    let sub = sub["result"].as_str().unwrap().to_owned();
    set_heads(&fakes, 102);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let v = next(&mut ws).await.expect("notification");
        if v["params"]["subscription"] == sub.as_str() {
            assert_eq!(v["method"], "eth_subscription");
            assert_eq!(v["params"]["result"]["ns"], "eth");
            seen.push(quantity(&v["params"]["result"]["number"]));
        }
    }
    assert_eq!(seen, vec![101, 102]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_match_address_and_topics_once_in_order() {
    let (fakes, gate) = setup(&[100, 100], |_| {}).await;
    for f in &fakes {
        f.set_logs_per_block(4);
    }
    let mut ws = connect(&gate).await;
    let mut kept = Vec::new();
    let aa = format!("0x{}", "aa".repeat(20));
    let all = call(&mut ws, &mut kept, 1, "klay_subscribe", json!(["logs", {}])).await;
    let only_aa = call(&mut ws, &mut kept, 2, "eth_subscribe", json!(["logs", {"address": aa}])).await;
    let t102 = format!("0x{:064x}", 102);
    let topic = call(
        &mut ws,
        &mut kept,
        3,
        "klay_subscribe",
        json!(["logs", {"topics": [[t102]]}]),
    )
    .await;
    let bad = call(
        &mut ws,
        &mut kept,
        4,
        "klay_subscribe",
        json!(["logs", {"address": "0x12"}]),
    )
    .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let unknown = call(&mut ws, &mut kept, 5, "klay_subscribe", json!(["nope"])).await;
    assert_eq!(
        unknown["error"],
        json!({"code": -32601, "message": "no \"nope\" subscription in klay namespace"})
    );
    let ids: Vec<String> = [all, only_aa, topic]
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_owned())
        .collect();
    set_heads(&fakes, 103);
    gate.wait_served(103).await;
    let mut got: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 3];
    let mut queue = kept.into_iter();
    while got[0].len() < 12 {
        let v = match queue.next() {
            Some(v) => v,
            None => next(&mut ws).await.expect("notification"),
        };
        let Some(i) = ids.iter().position(|id| v["params"]["subscription"] == id.as_str()) else {
            continue;
        };
        let r = &v["params"]["result"];
        got[i].push((quantity(&r["blockNumber"]), quantity(&r["logIndex"])));
    }
    let every: Vec<(u64, u64)> = (101..=103).flat_map(|b| (0..4).map(move |i| (b, i))).collect();
    assert_eq!(got[0], every, "every log, in block and log-index order, once");
    // The others may still be arriving; what came is in order and matches.
    let want_aa: Vec<(u64, u64)> = every.iter().copied().filter(|(_, i)| i % 2 == 0).collect();
    assert!(want_aa.starts_with(&got[1]), "{:?}", got[1]);
    assert!(got[2].iter().all(|(b, _)| *b == 102), "{:?}", got[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_filters_outlive_every_node_and_agree_with_block_number() {
    let (fakes, gate) = setup(&[100, 100, 100], |c| c.events.filter_idle_timeout_ms = 60_000).await;
    let http = Http::default();
    let blocks = http.result(&gate.url, "klay_newBlockFilter", json!([])).await;
    let logs = http
        .result(
            &gate.url,
            "eth_newFilter",
            json!([{"address": format!("0x{}", "bb".repeat(20))}]),
        )
        .await;
    // The nodes that were up when the filters were made go away one by one.
    set_heads(&fakes, 101);
    gate.wait_served(101).await;
    fakes[0].kill();
    fakes[1].set_head(102);
    fakes[2].set_head(102);
    gate.wait_served(102).await;
    fakes[1].kill();
    fakes[2].set_head(104);
    gate.wait_served(104).await;
    // Changes stop at what blockNumber says, and cover every block since creation.
    let mut hashes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hashes.len() < 4 && tokio::time::Instant::now() < deadline {
        let c = http.result(&gate.url, "eth_getFilterChanges", json!([blocks])).await;
        hashes.extend(c.as_array().unwrap().iter().cloned());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let want: Vec<Value> = (101..=104).map(|n| json!(format!("0x{n:064x}"))).collect();
    assert_eq!(hashes, want);
    let head = quantity(&http.result(&gate.url, "klay_blockNumber", json!([])).await);
    assert_eq!(head, 104);
    let l = http.result(&gate.url, "klay_getFilterChanges", json!([logs])).await;
    let got: Vec<u64> = l
        .as_array()
        .unwrap()
        .iter()
        .map(|x| quantity(&x["blockNumber"]))
        .collect();
    assert_eq!(got, vec![101, 102, 103, 104], "odd-index logs (0xbb..) of each block");
    // getFilterLogs reads the whole range through the routing core.
    assert!(http
        .rpc(&gate.url, "eth_getFilterLogs", json!([logs]))
        .await
        .get("result")
        .is_some());
    // Unknown and uninstalled ids: the node's answers.
    assert_eq!(
        http.result(&gate.url, "eth_uninstallFilter", json!([blocks])).await,
        true
    );
    assert_eq!(
        http.result(&gate.url, "eth_uninstallFilter", json!([blocks])).await,
        false
    );
    let r = http.rpc(&gate.url, "klay_getFilterChanges", json!([blocks])).await;
    assert_eq!(r["error"], json!({"code": -32000, "message": "filter not found"}));
    // Over HTTP, subscribe is what a node says.
    let r = http.rpc(&gate.url, "eth_subscribe", json!(["newHeads"])).await;
    assert_eq!(
        r["error"],
        json!({"code": -32000, "message": "notifications not supported"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_filters_expire() {
    let (_fakes, gate) = setup(&[100], |c| c.events.filter_idle_timeout_ms = 200).await;
    let http = Http::default();
    let id = http
        .result(&gate.url, "klay_newPendingTransactionFilter", json!([]))
        .await;
    assert_eq!(
        http.result(&gate.url, "klay_getFilterChanges", json!([id])).await,
        json!([])
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = http.rpc(&gate.url, "klay_getFilterChanges", json!([id])).await;
    assert_eq!(r["error"]["message"], "filter not found", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_name_themselves() {
    let (_fakes, gate) = setup(&[100], |c| {
        c.events.max_subscriptions_per_connection = 2;
        c.events.max_per_key = 3;
    })
    .await;
    let mut ws = connect(&gate).await;
    let mut kept = Vec::new();
    for i in 0..2 {
        let r = call(&mut ws, &mut kept, i, "klay_subscribe", json!(["newHeads"])).await;
        assert!(r["result"].is_string(), "{r}");
    }
    let r = call(&mut ws, &mut kept, 9, "klay_subscribe", json!(["newHeads"])).await;
    assert_eq!(r["error"]["code"], -32005);
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("events.max_subscriptions_per_connection = 2"));
    let http = Http::default();
    assert!(http.rpc(&gate.url, "klay_newBlockFilter", json!([])).await["result"].is_string());
    let r = http.rpc(&gate.url, "klay_newBlockFilter", json!([])).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events.max_per_key = 3"),
        "{r}"
    );
    // Closing the connection gives its subscriptions back.
    drop(ws);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if http.rpc(&gate.url, "klay_newBlockFilter", json!([])).await["result"].is_string() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions were not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_closed_and_others_keep_up() {
    let (fakes, gate) = setup(&[100, 100], |c| c.events.send_queue = 2).await;
    for f in &fakes {
        f.set_logs_per_block(200);
    }
    // The slow one never reads; the other reads everything.
    let mut slow = connect(&gate).await;
    let mut kept = Vec::new();
    call(&mut slow, &mut kept, 1, "klay_subscribe", json!(["logs", {}])).await;
    let mut fast = connect(&gate).await;
    let mut kept2 = Vec::new();
    let sub = call(&mut fast, &mut kept2, 1, "klay_subscribe", json!(["newHeads"])).await;
    let sub = sub["result"].as_str().unwrap().to_owned();
    set_heads(&fakes, 101);
    gate.wait_served(101).await;
    let got = heads_until(&mut fast, kept2, &sub, 101).await;
    assert_eq!(got, vec![101]);
    // The slow connection ends with 1008 and the reason.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("events.send_queue"), "{}", frame.reason);
    let m = Http::default().get(&format!("{}/metrics", gate.url)).await.text();
    assert!(
        m.contains("kengate_slow_subscriber_closes_total{network=\"klaytn\"} 1"),
        "{m}"
    );
}
