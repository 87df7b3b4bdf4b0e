//! What a client can hold of kengate before its request is handled: stalled and trickled
//! bodies end with 408, connection caps (per address and overall) answer 503 and close,
//! the shared budget of buffered body bytes answers 503 — and honest clients go on.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::Http;
use crate::support::fake;
use crate::support::gate::{test_config, Gate};

/// A gate in front of one fake node at head 100, with `tweak` applied to its limits.
pub(crate) async fn gate(tweak: impl FnOnce(&mut kengate::config::LimitsConfig)) -> (Vec<fake::Fake>, Gate) {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    tweak(&mut cfg.limits);
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    (fakes, gate)
}

/// A POST whose head declares `declared` bytes, with `sent` of them sent.
async fn partial_post(gate: &Gate, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(gate.addr).await.expect("connect");
    let head =
        format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

/// Everything the server sends until it closes (or `within` passes: then what came).
async fn until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

async fn metric(gate: &Gate, line: &str) -> bool {
    let m = Http::default().get(&format!("{}/metrics", gate.url)).await.text();
    m.contains(line)
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_closed() {
    let (_fakes, gate) = gate(|l| l.body_idle_timeout_ms = 300).await;
    let started = Instant::now();
    let mut s = partial_post(&gate, 100_000, 1_000).await;
    let (reply, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(closed, "the connection stays open after 408");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(metric(&gate, r#"kengate_refused_bodies_total{reason="body_timeout"} 1"#).await);
}

#[tokio::test]
async fn a_trickled_body_meets_the_total_deadline() {
    let (_fakes, gate) = gate(|l| {
        l.body_timeout_ms = 600;
        l.body_idle_timeout_ms = 10_000;
    })
    .await;
    let mut s = partial_post(&gate, 1_000, 1).await;
    let started = Instant::now();
    // One byte every 50 ms never trips the idle deadline; the total one ends it.
    let reply = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if s.write_all(b" ").await.is_err() || started.elapsed() > Duration::from_secs(5) {
            break until_closed(&mut s, Duration::from_secs(2)).await.0;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            if n > 0 {
                break String::from_utf8_lossy(&buf[..n]).into_owned();
            }
        }
    };
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn connection_caps_answer_503_and_free_their_places() {
    let (_fakes, gate) = gate(|l| l.max_connections_per_ip = 3).await;
    // The gate's own helpers use connections too: wait for them to close first.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(gate.addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(gate.addr).await.unwrap();
    let (reply, closed) = until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(
        reply.starts_with("HTTP/1.1 503") && reply.contains("too many connections"),
        "{reply}"
    );
    assert!(closed);
    assert!(
        metric_after_freeing(
            &gate,
            &mut held,
            r#"kengate_refused_connections_total{reason="per_ip"} "#
        )
        .await
    );
}

/// Closes `held`, then reads `/metrics` (which needs a place) until `line` shows.
async fn metric_after_freeing(gate: &Gate, held: &mut Vec<TcpStream>, line: &str) -> bool {
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if metric(gate, line).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_body_budget_refuses_more_than_it_holds_and_recovers() {
    let (_fakes, gate) = gate(|l| {
        l.max_body_bytes = 2048;
        l.max_buffered_body_bytes = 4096;
        l.body_idle_timeout_ms = 800;
    })
    .await;
    // Two stalled bodies hold 4000 of the 4096 bytes...
    let _a = partial_post(&gate, 2048, 2000).await;
    let _b = partial_post(&gate, 2048, 2000).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a third body is refused at once, with Retry-After.
    let mut c = partial_post(&gate, 2048, 500).await;
    let (reply, _) = until_closed(&mut c, Duration::from_secs(5)).await;
    assert!(
        reply.starts_with("HTTP/1.1 503") && reply.contains("retry-after: 1"),
        "{reply}"
    );
    // Once the stalled ones time out, their bytes return and calls go through.
    let http = Http::default();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = http.rpc_lenient(&gate.url, "klay_blockNumber", json!([])).await;
        if r["result"] == "0x64" {
            break;
        }
        assert!(Instant::now() < deadline, "the budget never came back: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(&gate, r#"kengate_refused_bodies_total{reason="buffer_full"} 1"#).await);
}

#[tokio::test]
async fn websocket_sessions_keep_their_place_under_the_caps() {
    let (_fakes, gate) = gate(|l| l.max_connections_per_ip = 2).await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
            .await
            .expect("ws connect");
        sessions.push(ws);
    }
    // The HTTP connections were upgraded away; the sessions still hold their places.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(gate.addr).await.unwrap();
    let (reply, closed) = until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(closed);
    // A session that ends frees its place.
    drop(sessions.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which Python to run `requests` with: the web3.py venv `scripts/test` installs (it has
/// requests), else the system's.
fn python() -> String {
    let home = std::env::var("KENGATE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kengate"));
    let venv = home.join("venv-web3py/bin/python");
    match venv.exists() {
        true => venv.display().to_string(),
        false => "python3".into(),
    }
}

/// The status Node's `fetch`, Python `requests` and curl see for a POST of `body_mib` MiB
/// with an extra header of `header_kib` KiB ("error: …" when they saw none).
async fn statuses(url: &str, body_mib: usize, header_kib: usize) -> Vec<(&'static str, String)> {
    let dir = std::env::temp_dir().join(format!("kengate-linger-{}-{body_mib}-{header_kib}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join("body");
    std::fs::write(&body, vec![b' '; body_mib << 20]).unwrap();
    let body = body.display().to_string();
    let node = format!(
        "fetch({url:?}, {{method: 'POST', headers: {{'content-type': 'application/json', 'x-pad': 'p'.repeat({header_kib} * 1024)}}, \
         body: require('fs').readFileSync({body:?})}}).then(r => console.log(r.status), e => console.log('error: ' + (e.cause ? e.cause.code : e)))"
    );
    let py = format!(
        "import requests\ntry:\n  print(requests.post({url:?}, headers={{'content-type': 'application/json', 'x-pad': 'p' * {header_kib} * 1024}}, \
         data=open({body:?}, 'rb').read(), timeout=30).status_code)\nexcept Exception as e:\n  print('error: ' + type(e).__name__)"
    );
    let pad = format!("x-pad: {}", "p".repeat(header_kib * 1024));
    let data = format!("@{body}");
    let curl_args = [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "content-type: application/json",
        "-H",
        &pad,
        "--data-binary",
        &data,
        url,
    ];
    let run = |program: String, args: Vec<String>| async move {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&program)
                .args(&args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish"))
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if text.is_empty() {
            format!("error: {}", String::from_utf8_lossy(&out.stderr).trim())
        } else {
            text
        }
    };
    let (n, p, c) = tokio::join!(
        run("node".into(), vec!["-e".into(), node]),
        run(python(), vec!["-c".into(), py]),
        run("curl".into(), curl_args.iter().map(|a| a.to_string()).collect()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    vec![("node fetch", n), ("python requests", p), ("curl", c)]
}

#[tokio::test]
async fn refusals_reach_clients_that_are_still_sending() {
    let (_fakes, gate) = gate(|l| l.max_body_bytes = 1 << 20).await;
    // Over the body limit while the client still sends 32 MiB: 413, not EPIPE.
    for (client, status) in statuses(&gate.url, 32, 0).await {
        assert_eq!(status, "413", "{client} over the body limit");
    }
    // A head over limits.max_header_bytes (64 KiB): 431.
    for (client, status) in statuses(&gate.url, 4, 100).await {
        assert_eq!(status, "431", "{client} with a 100 KiB header");
    }
    gate.stop().await;

    // Refused before the body is read: 401 with auth on and no credential, 404 for a network
    // that does not exist.
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.auth.enabled = true;
    cfg.auth.keys = vec![kengate::config::KeyConfig::new("app", "0123456789abcdef")];
    let gate = Gate::start(cfg).await;
    for (client, status) in statuses(&gate.url, 32, 0).await {
        assert_eq!(status, "401", "{client} without a credential");
    }
    for (client, status) in statuses(&format!("{}/v1/nowhere", gate.url), 32, 0).await {
        assert_eq!(status, "401", "{client} on an unknown network without a credential");
    }
    gate.stop().await;
}
