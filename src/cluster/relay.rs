//! kengate's own HTTP/1.1 client for `http://` nodes — the forwarding path's upstream half. A
//! keep-alive pool per node; the request goes out in one write and the reply is read on the
//! caller's own task, with no connection task to hand off to and back from (hyper's pooled
//! client, kept for `https://` nodes, costs a task hop and ~36,000 instructions per call).
//! The framing rules are in [`super::h1`].

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::h1::{self, BodyDecoder, Decoded};
use super::UpstreamErrorKind;

/// Longest wait for a new connection to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept per node.
const MAX_IDLE: usize = 256;
/// How long an idle connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// Most bytes read ahead per read of a large body passed on as it arrives.
const STREAM_READ: usize = 64 * 1024;
/// Most bytes reserved at once for a reply of declared length read whole.
const FILL_STEP: usize = 1024 * 1024;
/// A request body up to this size is copied behind the head and sent in one write.
const ONE_WRITE: usize = 64 * 1024;

/// Why a call through the relay failed: the kind the caller reports, and the detail.
pub(super) type Failure = (UpstreamErrorKind, String);

/// The client for one node.
#[derive(Debug)]
pub(super) struct Relay {
    /// `host:port` to connect to.
    addr: String,
    /// The request head up to the length: request line, `Host`, `Content-Type`, any
    /// `Authorization`, then `Content-Length: `.
    prefix: Box<[u8]>,
    pool: Arc<Pool>,
}

impl Relay {
    /// A client POSTing to `target` (an `http://` URL without user info); `authorization`:
    /// the header's value when the node's URL carried credentials.
    pub(super) fn new(target: &http::Uri, authorization: Option<&[u8]>) -> Option<Self> {
        let authority = target.authority()?;
        let addr = format!("{}:{}", authority.host(), target.port_u16().unwrap_or(80));
        let path = target.path_and_query().map_or("/", |p| p.as_str());
        let mut prefix =
            format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n").into_bytes();
        if let Some(v) = authorization {
            prefix.extend_from_slice(b"Authorization: ");
            prefix.extend_from_slice(v);
            prefix.extend_from_slice(b"\r\n");
        }
        prefix.extend_from_slice(b"Content-Length: ");
        Some(Self {
            addr,
            prefix: prefix.into_boxed_slice(),
            pool: Arc::default(),
        })
    }

    /// Sends `body` and reads the reply's head; the body follows through [`Reply::body`].
    /// `now`: the call's start, the clock read the pool's idle times are kept by (an idle
    /// connection counts as idle from the start of the call it last carried: conservative by
    /// one reply's time, and no clock read of its own).
    pub(super) async fn send(&self, body: &[u8], now: Instant) -> Result<Reply, Failure> {
        let mut conn = match self.pool.checkout(now) {
            Some(c) => c,
            None => self.connect().await?,
        };
        conn.write_request(&self.prefix, body)
            .await
            .map_err(|e| (UpstreamErrorKind::Io, format!("sending the request: {e}")))?;
        let head = conn.read_head().await?;
        let keep_alive = head.keep_alive;
        Ok(Reply {
            status: head.status,
            declared: head.declared,
            body: Body {
                conn: Some(conn),
                decoder: BodyDecoder::new(head.framing),
                keep_alive,
                pool: self.pool.clone(),
                sent_at: now,
            },
        })
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err((UpstreamErrorKind::Connect, format!("connecting to {}: {e}", self.addr))),
            Err(_) => {
                let detail = format!("connecting to {}: no answer in {CONNECT_TIMEOUT:?}", self.addr);
                return Err((UpstreamErrorKind::Connect, detail));
            }
        };
        // Without it a small request waits for the previous one's ACK (Nagle).
        stream
            .set_nodelay(true)
            .map_err(|e| (UpstreamErrorKind::Connect, format!("TCP_NODELAY: {e}")))?;
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
            reused: false,
        })
    }
}

/// A node's reply: its status, declared length, and the body still to read.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub declared: Option<u64>,
    pub body: Body,
}

/// A reply's body, read off its connection; the connection goes back to the pool once the
/// body has been read to its end (and is closed if it is dropped before).
#[derive(Debug)]
pub(super) struct Body {
    conn: Option<Conn>,
    decoder: BodyDecoder,
    keep_alive: bool,
    pool: Arc<Pool>,
    /// When the request went out: the connection is idle from then on, for the pool.
    sent_at: Instant,
}

