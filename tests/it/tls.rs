//! TLS both ways, with a CA made by the test (rcgen): `https://` nodes verified against a
//! per-node CA (refused without it, with the reason in `/status`), a client certificate for a
//! node that demands one, HTTP/2 to a node that offers it; and kengate's own TLS listener
//! (HTTP/1.1 and HTTP/2 by ALPN, WSS) whose certificate is swapped on disk while a client
//! stays connected.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::fake::Fake;
use crate::support::gate::{test_config, Gate};
use crate::support::tls::{connect, dir, front, rpc_request, write, Ca, BLOCK_NUMBER};

async fn block_number(gate: &Gate) -> Value {
    let http = crate::support::client::Http::default();
    http.rpc(&gate.url, "klay_blockNumber", json!([])).await
}

#[tokio::test]
async fn https_node_verified_by_its_ca_over_h2_and_refused_without_it() {
    let fake = Fake::start(0, 0x40).await;
    let ca = Ca::new("kengate test CA");
    let front = front(&ca.leaf("node"), None, fake.addr).await;
    let d = dir();
    let ca_file = write(&d, "ca.pem", &ca.pem());

    // Without the CA: the system roots do not know it; the reason is shown.
    let url = format!("https://localhost:{}", front.addr.port());
    let gate = Gate::start(test_config(&[(url.clone(), None)])).await;
    let s = gate
        .wait_status("the node's TLS failure in /status", |s| {
            s["nodes"][0]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("certificate"))
        })
        .await;
    let err = s["nodes"][0]["last_error"].as_str().unwrap().to_owned();
    assert!(err.contains("UnknownIssuer") || err.contains("unknown issuer"), "{err}");
    assert_ne!(s["nodes"][0]["state"], "in_sync", "{s}");
    gate.stop().await;

    // With it: in sync, calls answered, over HTTP/2 (the front offers it).
    let mut config = test_config(&[(url, None)]);
    config.nodes[0].tls.ca = Some(ca_file);
    let gate = Gate::start(config).await;
    gate.wait_all_in_sync().await;
    assert_eq!(block_number(&gate).await["result"], "0x40");
    assert!(front.h2.load(Ordering::Relaxed) >= 1, "HTTP/2 was negotiated");
    assert_eq!(front.h1.load(Ordering::Relaxed), 0);
    gate.stop().await;
}

#[tokio::test]
async fn a_node_that_demands_a_client_certificate_gets_it() {
    let fake = Fake::start(0, 0x41).await;
    let ca = Ca::new("kengate test CA");
    let front = front(&ca.leaf("node"), Some(&ca), fake.addr).await;
    let d = dir();
    let ca_file = write(&d, "ca.pem", &ca.pem());
    let client = ca.leaf("kengate");
    let url = format!("https://127.0.0.1:{}", front.addr.port());

    // No client certificate: the node refuses the handshake.
    let mut config = test_config(&[(url.clone(), None)]);
    config.nodes[0].tls.ca = Some(ca_file.clone());
    let gate = Gate::start(config).await;
    gate.wait_status("the refused handshake in /status", |s| {
        s["nodes"][0]["last_error"].as_str().is_some_and(|e| !e.is_empty())
    })
    .await;
    gate.stop().await;

    let mut config = test_config(&[(url, None)]);
    config.nodes[0].tls.ca = Some(ca_file);
    config.nodes[0].tls.cert = Some(write(&d, "client.pem", &client.cert_pem));
    config.nodes[0].tls.key = Some(write(&d, "client.key", &client.key_pem));
    let gate = Gate::start(config).await;
    gate.wait_all_in_sync().await;
    assert_eq!(block_number(&gate).await["result"], "0x41");
    gate.stop().await;
}

#[tokio::test]
async fn unusable_tls_files_refuse_the_start() {
    let fake = Fake::start(0, 1).await;
    let d = dir();
    let junk = write(&d, "junk.pem", "not a certificate\n");
    let mut config = test_config(&[(fake.url.replace("http://", "https://"), None)]);
    config.nodes[0].tls.ca = Some(junk.clone());
    let e = kengate::build(&config)
        .expect_err("a CA file without a certificate")
        .to_string();
    assert!(e.contains("nodes[0].tls") && e.contains("junk.pem"), "{e}");

    let mut config = test_config(&[(fake.url.clone(), None)]);
    config.tls.cert = Some(junk.clone());
    config.tls.key = Some(junk);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = kengate::run(config, listener, std::future::pending())
        .await
        .expect_err("a listener certificate that is not one")
        .to_string();
    assert!(e.contains("tls") && e.contains("junk.pem"), "{e}");
}

async fn answer(resp: hyper::Response<hyper::body::Incoming>) -> Value {
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn tls_listener_speaks_h1_h2_and_wss_and_takes_a_new_certificate_without_dropping_clients() {
    let fake = Fake::start(0, 0x42).await;
    let ca = Ca::new("kengate listener CA");
    let first = ca.leaf("first");
    let d = dir();
    let mut config = test_config(&[(fake.url.clone(), fake.url.replace("http://", "ws://").into())]);
    config.tls.cert = Some(write(&d, "cert.pem", &first.cert_pem));
    config.tls.key = Some(write(&d, "key.pem", &first.key_pem));
    // /status over plain HTTP on the admin surface.
    config.admin_listen = Some(
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(),
    );
    let gate = Gate::start(config).await;
    gate.wait_all_in_sync().await;

    // HTTP/1.1 (kept open across the swap below).
    let tls = connect(gate.addr, &ca, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], first.der);
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(
        answer(h1.send_request(rpc_request()).await.unwrap()).await["result"],
        "0x42"
    );

    // HTTP/2.
    let tls = connect(gate.addr, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        answer(h2.send_request(rpc_request()).await.unwrap()).await["result"],
        "0x42"
    );

    // WSS (HTTP/1.1 upgrade).
    let tls = connect(gate.addr, &ca, &[b"http/1.1"]).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/", gate.addr.port()), tls)
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(BLOCK_NUMBER))
        .await
        .unwrap();
    let reply = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert_eq!(serde_json::from_str::<Value>(&reply).unwrap()["result"], "0x42");

    // A new certificate on disk: new connections get it within seconds, open ones carry on.
    let second = ca.leaf("second");
    write(&d, "cert.pem", &second.cert_pem);
    write(&d, "key.pem", &second.key_pem);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tls = connect(gate.addr, &ca, &[b"http/1.1"]).await;
        if tls.get_ref().1.peer_certificates().unwrap()[0] == second.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        answer(h1.send_request(rpc_request()).await.unwrap()).await["result"],
        "0x42"
    );
    assert_eq!(
        answer(h2.send_request(rpc_request()).await.unwrap()).await["result"],
        "0x42"
    );
    ws.send(tokio_tungstenite::tungstenite::Message::text(BLOCK_NUMBER))
        .await
        .unwrap();
    assert!(ws.next().await.unwrap().unwrap().into_text().unwrap().contains("0x42"));

    // A broken pair on disk is refused; the good one stays in use.
    write(&d, "cert.pem", "garbage\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tls = connect(gate.addr, &ca, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], second.der);

    // Plain HTTP to the TLS port is not served.
    let http = crate::support::client::Http::default();
    assert_eq!(http.get_opt(&format!("http://{}/health", gate.addr)).await, None);
    gate.stop().await;
}
