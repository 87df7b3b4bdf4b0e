//! The plain HTTP/1.1 front on raw sockets: JSON-RPC POSTs pipelined, split anywhere, and mixed
//! on one connection with requests the front hands to hyper; an idle connection closed after
//! the head deadline; `Connection: close` honoured; the framing of each answer exact.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::edge::gate;

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn call(id: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"klay_blockNumber","params":[]}}"#)
}

/// One answer read off `s`: status line, lower-cased head, body (by length or chunks).
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads more of the answer into `pending` (fails the test on a close or after `deadline`).
async fn more(s: &mut TcpStream, pending: &mut Vec<u8>, deadline: tokio::time::Instant) {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    assert!(
        n > 0,
        "closed before a whole answer: {:?}",
        String::from_utf8_lossy(pending)
    );
    pending.extend_from_slice(&buf[..n]);
}

async fn answer(s: &mut TcpStream, pending: &mut Vec<u8>) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(s, pending, deadline).await;
    };
    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
    pending.drain(..end);
    let status = head[9..12].parse().expect("status");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().expect("length"));
    let body = match length {
        Some(n) => {
            while pending.len() < n {
                more(s, pending, deadline).await;
            }
            pending.drain(..n).collect::<Vec<u8>>()
        }
        None => {
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    more(s, pending, deadline).await;
                };
                let size = usize::from_str_radix(std::str::from_utf8(&pending[..line_end]).unwrap(), 16).unwrap();
                while pending.len() < line_end + 2 + size + 2 {
                    more(s, pending, deadline).await;
                }
                body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
                pending.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        }
    };
    Answer {
        status,
        head,
        body: String::from_utf8(body).expect("utf-8"),
    }
}

/// True when the server closes `s` within `within` (reading and dropping what comes).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn pipelined_and_split_calls_are_each_answered_in_order() {
    let (_fakes, gate) = gate(|_| {}).await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    let mut pending = Vec::new();
    // Three calls in one write.
    let three: String = (1..=3).map(|i| post("/", &call(i), "")).collect();
    s.write_all(three.as_bytes()).await.unwrap();
    for i in 1..=3 {
        let a = answer(&mut s, &mut pending).await;
        assert_eq!(a.status, 200, "{}", a.head);
        assert!(a.head.contains("content-type: application/json"), "{}", a.head);
        assert!(a.head.contains("date: "), "{}", a.head);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["id"], i, "{}", a.body);
        assert_eq!(v["result"], "0x64", "{}", a.body);
    }
    // One call in pieces: inside the request line, inside a header, at the body, inside it.
    let one = post("/", &call(4), "");
    let cuts = [3, 30, one.len() - call(4).len(), one.len() - 5];
    let mut at = 0;
    for cut in cuts {
        s.write_all(&one.as_bytes()[at..cut]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        at = cut;
    }
    s.write_all(&one.as_bytes()[at..]).await.unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert_eq!(a.status, 200, "{}", a.head);
    assert!(a.body.contains(r#""id":4"#), "{}", a.body);
    assert!(pending.is_empty());
}

#[tokio::test]
async fn one_connection_carries_calls_then_what_hyper_serves_then_calls() {
    let (_fakes, gate) = gate(|_| {}).await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(post("/", &call(1), "").as_bytes()).await.unwrap();
    assert!(answer(&mut s, &mut pending).await.body.contains(r#""id":1"#));
    // Not the front's: a GET, a chunked body, an Origin.
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert_eq!(a.status, 200, "{}", a.head);
    let body = call(2);
    let chunked = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert!(a.body.contains(r#""id":2"#), "{}", a.body);
    s.write_all(post("/", &call(3), "").as_bytes()).await.unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert!(a.body.contains(r#""id":3"#), "{}", a.body);
}

#[tokio::test]
async fn answers_keep_their_statuses_and_close_when_asked() {
    let (_fakes, gate) = gate(|_| {}).await;
    let mut pending = Vec::new();
    // A body that is not JSON: the JSON-RPC parse error, and the connection stays.
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(post("/", "{nope", "").as_bytes()).await.unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert_eq!(a.status, 200, "{}", a.head);
    assert!(a.body.contains("-32700"), "{}", a.body);
    // An unknown network: its 4xx, and the connection stays.
    s.write_all(post("/v1/nowhere", &call(5), "").as_bytes()).await.unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert!((400..500).contains(&a.status), "{} {}", a.head, a.body);
    // A notification: 200, empty.
    s.write_all(post("/", r#"{"jsonrpc":"2.0","method":"klay_blockNumber"}"#, "").as_bytes())
        .await
        .unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""), "{}", a.head);
    // Connection: close is honoured.
    s.write_all(post("/", &call(6), "connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let a = answer(&mut s, &mut pending).await;
    assert!(a.body.contains(r#""id":6"#), "{}", a.body);
    assert!(a.head.contains("connection: close"), "{}", a.head);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "still open after connection: close"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_head_deadline() {
    let (_fakes, gate) = gate(|l| l.header_read_timeout_ms = 400).await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(post("/", &call(1), "").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut s, &mut pending).await.status, 200);
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "an idle connection stays open"
    );
    assert!(
        idle_from.elapsed() >= Duration::from_millis(350),
        "{:?}",
        idle_from.elapsed()
    );
    // A head that stops half way is not waited for past the same deadline.
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-le").await.unwrap();
    let from = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "a stalled head stays open"
    );
    assert!(from.elapsed() < Duration::from_secs(2), "{:?}", from.elapsed());
}
