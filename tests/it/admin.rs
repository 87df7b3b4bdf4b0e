//! /health, /ready, /status and /metrics.

use serde_json::json;

use crate::support::client::Http;
use crate::support::fake;
use crate::support::gate::{spawn_binary, test_config, Gate};

#[tokio::test]
async fn status_and_metrics_describe_the_cluster() {
    let fakes = fake::cluster(&[100, 95]).await;
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    let http = Http::default();
    assert_eq!(http.get(&format!("{}/health", gate.url)).await.status, 200);
    let s = gate.wait_served(100).await;
    assert_eq!(s["nodes"][0]["state"], "in_sync");
    assert_eq!(s["nodes"][1]["state"], "lagging");
    assert_eq!(s["nodes"][1]["lag"], 5);
    assert_eq!(s["nodes"][0]["url"], format!("{}/", fakes[0].url));
    assert_eq!(s["nodes"][0]["name"], "en1");
    assert_eq!(http.get(&format!("{}/ready", gate.url)).await.status, 200);
    // A wrong method is told which are right.
    for (path, allow) in [("/status", "GET"), ("/v1/tx/0x00", "GET"), ("/", "GET, POST")] {
        let r = http
            .request(http::Method::PUT, &format!("{}{path}", gate.url), &[], "")
            .await;
        assert_eq!((r.status, r.headers["allow"].to_str().unwrap()), (405, allow), "{path}");
    }

    http.result(&gate.url, "klay_gasPrice", json!([])).await;
    http.rpc(&gate.url, "debug_traceTransaction", json!([])).await;
    http.rpc(&gate.url, "klay_nope", json!([])).await;
    let m = http.get(&format!("{}/metrics", gate.url)).await;
    assert!(m.content_type.starts_with("text/plain"));
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    for needle in [
        r#"kengate_served_head{network="klaytn"} 100"#,
        r#"kengate_requests_total{network="klaytn",method="klay_gasPrice",outcome="ok"} 1"#,
        r#"kengate_requests_total{network="klaytn",method="denied",outcome="error"} 1"#,
        r#"kengate_requests_total{network="klaytn",method="unknown",outcome="error"} 1"#,
        "kengate_request_duration_seconds_bucket",
        r#"kengate_served_head_update_seconds_count{network="klaytn"} 1"#,
        "kengate_served_head_trail_seconds_bucket",
        r#"kengate_node_head{network="klaytn",node="en2"} 95"#,
        r#"kengate_node_lag_blocks{network="klaytn",node="en2"} 5"#,
        r#"kengate_node_in_sync{network="klaytn",node="en2"} 0"#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

/// A hosted node's credentials (userinfo, query values, a key in the path) reach the node and
/// nowhere else: not `/status`, not `/metrics`, not the error a call gets when no node is left.
#[tokio::test]
async fn node_credentials_reach_the_node_and_are_never_shown() {
    let fakes = fake::cluster(&[100, 100]).await;
    let hosted = format!(
        "{}/v2/s3cretpath?apikey=s3cret",
        fakes[0].url.replace("http://", "http://user:s3cr%40t@")
    );
    let mut cfg = test_config(&[(hosted, None), (fakes[1].url.clone(), None)]);
    cfg.nodes[0].secret_path = true;
    cfg.nodes[1].name = Some("backup".into());
    cfg.cluster.node_wait_ms = 200;
    let gate = Gate::start(cfg).await;
    let s = gate.wait_served(100).await;
    assert_eq!(
        s["nodes"][0]["url"],
        format!("{}/***?apikey=***", fakes[0].url.replace("http://", "http://***@"))
    );
    assert_eq!(s["nodes"][0]["name"], "en1");
    assert_eq!(s["nodes"][1]["name"], "backup");
    // The node gets its path, query and credentials (as HTTP Basic, percent-decoded).
    assert_eq!(
        fakes[0].last_request(),
        (
            "/v2/s3cretpath?apikey=s3cret".to_owned(),
            Some("Basic dXNlcjpzM2NyQHQ=".to_owned())
        )
    );
    let http = Http::default();
    let m = http.get(&format!("{}/metrics", gate.url)).await;
    let metrics = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(metrics.contains(r#"kengate_node_head{network="klaytn",node="en1"} 100"#));
    assert!(metrics.contains(r#"kengate_node_head{network="klaytn",node="backup"} 100"#));
    for f in &fakes {
        f.kill();
    }
    let err = http
        .rpc(&gate.url, "klay_getBlockByNumber", json!(["0x1", false]))
        .await;
    let message = err["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("en1") && message.contains("backup"), "{err}");
    let status = http.get(&format!("{}/status", gate.url)).await;
    for shown in [metrics, message, String::from_utf8(status.body.to_vec()).unwrap()] {
        assert!(!shown.contains("s3cr") && !shown.contains("user:"), "{shown}");
    }
}

/// With `admin_listen`, what names nodes and keys (`/status`, `/metrics`, `/admin/keys`) is
/// served there only; the public port answers 404 for it and the admin port serves nothing
/// else. The admin port is not subject to the public connection caps.
#[tokio::test]
async fn the_private_admin_surface_is_the_only_place_for_status_and_metrics() {
    let fakes = fake::cluster(&[100]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.admin_listen = Some(port);
    cfg.limits.max_connections_per_ip = 1;
    let gate = Gate::start(cfg).await;
    let admin = format!("http://{port}");
    let http = Http::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // kengate binds the admin port as it starts.
    while tokio::net::TcpStream::connect(port).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the admin port never opened");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    loop {
        let s = http.get(&format!("{admin}/status")).await;
        if s.status == 200 && s.json()["served_head"] == 100 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the admin surface never served");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for path in ["/status", "/metrics", "/admin/keys"] {
        assert_eq!(
            http.get(&format!("{}{path}", gate.url)).await.status,
            404,
            "public {path}"
        );
    }
    assert_eq!(http.get(&format!("{admin}/metrics")).await.status, 200);
    assert_eq!(http.get(&format!("{admin}/health")).await.status, 200);
    assert_eq!(http.get(&format!("{}/health", gate.url)).await.status, 200);
    let r = http
        .post(
            &admin,
            json!({"jsonrpc": "2.0", "id": 1, "method": "klay_blockNumber"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 404, "JSON-RPC on the admin surface");
    // The public side is full (one connection per address, held here); the admin side is not.
    let _held = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(Http::default().get(&format!("{admin}/status")).await.status, 200);
}

/// Without a private surface, an admin token (when set) guards `/status` and `/metrics`.
#[tokio::test]
async fn an_admin_token_guards_status_and_metrics_on_the_public_port() {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.auth.admin_token = Some("admin-token-0123456789abcdef".into());
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let http = Http::default();
    for path in ["/status", "/metrics"] {
        let url = format!("{}{path}", gate.url);
        let r = http.get(&url).await;
        assert_eq!(r.status, 401, "{path} without the token");
        assert!(r.headers.contains_key("www-authenticate"));
        let r = http
            .request(
                http::Method::GET,
                &url,
                &[("authorization", "Bearer admin-token-0123456789abcdef")],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{path} with the token");
    }
    assert_eq!(http.get(&format!("{}/health", gate.url)).await.status, 200);
}

/// The binary's own log (debug level, with a node whose URL carries credentials going down and
/// coming back) names nodes and never prints their secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_never_prints_node_credentials() {
    use tokio::io::AsyncReadExt;
    let fakes = fake::cluster(&[100, 100]).await;
    let dir = std::env::temp_dir().join(format!("kengate-log-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.toml");
    let hosted = |f: &fake::Fake| f.url.replace("http://", "http://user:s3cr%40t@") + "/v2/s3cretpath?apikey=s3cret";
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"off\"\n[cluster]\npoll_interval_ms = 50\nprobe_timeout_ms = 300\nnode_wait_ms = 500\n\
             [[nodes]]\nhttp = \"{}\"\nsecret_path = true\n\
             [[nodes]]\nhttp = \"{}\"\nws = \"ws://u:s3cret@127.0.0.1:1/s3cret\"\nsecret_path = true\n",
            hosted(&fakes[0]),
            hosted(&fakes[1]),
        ),
    )
    .unwrap();
    let (mut child, mut stdout, url) = spawn_binary(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "kengate=debug")
            .stderr(std::process::Stdio::piped()),
    )
    .await;
    let http = Http::default();
    // Calls, a node going down and coming back, a call with no node left.
    http.rpc(&url, "klay_gasPrice", json!([])).await;
    fakes[1].kill();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    fakes[0].set_mode(fake::Mode::Http500);
    http.rpc(&url, "klay_getBlockByNumber", json!(["0x1", false])).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).await.unwrap();
    while let Ok(Some(l)) = stdout.next_line().await {
        log.push_str(&l);
    }
    assert!(log.contains("en1") && log.contains("en2"), "nodes are named:\n{log}");
    assert!(log.contains("is down"), "the fault was logged:\n{log}");
    assert!(
        !log.contains("s3cr") && !log.contains("user:"),
        "a secret in the log:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With access keys on a public address, `/status` and `/metrics` (which name keys) must be
/// private: kengate refuses to start without `admin_listen` or an admin token.
#[tokio::test]
async fn auth_on_a_public_address_needs_a_private_admin_surface() {
    let base = || {
        let mut c = test_config(&[("http://127.0.0.1:1".into(), None)]);
        c.auth.enabled = true;
        c.auth.keys = vec![kengate::config::KeyConfig::new("k1", "k1-secret-0123456789")];
        c
    };
    let mut public = base();
    public.listen = "0.0.0.0:0".parse().unwrap();
    let err = kengate::build(&public).expect_err("started with public status and metrics");
    assert!(err.to_string().contains("admin_listen"), "{err}");
    let mut with_token = public.clone();
    with_token.auth.admin_token = Some("admin-token-0123456789abcdef".into());
    assert!(kengate::build(&with_token).is_ok());
    let mut with_admin = public;
    with_admin.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    assert!(kengate::build(&with_admin).is_ok());
    assert!(kengate::build(&base()).is_ok(), "loopback stays as it was");
}
