//! The final-data cache and request coalescing, observed by counting the calls that reach
//! the fake nodes.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::client::Http;
use crate::support::fake::{self, Mode};
use crate::support::gate::{test_config, Gate};

const TX_OLD: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const TX_NEW: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
const TX_NONE: &str = "0x3333333333333333333333333333333333333333333333333333333333333333";

async fn setup(heads: &[u64]) -> (Vec<fake::Fake>, Gate, Http) {
    let fakes = fake::cluster(heads).await;
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    (fakes, gate, Http::default())
}

fn calls_of(fakes: &[fake::Fake], method: &str) -> usize {
    fakes.iter().map(|f| f.calls_of(method).len()).sum()
}

async fn call_with_id(http: &Http, url: &str, id: Value, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
    http.post(url, body).await.json()
}

#[tokio::test]
async fn final_blocks_are_cached_and_klay_and_kaia_share_entries_but_eth_does_not() {
    let (fakes, gate, http) = setup(&[100, 100]).await;
    gate.wait_served(100).await;
    let a = call_with_id(
        &http,
        &gate.url,
        json!("a"),
        "klay_getBlockByNumber",
        json!(["0x5", true]),
    )
    .await;
    let b = call_with_id(
        &http,
        &gate.url,
        json!(7),
        "kaia_getBlockByNumber",
        json!(["0x5", true]),
    )
    .await;
    assert_eq!(a["id"], "a");
    assert_eq!(b["id"], 7, "a cached answer carries the caller's id");
    assert_eq!(a["result"], b["result"]);
    assert_eq!(calls_of(&fakes, "klay_getBlockByNumber"), 1);
    // eth_ answers are formatted differently by Klaytn: their own entry.
    http.result(&gate.url, "eth_getBlockByNumber", json!(["0x5", true]))
        .await;
    http.result(&gate.url, "eth_getBlockByNumber", json!(["0x5", true]))
        .await;
    assert_eq!(calls_of(&fakes, "eth_getBlockByNumber"), 1);
    // `latest` is rewritten to the served head, which is final: cached under that number.
    http.result(&gate.url, "klay_getBlockByNumber", json!(["latest", false]))
        .await;
    http.result(&gate.url, "klay_getBlockByNumber", json!(["0x64", false]))
        .await;
    assert_eq!(calls_of(&fakes, "klay_getBlockByNumber"), 2);
    let metrics = String::from_utf8_lossy(&http.get(&format!("{}/metrics", gate.url)).await.body).to_string();
    assert!(
        metrics.contains("kengate_cache_lookups_total{network=\"klaytn\",reason=\"hit\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn nothing_above_the_served_head_and_no_null_is_ever_cached() {
    // Node 1 is 2 blocks ahead: in sync, but the served head is 100.
    let (fakes, gate, http) = setup(&[100, 102]).await;
    gate.wait_served(100).await;
    for f in &fakes {
        f.add_tx(TX_OLD, 50);
        f.add_tx(TX_NEW, 101);
    }
    for _ in 0..3 {
        let r = http
            .result(&gate.url, "klay_getBlockByNumber", json!(["0x65", false]))
            .await;
        assert_eq!(r["number"], "0x65");
        let r = http
            .result(&gate.url, "klay_getTransactionReceipt", json!([TX_OLD]))
            .await;
        assert_eq!(r["blockNumber"], "0x32");
        assert_eq!(
            http.result(&gate.url, "klay_getTransactionReceipt", json!([TX_NONE]))
                .await,
            Value::Null
        );
    }
    assert_eq!(
        fakes[1].calls_of("klay_getBlockByNumber").len(),
        3,
        "block 101 > served head 100"
    );
    let receipts = |h: &str| {
        fakes
            .iter()
            .flat_map(|f| f.calls_of("klay_getTransactionReceipt"))
            .filter(|p| p[0] == h)
            .count()
    };
    assert_eq!(receipts(TX_OLD), 1, "mined at 50: final, cached");
    // Mined above the served head: held until announced (never cached before).
    let held = {
        let (http, url) = (http.clone(), gate.url.clone());
        tokio::spawn(async move { http.result(&url, "klay_getTransactionReceipt", json!([TX_NEW])).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !held.is_finished(),
        "a receipt of block 101 was answered at served head 100"
    );
    assert!(receipts(TX_NONE) >= 3, "null: asked every time");
    // Once the served head passes 101, the receipt is final and kept.
    fakes[0].set_head(102);
    gate.wait_served(102).await;
    assert_eq!(held.await.unwrap()["blockNumber"], "0x65");
    let before = receipts(TX_NEW);
    for _ in 0..3 {
        http.result(&gate.url, "klay_getTransactionReceipt", json!([TX_NEW]))
            .await;
    }
    // The held answer was kept as soon as it was final: no upstream call since.
    assert_eq!(receipts(TX_NEW), before);
}

#[tokio::test]
async fn node_errors_are_never_cached() {
    let (fakes, gate, http) = setup(&[100]).await;
    gate.wait_served(100).await;
    for _ in 0..3 {
        let r = http
            .rpc(
                &gate.url,
                "klay_call",
                json!([{"to": "0x0000000000000000000000000000000000000001", "data": "0xbad"}, "0x10"]),
            )
            .await;
        assert_eq!(r["error"]["message"], "execution reverted", "{r}");
    }
    assert_eq!(calls_of(&fakes, "klay_call"), 3);
}

#[tokio::test]
async fn identical_reads_in_flight_go_upstream_once_and_each_caller_keeps_its_id() {
    let (fakes, gate, http) = setup(&[100]).await;
    gate.wait_served(100).await;
    fakes[0].set_delay(300);
    let replies = join_all((0..8).map(|i| call_with_id(&http, &gate.url, json!(i), "klay_gasPrice", json!([])))).await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["id"], i, "{r}");
        assert_eq!(r["result"]["node"], 0, "{r}");
    }
    assert_eq!(
        calls_of(&fakes, "klay_gasPrice"),
        1,
        "8 identical calls, one upstream request"
    );
    // Different params are different reads.
    let replies =
        join_all((0..4).map(|i| http.rpc(&gate.url, "klay_getBalance", json!([format!("0x{i:040x}"), "pending"]))))
            .await;
    assert!(replies.iter().all(|r| r.get("result").is_some()));
    assert_eq!(calls_of(&fakes, "klay_getBalance"), 4);
}

#[tokio::test]
async fn a_failing_leader_gives_every_waiter_an_error_not_a_hang() {
    let (fakes, gate, http) = setup(&[100]).await;
    gate.wait_served(100).await;
    fakes[0].set_mode(Mode::Hang);
    let all = join_all((0..6).map(|i| call_with_id(&http, &gate.url, json!(i), "klay_gasPrice", json!([]))));
    let replies = tokio::time::timeout(Duration::from_secs(15), all)
        .await
        .expect("coalesced callers must not hang when the leader fails");
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["id"], i, "{r}");
        assert!(
            r["error"]["code"].as_i64().is_some_and(|c| c == -32011 || c == -32010),
            "{r}"
        );
    }
    // One flight: the leader's timeout reached the five others through it.
    let metrics = String::from_utf8_lossy(&http.get(&format!("{}/metrics", gate.url)).await.body).to_string();
    assert!(
        metrics.contains("kengate_coalesced_calls_total{network=\"klaytn\"} 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_cache_stays_within_its_byte_bound() {
    let fakes = fake::cluster(&[5000]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cache.max_bytes = 32 * 1024;
    let gate = Gate::start(cfg).await;
    let http = Http::default();
    gate.wait_served(5000).await;
    for n in 0..600u64 {
        http.result(&gate.url, "klay_getBlockByNumber", json!([format!("{n:#x}"), false]))
            .await;
    }
    let metrics = String::from_utf8_lossy(&http.get(&format!("{}/metrics", gate.url)).await.body).to_string();
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kengate_cache_bytes{network=\"klaytn\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("kengate_cache_bytes in /metrics");
    assert!(bytes > 0 && bytes <= 32 * 1024, "cache holds {bytes} bytes");
}
