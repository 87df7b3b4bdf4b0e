//! A real browser against kengate, cross-origin: a static page served on its own origin
//! (`examples/browser`: Debian's headless Chromium driven by playwright-core, with the browser
//! bundles of @kaiachain/ethers-ext and ethers) calls kengate over HTTP and WebSocket. With its
//! origin in `[cors] allowed_origins` the page reads the block number, that block and a balance,
//! gets a value transfer mined, and reads blocks over WebSocket. With its origin not allowed
//! (another origin listed, or CORS off) it fails the way a browser fails: fetch's "Failed to
//! fetch" after a refused preflight, and a WebSocket that never opens.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};

use crate::support::client::Http;
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::Localnet;

/// A free port on 127.0.0.1 for the page: its origin goes into kengate's config, which is
/// fixed before kengate starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// kengate in front of the cluster, allowing `origins`, with a node in sync.
async fn gate_allowing(net: &Localnet, origins: &[String]) -> Gate {
    let mut cfg = test_config(&net.nodes());
    cfg.cluster.poll_interval_ms = 250;
    cfg.cors.allowed_origins = origins.to_vec();
    // (kengate::run validates too, but in its own task: a refusal would surface as "connection refused".)
    if let Err(e) = cfg.validate() {
        panic!("kengate refuses [cors] allowed_origins = {origins:?}: {e}");
    }
    let gate = Gate::start(cfg).await;
    gate.wait_status("a node in sync", |s| s["served_head"].as_u64().unwrap_or(0) > 0)
        .await;
    gate
}

/// `examples/browser/run.mjs`: the page on `page_port` against `gate` (HTTP and ws://), expecting
/// `expect` (`ok` or `refused`). The page's result, and whether run.mjs judged it as expected.
async fn run_page(net: &Localnet, gate: &Gate, page_port: u16, expect: &str) -> (Value, bool) {
    let dir = net.repo.join("examples/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (scripts/test does: apt-get install chromium)"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "examples/browser is not installed: run scripts/clients install"
    );
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        net.example("browser", "node")
            .arg("run.mjs")
            .env("RPC_URL", &gate.url)
            .env("PAGE_PORT", page_port.to_string())
            .env("EXPECT", expect)
            .env("CHROMIUM", &chromium)
            .output(),
    )
    .await
    .expect("run.mjs did not finish within 240 s")
    .expect("run node examples/browser/run.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let result: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("run.mjs printed no JSON result ({e}): {stdout}"));
    println!(
        "browser page (expect {expect}) in {:.1} s: {result}",
        started.elapsed().as_secs_f64()
    );
    (result, out.status.success())
}

/// A preflight for the page's POST, as Chromium sends it.
async fn preflight(http: &Http, gate: &Gate, origin: &str) -> crate::support::client::Reply {
    http.request(
        Method::OPTIONS,
        &format!("{}/", gate.url),
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        "",
    )
    .await
}

/// A WebSocket handshake from a page on `origin`: the status kengate answers.
async fn ws_handshake_status(gate: &Gate, origin: &str) -> u16 {
    let http = Http::default();
    http.request(
        Method::GET,
        &format!("{}/", gate.url),
        &[
            ("origin", origin),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        "",
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_on_an_allowed_origin_reads_and_sends_through_kengate() {
    let net = Localnet::load();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let gate = gate_allowing(&net, std::slice::from_ref(&origin)).await;

    // What the browser will be told before its first POST.
    let http = Http::default();
    let pre = preflight(&http, &gate, &origin).await;
    assert_eq!(pre.status, 204, "preflight: {pre:?}");
    assert_eq!(pre.header("access-control-allow-origin"), Some(origin.as_str()));
    assert!(
        pre.header("access-control-allow-headers")
            .unwrap_or("")
            .contains("content-type"),
        "{pre:?}"
    );

    let (r, ok) = run_page(&net, &gate, port, "ok").await;
    assert!(ok, "the page failed through kengate: {r:#}");
    assert_eq!(r["origin"], origin.as_str());
    assert_eq!(r["chain_id"], net.chain_id);
    let n = r["block_number"].as_u64().unwrap_or(0);
    assert!(n > 0, "block number: {r:#}");
    assert_eq!(r["block"]["number"], n, "{r:#}");
    assert_eq!(r["block"]["hash"].as_str().map(str::len), Some(66), "{r:#}");
    // In wei, as a decimal string (localnet balances overflow u128).
    let balance = r["balance"].as_str().unwrap_or("");
    assert!(
        balance.bytes().all(|b| b.is_ascii_digit()) && !balance.trim_start_matches('0').is_empty(),
        "balance: {r:#}"
    );
    let tx = &r["tx"];
    assert_eq!(tx["status"], 1, "{r:#}");
    let mined = tx["block_number"].as_u64().unwrap_or(0);
    assert!(
        mined >= n,
        "tx mined in block {mined}, before the page's block {n}: {r:#}"
    );
    assert_eq!(r["recipient_balance"], tx["value"], "{r:#}");
    assert!(
        r["ws_block_number"].as_u64().unwrap_or(0) >= mined,
        "WS block number behind the mined tx: {r:#}"
    );
    assert!(r["ws_new_head"].as_u64().unwrap_or(0) > 0, "{r:#}");

    // kengate tracked the page's transaction like any other.
    let hash = tx["hash"].as_str().expect("tx hash").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = http
            .result(&gate.url, "kengate_getTransactionStatus", json!([hash]))
            .await;
        if s["status"] == "InBlock" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page's tx {hash} is not InBlock in kengate: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_on_an_origin_not_allowed_fails_as_a_browser_would() {
    let net = Localnet::load();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    // Same port, another host: another origin (origins match exactly).
    let other = format!("http://localhost:{port}");
    for (what, allowed) in [("CORS off", vec![]), ("another origin allowed", vec![other])] {
        let gate = gate_allowing(&net, &allowed).await;

        // kengate refuses: the preflight without CORS headers, the handshake with 403.
        let pre = preflight(&Http::default(), &gate, &origin).await;
        if allowed.is_empty() {
            assert!(pre.status >= 400, "{what}: preflight: {pre:?}");
        } else {
            assert_eq!(pre.status, 403, "{what}: preflight: {pre:?}");
        }
        assert!(
            pre.headers.keys().all(|k| !k.as_str().starts_with("access-control-")),
            "{what}: preflight answered with CORS headers: {pre:?}"
        );
        assert_eq!(
            ws_handshake_status(&gate, &origin).await,
            403,
            "{what}: WebSocket handshake"
        );

        // And the page fails as a browser makes it fail.
        let (r, ok) = run_page(&net, &gate, port, "refused").await;
        assert!(ok, "{what}: the page did not fail as a browser would: {r:#}");
        assert_eq!(r["http_error"], "TypeError: Failed to fetch", "{what}: {r:#}");
        assert!(
            r["ws_error"].as_str().unwrap_or("").contains("failed before opening"),
            "{what}: {r:#}"
        );
        assert_eq!(r["steps"], json!([]), "{what}: {r:#}");
        let console = r["console_errors"].to_string();
        assert!(
            console.contains("blocked by CORS policy"),
            "{what}: Chromium's console: {console}"
        );
        gate.stop().await;
    }
}
