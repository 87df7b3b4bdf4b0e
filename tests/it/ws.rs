//! JSON-RPC over WebSocket on the same port.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::fake;
use crate::support::gate::{test_config, Gate};

#[tokio::test]
async fn websocket_requests_and_batches() {
    let fakes = fake::cluster(&[100, 100]).await;
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    gate.wait_served(100).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
        .await
        .expect("ws connect");
    let single = json!({"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[]});
    let batch = json!([{"jsonrpc":"2.0","id":2,"method":"klay_getBlockByNumber","params":["latest",false]},
                       {"jsonrpc":"2.0","id":3,"method":"eth_chainId","params":[]}]);
    ws.send(Message::text(single.to_string())).await.unwrap();
    ws.send(Message::text(batch.to_string())).await.unwrap();
    ws.send(Message::text("{bad")).await.unwrap();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        match ws.next().await.expect("reply").expect("ws ok") {
            Message::Text(t) => replies.push(serde_json::from_str::<Value>(&t).unwrap()),
            _ => continue,
        }
    }
    let single = replies.iter().find(|r| r["id"] == 1).expect("reply to 1");
    assert_eq!(single["result"], "0x64");
    let batch = replies.iter().find(|r| r.is_array()).expect("batch reply");
    assert_eq!(batch[0]["result"]["number"], "0x64");
    assert!(replies.iter().any(|r| r["error"]["code"] == -32700));
}

/// A message over the size limit closes the connection with 1009 and says why.
#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.limits.max_body_bytes = 1024;
    cfg.limits.max_buffered_body_bytes = 4096;
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
        .await
        .expect("ws connect");
    ws.send(Message::text(" ".repeat(2000))).await.unwrap();
    let frame = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => break f.expect("a close frame with a code"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), 1009);
    assert!(frame.reason.contains("limits.max_body_bytes"), "{}", frame.reason);
}

/// A WebSocket message that stops arriving mid-frame ends its connection (1008, why), as a
/// stalled HTTP body does: a client cannot hold a partial message and its memory forever.
#[tokio::test]
async fn a_stalled_message_closes_with_1008() {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::MaybeTlsStream;
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.limits.body_idle_timeout_ms = 300;
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", gate.addr))
        .await
        .expect("ws connect");
    // A whole message first: the deadline is per message, not per connection.
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":1,"method":"klay_blockNumber"}"#))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    // Then a text frame of 1000 bytes (masked with a zero key) of which 100 arrive.
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("plain TCP expected")
    };
    let mut frame = vec![0x81, 0x80 | 126, 0x03, 0xE8, 0, 0, 0, 0];
    frame.extend_from_slice(&[b' '; 100]);
    tcp.write_all(&frame).await.unwrap();
    let mut replied = false;
    let frame = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => break f.expect("a close frame with a code"),
            Ok(Some(Ok(Message::Text(t)))) => replied |= t.contains("\"id\":1"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert!(replied, "the whole message was answered");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("did not arrive in time"), "{}", frame.reason);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}
