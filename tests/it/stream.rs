//! Large replies: a single HTTP call's reply over `limits.stream_over_bytes` that kengate
//! need not read is passed on while the node is still sending it — byte for byte, never
//! shared or cached, ended (not hung) when the node stalls mid-reply; everything else is
//! read whole as before.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::support::client::Http;
use crate::support::fake::{self, big_text};
use crate::support::gate::{test_config, Gate};

const MIB: u64 = 1024 * 1024;

/// One node at 100; replies over `stream_over` bytes streamed; the cache on.
async fn setup(stream_over: usize, upstream_timeout_ms: u64) -> (Vec<fake::Fake>, Gate, Http) {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.cache.max_bytes = 8 * MIB;
    cfg.limits.stream_over_bytes = stream_over;
    cfg.cluster.upstream_timeout_ms = upstream_timeout_ms;
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    (fakes, gate, Http::default())
}

fn logs_call(id: u64) -> Bytes {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "klay_getLogs",
        "params": [{"fromBlock": "0x10", "toBlock": "0x20"}]});
    Bytes::from(body.to_string())
}

/// Reads `body` until at least `n` bytes arrived (or it ended), within `deadline`.
async fn read_at_least(body: &mut hyper::body::Incoming, got: &mut BytesMut, n: usize, deadline: Duration) {
    tokio::time::timeout(deadline, async {
        while got.len() < n {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        got.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => panic!("body broke after {} bytes: {e}", got.len()),
                None => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} bytes within {deadline:?}", got.len()));
}

async fn streamed_count(gate: &Gate) -> u64 {
    gate.counter("kengate_streamed_replies_total")
        .await
        .expect("kengate_streamed_replies_total in /metrics")
}

/// Waits until the fake has begun `started` and finished `finished` large replies.
async fn wait_big(f: &fake::Fake, started: u64, finished: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.big_replies() != (started, finished) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fake's large replies {:?}, expected ({started}, {finished})",
            f.big_replies()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_large_reply_reaches_the_client_while_the_node_is_still_sending_it() {
    let (fakes, gate, http) = setup(256 * 1024, 5_000).await;
    let node = &fakes[0];
    // 6 MiB: only the first 2 MiB until released.
    node.set_big_logs(6 * MIB, false, Some(2 * MIB));
    let resp = http.post_streaming(&gate.url, logs_call(7)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let mut body = resp.into_body();
    let mut got = BytesMut::new();
    read_at_least(&mut body, &mut got, (3 * MIB / 2) as usize, Duration::from_secs(10)).await;
    // The client holds 1.5 MiB while the node has sent 2 of 6: passed on, not held whole.
    assert_eq!(node.big_replies(), (1, 0), "the node had not finished its reply");
    node.release();
    read_at_least(&mut body, &mut got, usize::MAX, Duration::from_secs(10)).await;
    assert_eq!(
        got.freeze(),
        big_text("7", (6 * MIB) as usize, false),
        "not byte for byte"
    );
    wait_big(node, 1, 1).await;
    assert_eq!(streamed_count(&gate).await, 1);

    // Never cached: the same call goes to the node again, and is whole again.
    node.set_big_logs(6 * MIB, false, None);
    let again = http.post(&gate.url, logs_call(8)).await;
    assert_eq!(again.body, big_text("8", (6 * MIB) as usize, false));
    assert_eq!(node.big_replies(), (2, 2));
    assert_eq!(streamed_count(&gate).await, 2);
}

#[tokio::test]
async fn a_reply_declared_large_is_passed_on_from_its_first_bytes() {
    let (fakes, gate, http) = setup(256 * 1024, 5_000).await;
    let node = &fakes[0];
    // Its Content-Length says 2 MiB: kengate need not read 256 KiB of it to know. The node
    // sends 4 KiB, then holds the rest; the client gets those bytes already.
    node.declare_big_length(true);
    node.set_big_logs(2 * MIB, false, Some(4096));
    let resp = http.post_streaming(&gate.url, logs_call(11)).await;
    assert_eq!(resp.status(), 200);
    let want = big_text("11", (2 * MIB) as usize, false);
    // The length is passed on too.
    assert_eq!(resp.headers()["content-length"], want.len().to_string().as_str());
    let mut body = resp.into_body();
    let mut got = BytesMut::new();
    read_at_least(&mut body, &mut got, 4096, Duration::from_secs(10)).await;
    assert_eq!(node.big_replies(), (1, 0), "the node had not finished its reply");
    node.release();
    read_at_least(&mut body, &mut got, usize::MAX, Duration::from_secs(10)).await;
    assert_eq!(got.freeze(), want);
    assert_eq!(streamed_count(&gate).await, 1);
}

#[tokio::test]
async fn identical_large_reads_in_flight_each_get_the_whole_reply() {
    let (fakes, gate, http) = setup(256 * 1024, 5_000).await;
    let node = &fakes[0];
    node.set_big_logs(4 * MIB, false, Some(2 * MIB));
    let first = http.post_streaming(&gate.url, logs_call(1));
    let second = http.post_streaming(&gate.url, logs_call(2));
    let (a, b) = tokio::join!(first, second);
    // Both reached the node while both replies were held: a streamed reply is not shared,
    // so the call that joined the first one's flight asked on its own.
    wait_big(node, 2, 0).await;
    node.release();
    for (id, resp) in [("1", a), ("2", b)] {
        let body = resp.into_body().collect().await.expect("whole body").to_bytes();
        assert_eq!(body, big_text(id, (4 * MIB) as usize, false), "reply {id}");
    }
}

#[tokio::test]
async fn a_node_stalling_mid_reply_ends_the_response_instead_of_hanging() {
    let (fakes, gate, http) = setup(256 * 1024, 1_000).await;
    let node = &fakes[0];
    node.set_big_logs(4 * MIB, false, Some(2 * MIB));
    let resp = http.post_streaming(&gate.url, logs_call(3)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = BytesMut::new();
    read_at_least(&mut body, &mut got, (MIB / 2) as usize, Duration::from_secs(10)).await;
    // The node never sends the rest: after the upstream timeout (1 s) of silence the client's
    // response is cut off — an error, not a complete-looking short body, and not a hang.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match body.frame().await {
                Some(Ok(f)) => got.extend_from_slice(&f.into_data().unwrap_or_default()),
                Some(Err(_)) => return true,
                None => return false,
            }
        }
    })
    .await
    .expect("the response still hangs 10 s into the node's silence");
    assert!(
        ended,
        "a cut-off reply ended like a complete one ({} bytes: {:?})",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(300)])
    );
    assert!((got.len() as u64) < 4 * MIB);
    assert_eq!(node.big_replies(), (1, 0), "the node really stalled");
    // kengate is fine: the next call is answered.
    node.set_big_logs(0, false, None);
    let head: Value = http.result(&gate.url, "klay_blockNumber", json!([])).await;
    assert_eq!(head, "0x64");
}