impl Body {
    /// The whole body, up to `max` bytes. A body of declared length is read into one buffer
    /// and handed out without a copy.
    pub(super) async fn whole(mut self, max: usize) -> Result<Bytes, String> {
        if let Some(left) = self.decoder.remaining() {
            let left = usize::try_from(left).unwrap_or(usize::MAX);
            if left > max {
                return Err(format!("the node declared a reply of {left} bytes, over {max}"));
            }
            if let Some(conn) = self.conn.as_mut() {
                conn.fill(left).await?;
            }
        }
        // All of it in the first part (its connection already back in the pool): no copy.
        let first = match self.next().await? {
            None => return Ok(Bytes::new()),
            Some(b) if self.decoder.is_done() => return Ok(b),
            Some(b) => b,
        };
        let mut all = BytesMut::from(&first[..]);
        while let Some(b) = self.next().await? {
            if all.len() + b.len() > max {
                return Err(format!("reply over {max} bytes"));
            }
            all.extend_from_slice(&b);
        }
        Ok(all.freeze())
    }

    /// The next part of the body as it arrives; `None` at its end.
    pub(super) async fn next(&mut self) -> Result<Option<Bytes>, String> {
        poll_fn(|cx| self.poll_next(cx)).await.transpose()
    }

    /// Whether the body has been read to its end.
    pub(super) fn is_end(&self) -> bool {
        self.decoder.is_done()
    }

    /// Bytes still to come, when the node declared them.
    pub(super) fn remaining(&self) -> Option<u64> {
        self.decoder.remaining()
    }

    /// The next part of the body, reading the connection when what is buffered is used up.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Err(e) => return Poll::Ready(Some(Err(self.broken(e)))),
                Ok(Decoded::Data(b)) => {
                    if self.decoder.is_done() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(b)));
                }
                Ok(Decoded::Done) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::More) => {}
            }
            let want = self.decoder.remaining().map_or(READ_CHUNK, |r| {
                usize::try_from(r).unwrap_or(usize::MAX).clamp(1, STREAM_READ)
            });
            match conn.poll_read(cx, want) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(self.broken(e)))),
                Poll::Ready(Ok(0)) => {
                    if let Err(e) = self.decoder.eof() {
                        return Poll::Ready(Some(Err(self.broken(e))));
                    }
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// The body is complete: its connection goes back to the pool if it can carry another
    /// request (nothing left over in its buffer, no `Connection: close`).
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.pool.checkin(conn, self.sent_at);
            }
        }
    }

    /// The connection can no longer be trusted: it is closed.
    fn broken(&mut self, e: impl std::fmt::Display) -> String {
        self.conn = None;
        e.to_string()
    }
}

/// One connection to the node: its stream and the bytes read but not yet used.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The request head and small body, built here for one write; kept for the next request.
    out: Vec<u8>,
    /// Whether it carried a request before this one.
    reused: bool,
}

impl Conn {
    async fn write_request(&mut self, prefix: &[u8], body: &[u8]) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(prefix);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        self.out.extend_from_slice(b"\r\n\r\n");
        if body.len() <= ONE_WRITE {
            self.out.extend_from_slice(body);
            self.stream.write_all(&self.out).await
        } else {
            self.stream.write_all(&self.out).await?;
            self.stream.write_all(body).await
        }
    }

    async fn read_head(&mut self) -> Result<h1::Head, Failure> {
        let bad = |e: h1::H1Error| (UpstreamErrorKind::Io, format!("the node's reply: {e}"));
        loop {
            if let Some((head, n)) = h1::parse_head(&self.buf).map_err(bad)? {
                bytes::Buf::advance(&mut self.buf, n);
                return Ok(head);
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() && self.reused => {
                    let detail = "the node closed a kept-alive connection without answering".to_owned();
                    return Err((UpstreamErrorKind::Io, detail));
                }
                Ok(0) => {
                    let detail = format!(
                        "the node closed the connection after {} bytes of a head",
                        self.buf.len()
                    );
                    return Err((UpstreamErrorKind::Io, detail));
                }
                Ok(_) => {}
                Err(e) => return Err((UpstreamErrorKind::Io, format!("reading the reply: {e}"))),
            }
        }
    }

    /// Reads until `n` bytes are buffered (or the node closes: the decoder then says what
    /// that means): a reply up to [`FILL_STEP`] into one allocation, a larger one growing by
    /// doubling as its bytes arrive rather than reserved whole on the node's word.
    async fn fill(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n {
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve((n - self.buf.len()).min(FILL_STEP));
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading the reply: {e}")),
            }
        }
        Ok(())
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        loop {
            if self.buf.capacity() - self.buf.len() < want.min(READ_CHUNK) {
                self.buf.reserve(want);
            }
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Whether an idle connection is still open: the node has neither closed it nor sent
    /// anything on it (a read that would block says both).
    fn open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A node's idle connections, the most recently used last, each with the time it is kept until.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<VecDeque<(Conn, Instant)>>,
}

