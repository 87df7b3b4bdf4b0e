//! Outlier ejection: a node whose calls fail while its probes pass, and a node made slow by a
//! delaying TCP shim, are taken out of rotation (shown in `/status`, counted in `/metrics`),
//! clients see no error meanwhile, and each comes back once it behaves like the others.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::client::Http;
use crate::support::fake::{self, Fake, Mode};
use crate::support::gate::{test_config, Gate};

/// A TCP shim in front of `backend` that holds every chunk the backend sends for `delay` ms
/// (0: none), settable while it runs.
struct Shim {
    addr: SocketAddr,
    delay: Arc<AtomicU64>,
}

async fn shim(backend: SocketAddr) -> Shim {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let delay = Arc::new(AtomicU64::new(0));
    let d = delay.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let d = d.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(backend).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let ms = d.load(Ordering::Relaxed);
                    if ms > 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Shim { addr, delay }
}

fn ejection_config(c: &mut kengate::config::Config) {
    let e = &mut c.cluster.ejection;
    e.base_ms = 1500;
    e.max_ms = 3000;
    e.min_latency_ms = 50;
    // Three nodes: one may be out at a time.
    e.max_ejected_percent = 34;
    c.cache.max_bytes = 0;
    c.cache.coalesce = false;
    c.cluster.probe_timeout_ms = 1000;
}

/// Calls until `done` holds of `/status` (bounded), asserting every call succeeds.
async fn load_until(gate: &Gate, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> u64 {
    let http = Http::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut calls = 0u64;
    loop {
        let batch: Vec<_> = (0..8)
            .map(|i| {
                let (http, url) = (http.clone(), gate.url.clone());
                async move {
                    http.rpc(&url, "klay_getBlockByNumber", json!([format!("0x{:x}", 1 + i), false]))
                        .await
                }
            })
            .collect();
        for r in futures_util::future::join_all(batch).await {
            assert!(r["result"].is_object(), "a client saw an error: {r}");
            calls += 1;
        }
        if done(&gate.status().await) {
            return calls;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
    }
}

fn state(s: &serde_json::Value, i: usize) -> String {
    s["nodes"][i]["state"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_node_failing_its_calls_is_ejected_and_comes_back() {
    let fakes = fake::cluster(&[100, 100, 100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    ejection_config(&mut cfg);
    let gate = Gate::start(cfg).await;
    gate.wait_all_in_sync().await;

    fakes[1].set_mode(Mode::Calls500);
    let calls = load_until(&gate, "node 1 ejected", |s| state(s, 1) == "ejected").await;
    eprintln!("node 1 ejected after {calls} calls, none failed");
    let metrics = Http::default().get(&format!("{}/metrics", gate.url)).await.text();
    assert!(
        metrics.lines().any(|l| l.starts_with("kengate_node_ejections_total")
            && l.contains("node=\"en2\"")
            && l.contains("reason=\"errors\"")),
        "{metrics}"
    );
    // Out of rotation: it gets no calls.
    let before = fakes[1].requests();
    load_until(&gate, "a few rounds", |_| true).await;
    assert_eq!(fakes[1].requests(), before, "an ejected node got calls");

    // Healthy again: back in after its backoff, and it serves again.
    fakes[1].set_mode(Mode::Ok);
    load_until(&gate, "node 1 back in sync", |s| state(s, 1) == "in_sync").await;
    let before = fakes[1].requests();
    load_until(&gate, "node 1 serving", |_| fakes[1].requests() > before).await;
    gate.stop().await;
}

#[tokio::test]
async fn a_slow_node_is_ejected_while_others_serve() {
    let fakes: Vec<Fake> = fake::cluster(&[100, 100, 100]).await;
    let slow = shim(fakes[2].addr).await;
    let mut urls = fake::urls(&fakes);
    urls[2] = (format!("http://{}", slow.addr), None);
    let mut cfg = test_config(&urls);
    ejection_config(&mut cfg);
    let gate = Gate::start(cfg).await;
    gate.wait_all_in_sync().await;

    slow.delay.store(300, Ordering::Relaxed);
    let s = gate
        .wait_status("node 2 ejected for latency", |s| state(s, 2) == "ejected")
        .await;
    assert!(s["nodes"][2]["latency_ms"].as_f64().unwrap() > 50.0, "{s}");
    assert_eq!(state(&s, 0), "in_sync");
    load_until(&gate, "calls while node 2 is out", |_| true).await;

    slow.delay.store(0, Ordering::Relaxed);
    gate.wait_status("node 2 back in sync", |s| state(s, 2) == "in_sync")
        .await;
    gate.stop().await;
}

#[tokio::test]
async fn the_last_node_in_sync_is_never_ejected() {
    let fakes = fake::cluster(&[100, 100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    ejection_config(&mut cfg);
    cfg.cluster.ejection.max_ejected_percent = 100;
    // Calls that find no node fail fast.
    cfg.cluster.node_wait_ms = 100;
    let gate = Gate::start(cfg).await;
    gate.wait_all_in_sync().await;
    fakes[0].set_mode(Mode::Calls500);
    load_until(&gate, "node 0 ejected", |s| state(s, 0) == "ejected").await;
    // The other node fails too now: it stands out from nobody in rotation, and it is the
    // last one in sync anyway.
    fakes[1].set_mode(Mode::Calls500);
    let http = Http::default();
    for _ in 0..40 {
        let _ = http
            .rpc_lenient(&gate.url, "klay_getBlockByNumber", json!(["0x1", false]))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(state(&gate.status().await, 1), "in_sync");
    gate.stop().await;
}