#[tokio::test]
async fn a_client_slower_than_the_upstream_timeout_still_gets_the_whole_reply() {
    let (fakes, gate, http) = setup(256 * 1024, 1_000).await;
    let node = &fakes[0];
    node.set_big_logs(16 * MIB, false, None);
    let resp = http.post_streaming(&gate.url, logs_call(12)).await;
    let mut body = resp.into_body();
    let mut got = BytesMut::new();
    read_at_least(&mut body, &mut got, (MIB / 2) as usize, Duration::from_secs(10)).await;
    // The client stops reading for 2.5 upstream timeouts: that is not the node's silence (the
    // wait for a node's next frame counts from when kengate asks for it; while the client does
    // not read, kengate does not ask).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    read_at_least(&mut body, &mut got, usize::MAX, Duration::from_secs(10)).await;
    assert_eq!(got.freeze(), big_text("12", (16 * MIB) as usize, false));
}

#[tokio::test]
async fn what_is_not_a_large_result_is_read_whole_and_passed_on_unchanged() {
    let (fakes, gate, http) = setup(256 * 1024, 5_000).await;
    let node = &fakes[0];
    // A large error object: read whole (kengate reads errors), passed on unchanged.
    node.set_big_logs(2 * MIB, true, None);
    let r = http.post(&gate.url, logs_call(4)).await;
    assert_eq!(r.body, big_text("4", (2 * MIB) as usize, true));
    // A final result under the threshold: whole, and kept (the node is not asked again).
    node.set_big_logs(200 * 1024, false, None);
    let r = http.post(&gate.url, logs_call(5)).await;
    assert_eq!(r.body, big_text("5", 200 * 1024, false));
    let r = http.post(&gate.url, logs_call(6)).await;
    assert_eq!(r.body, big_text("6", 200 * 1024, false));
    assert_eq!(node.big_replies(), (2, 2), "the kept reply was asked for again");
    assert_eq!(streamed_count(&gate).await, 0);
}

#[tokio::test]
async fn streaming_off_reads_every_reply_whole() {
    let (fakes, gate, http) = setup(0, 5_000).await;
    let node = &fakes[0];
    node.set_big_logs(3 * MIB, false, Some(2 * MIB));
    let call = http.post(&gate.url, logs_call(9));
    let release = async {
        wait_big(node, 1, 0).await;
        node.release();
    };
    let (r, ()) = tokio::join!(call, release);
    assert_eq!(r.body, big_text("9", (3 * MIB) as usize, false));
    assert_eq!(streamed_count(&gate).await, 0);
}