impl Pool {
    /// The most recently used idle connection that is still open and not kept past `now`.
    fn checkout(&self, now: Instant) -> Option<Conn> {
        let mut closed = Vec::new();
        let found = {
            let mut idle = self.idle.lock().ok()?;
            loop {
                let Some((conn, until)) = idle.pop_back() else {
                    break None;
                };
                if until < now {
                    // Every one before it has been idle longer still.
                    closed.extend(idle.drain(..).map(|(c, _)| c));
                    closed.push(conn);
                    break None;
                }
                if conn.open() {
                    break Some(conn);
                }
                closed.push(conn);
            }
        };
        // Closed outside the lock.
        drop(closed);
        found.map(|mut c| {
            c.reused = true;
            c
        })
    }

    /// Keeps `conn`, idle since `since`, for [`IDLE_FOR`]; those kept past `since` go.
    fn checkin(&self, conn: Conn, since: Instant) {
        let mut extra = Vec::new();
        if let Ok(mut idle) = self.idle.lock() {
            while idle.front().is_some_and(|(_, until)| *until < since) {
                extra.extend(idle.pop_front().map(|(c, _)| c));
            }
            idle.push_back((conn, since + IDLE_FOR));
            if idle.len() > MAX_IDLE {
                extra.extend(idle.pop_front().map(|(c, _)| c));
            }
        }
        drop(extra);
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A node that answers each request on a connection with `replies` in turn (then closes),
    /// counting connections; `then_close`: close after each reply.
    async fn node(
        replies: Vec<&'static [u8]>,
        then_close: bool,
    ) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (conns.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let replies = replies.clone();
                let seen = s.clone();
                tokio::spawn(async move {
                    let mut stream = tokio::io::BufReader::new(stream);
                    for reply in replies {
                        let mut head = String::new();
                        let mut len = 0usize;
                        loop {
                            let mut line = String::new();
                            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) = line.strip_prefix("Content-Length: ") {
                                len = v.trim().parse().unwrap();
                            }
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        stream.read_exact(&mut body).await.unwrap();
                        head.push_str(&String::from_utf8(body).unwrap());
                        seen.lock().unwrap().push(head);
                        stream.get_mut().write_all(reply).await.unwrap();
                        if then_close {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/rpc"), conns, seen)
    }

    fn relay(url: &str, auth: Option<&[u8]>) -> Relay {
        Relay::new(&url.parse().unwrap(), auth).unwrap()
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrue";

    #[tokio::test]
    async fn the_request_is_what_a_node_expects_and_the_connection_is_kept() {
        let (url, conns, seen) = node(vec![OK, OK, OK], false).await;
        let r = relay(&url, Some(b"Basic dTpw"));
        for _ in 0..3 {
            let reply = r.send(b"{\"id\":1}", Instant::now()).await.unwrap();
            assert_eq!((reply.status, reply.declared), (200, Some(4)));
            assert_eq!(reply.body.whole(1 << 20).await.unwrap(), "true");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1, "one connection for three calls");
        let host = url.trim_start_matches("http://").trim_end_matches("/rpc");
        assert_eq!(
            seen.lock().unwrap()[0],
            format!(
                "POST /rpc HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAuthorization: Basic dTpw\r\n\
                 Content-Length: 8\r\n\r\n{{\"id\":1}}"
            )
        );
        assert_eq!(r.pool.idle(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_node_closed_is_not_reused() {
        let (url, conns, _) = node(vec![OK], true).await;
        let r = relay(&url, None);
        for i in 1..=3 {
            let reply = r.send(b"{}", Instant::now()).await.unwrap();
            assert_eq!(reply.body.whole(1 << 20).await.unwrap(), "true");
            // The node's FIN reaches the pooled connection; the next call sees it closed.
            let deadline = Instant::now() + Duration::from_secs(5);
            while r.pool.idle.lock().unwrap().back().is_some_and(|(c, _)| c.open()) {
                assert!(Instant::now() < deadline, "the close never showed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(conns.load(Ordering::SeqCst), i);
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn chunked_and_close_delimited_replies_are_read_whole() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntru\r\n1\r\ne\r\n0\r\n\r\n";
        let (url, conns, _) = node(vec![chunked, chunked], false).await;
        let r = relay(&url, None);
        for _ in 0..2 {
            let reply = r.send(b"{}", Instant::now()).await.unwrap();
            assert_eq!(reply.declared, None);
            assert_eq!(reply.body.whole(1 << 20).await.unwrap(), "true");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);

        let until_close: &[u8] = b"HTTP/1.1 200 OK\r\n\r\ntrue";
        let (url, _, _) = node(vec![until_close], true).await;
        let r = relay(&url, None);
        assert_eq!(
            r.send(b"{}", Instant::now())
                .await
                .unwrap()
                .body
                .whole(1 << 20)
                .await
                .unwrap(),
            "true"
        );
        assert_eq!(
            r.pool.idle(),
            0,
            "a reply that ends with the connection leaves nothing to reuse"
        );
    }

    #[tokio::test]
    async fn statuses_and_closing_replies_come_back_and_close_the_connection() {
        let busy: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";
        let (url, _, _) = node(vec![busy], false).await;
        let r = relay(&url, None);
        let reply = r.send(b"{}", Instant::now()).await.unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body.whole(1 << 20).await.unwrap(), "busy");
        assert_eq!(r.pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_truncated_or_garbled_reply_is_an_error_not_a_short_body() {
        let short: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntrue";
        let (url, _, _) = node(vec![short], true).await;
        let r = relay(&url, None);
        let err = r
            .send(b"{}", Instant::now())
            .await
            .unwrap()
            .body
            .whole(1 << 20)
            .await
            .unwrap_err();
        assert!(err.contains("6 bytes short"), "{err}");

        let garbled: &[u8] = b"HTTP/1.1 abc\r\n\r\n";
        let (url, _, _) = node(vec![garbled], true).await;
        let (kind, detail) = relay(&url, None).send(b"{}", Instant::now()).await.unwrap_err();
        assert_eq!(kind, UpstreamErrorKind::Io);
        assert!(detail.contains("malformed response head"), "{detail}");

        let big: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        let (url, _, _) = node(vec![big], true).await;
        let err = relay(&url, None)
            .send(b"{}", Instant::now())
            .await
            .unwrap()
            .body
            .whole(10)
            .await
            .unwrap_err();
        assert!(err.contains("over 10"), "{err}");
    }

    #[tokio::test]
    async fn a_node_that_refuses_connections_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (kind, detail) = relay(&format!("http://{addr}/"), None)
            .send(b"{}", Instant::now())
            .await
            .unwrap_err();
        assert_eq!(kind, UpstreamErrorKind::Connect, "{detail}");
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_closes_its_connection() {
        let half: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntrue";
        let (url, conns, _) = node(vec![half], false).await;
        let r = relay(&url, None);
        for i in 1..=2 {
            let mut reply = r.send(b"{}", Instant::now()).await.unwrap();
            assert_eq!(reply.body.remaining(), Some(10));
            assert_eq!(reply.body.next().await.unwrap().unwrap(), "true");
            assert!(!reply.body.is_end());
            drop(reply);
            assert_eq!(r.pool.idle(), 0);
            assert_eq!(conns.load(Ordering::SeqCst), i, "a new connection for each call");
        }
    }

    #[test]
    fn the_address_and_host_come_from_the_url() {
        for (url, addr, host) in [
            ("http://10.0.0.1:8551/", "10.0.0.1:8551", "10.0.0.1:8551"),
            ("http://node.example/rpc?x=1", "node.example:80", "node.example"),
            ("http://[::1]:8551", "[::1]:8551", "[::1]:8551"),
        ] {
            let r = relay(url, None);
            assert_eq!(r.addr, addr);
            let prefix = String::from_utf8(r.prefix.to_vec()).unwrap();
            assert!(prefix.contains(&format!("\r\nHost: {host}\r\n")), "{prefix}");
        }
        assert!(String::from_utf8(relay("http://n/rpc?x=1", None).prefix.to_vec())
            .unwrap()
            .starts_with("POST /rpc?x=1 HTTP/1.1\r\n"));
    }
}
