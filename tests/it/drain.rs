//! The drain (SIGTERM / SIGINT): `/ready` turns 503 at once, new connections are refused,
//! every HTTP call in flight is answered, WebSocket sessions are served through the grace
//! period and then closed with 1001 and a reason, and the process exits 0.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::Http;
use crate::support::fake;
use crate::support::gate::{spawn_binary, test_config, Gate};

#[tokio::test]
async fn in_flight_calls_finish_websockets_close_with_a_reason_and_ready_turns_false() {
    let fakes = fake::cluster(&[100, 100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    cfg.admin_listen = Some(admin);
    cfg.drain.ws_grace_ms = 800;
    cfg.cache.max_bytes = 0;
    cfg.cache.coalesce = false;
    let mut gate = Gate::start(cfg).await;
    gate.wait_all_in_sync().await;
    // A connection of its own each time (the drain closes idle keep-alive ones).
    let ready = || async { Http::default().get(&format!("http://{admin}/ready")).await };
    assert_eq!(ready().await.status, 200);

    // A WebSocket client with a subscription.
    let (mut ws, _) = tokio_tungstenite::connect_async(gate.url.replace("http://", "ws://"))
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"klay_subscribe","params":["newHeads"]}"#,
    ))
    .await
    .unwrap();
    assert!(ws
        .next()
        .await
        .unwrap()
        .unwrap()
        .into_text()
        .unwrap()
        .contains("\"result\""));

    // 40 slow calls in flight (each on its own connection) when the drain starts.
    for f in &fakes {
        f.set_delay(400);
    }
    let before: u64 = fakes.iter().map(fake::Fake::requests).sum();
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let url = gate.url.clone();
            tokio::spawn(async move {
                Http::default()
                    .post(
                        &url,
                        json!({"jsonrpc":"2.0","id":i,"method":"klay_gasPrice","params":[]}).to_string(),
                    )
                    .await
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fakes.iter().map(fake::Fake::requests).sum::<u64>() < before + 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the calls never reached the nodes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gate.signal_stop();

    // At once: not ready (on the admin surface, which stays up), no new connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let r = ready().await;
        if r.status == 503 {
            assert!(r.text().contains("\"draining\":true"), "{}", r.text());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/ready still {}", r.status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        tokio::net::TcpStream::connect(gate.addr).await.is_err(),
        "a new connection was taken while draining"
    );

    // Every call in flight was answered.
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.json()["result"].is_object(), "{}", r.text());
    }

    // The WebSocket is still served in the grace period, then closed with 1001 and a reason.
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":2,"method":"klay_gasPrice","params":[]}"#,
    ))
    .await
    .unwrap();
    let mut answered = false;
    let close = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the session was closed in time")
            .expect("a close frame before the end")
            .unwrap();
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                answered |= v["id"] == 2 && v["result"].is_object();
            }
            Message::Close(c) => break c.expect("a close frame with a code"),
            _ => {}
        }
    };
    assert!(answered, "a call in the grace period was answered");
    assert_eq!(u16::from(close.code), 1001);
    assert!(close.reason.contains("shutting down"), "{}", close.reason);

    assert!(gate.stopped(Duration::from_secs(10)).await, "kengate did not stop");
}

#[tokio::test]
async fn the_binary_drains_and_exits_zero_on_sigterm() {
    let fakes = fake::cluster(&[7]).await;
    let dir = std::env::temp_dir().join(format!("kengate-drain-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, _stdout, url) = spawn_binary(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "off",
                "--node",
                &fakes[0].url,
                "--data-dir",
            ])
            .arg(&dir),
    )
    .await;
    let http = Http::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while http.get(&format!("{url}/ready")).await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fakes[0].set_delay(500);
    let call = tokio::spawn({
        let url = url.clone();
        async move {
            Http::default()
                .post(&url, r#"{"jsonrpc":"2.0","id":1,"method":"klay_gasPrice","params":[]}"#)
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fakes[0].requests() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never reached the node"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("kengate exits after the drain")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let r = call.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json()["result"].is_object(), "{}", r.text());
    let _ = std::fs::remove_dir_all(&dir);
}
