//! The plain HTTP/1.1 front of the public listener (the forwarding path's server side): a
//! JSON-RPC `POST` is read, admitted, answered and written here, without hyper, and an idle
//! keep-alive connection holds no buffer. Anything else — another method or path, an `Origin`
//! (CORS), an upgrade, a chunked or over-limit body, `Expect`, `Connection: close`, HTTP/1.0, a
//! head hyper would refuse — hands the connection, with the bytes already read, to hyper for
//! the rest of its life, so every other behaviour stays hyper's and `server.rs`'s.
//!
//! The same rules as through hyper: the head within `header_read_timeout` (also the idle
//! keep-alive limit) and `max_header_bytes`, authentication before the body is read, the body
//! within the edge deadlines and drawn from the shared budget, `Vary: origin` where CORS lists
//! origins, a drain that finishes the request in flight and closes.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderValue, StatusCode};
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::domain::AdmitHeaders;
use super::linger::Lingering;
use super::{admit_request, body_refused, edge, route, rpc_reply, Ctx, Place, Resp, Route, RpcReply};
use crate::access::Headers;

/// Most headers in a request the front takes (more: hyper's, up to its own limit).
const MAX_HEADERS: usize = 48;
/// Bytes read at a time while a request arrives (grown for a larger declared body).
const READ_STEP: usize = 4096;
/// A whole reply up to this size goes out in one write with its head (copied behind it).
const COPY_BELOW: usize = 16 * 1024;

/// How a connection left the front.
pub(super) enum Outcome {
    /// Served to its end (the client closed, a deadline passed, kengate drains).
    Closed,
    /// Hyper serves the rest, starting with these bytes.
    HandOff(Rewind),
}

/// A request the front serves: where it goes and where its body lies in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head.
    pub len: usize,
    /// The declared body length.
    pub body: usize,
}

/// What the front makes of the bytes at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A JSON-RPC POST it serves.
    Serve(Head),
    /// The head is not all there yet.
    Partial,
    /// Hyper's.
    HandOff,
}

/// Classifies the request at the start of `buf` without allocating: a `POST` to a JSON-RPC path
/// over HTTP/1.1 with one `Content-Length` of at most `max_body`, a head of at most `max_head`
/// and none of the headers that need hyper. Pure, for the fuzzer (`client_head`) and the tests.
pub fn classify(buf: &[u8], max_head: usize, max_body: usize) -> Verdict {
    match judge(buf, max_head, max_body, |_| ()) {
        Ok((head, ())) => Verdict::Serve(head),
        Err(v) => v,
    }
}

/// [`classify`], handing a head it serves, parsed, to `served`: one parse per request gives
/// both the verdict and what the request needs of its head. `Err` is `Partial` or `HandOff`.
fn judge<T>(
    buf: &[u8],
    max_head: usize,
    max_body: usize,
    served: impl FnOnce(&httparse::Request<'_, '_>) -> T,
) -> Result<(Head, T), Verdict> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Err(Verdict::Partial),
        _ => return Err(Verdict::HandOff),
    };
    if len > max_head || req.method != Some("POST") || req.version != Some(1) {
        return Err(Verdict::HandOff);
    }
    let Some(path) = req.path else {
        return Err(Verdict::HandOff);
    };
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if !matches!(route(path), Route::Rpc { .. }) {
        return Err(Verdict::HandOff);
    }
    let mut body = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = match parse_length(h.value) {
                Some(n) if body.is_none() => n,
                _ => return Err(Verdict::HandOff),
            };
            body = Some(n);
        } else if name.eq_ignore_ascii_case(b"connection") {
            if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                return Err(Verdict::HandOff);
            }
        } else if [&b"transfer-encoding"[..], b"upgrade", b"expect", b"origin"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return Err(Verdict::HandOff);
        }
    }
    match body {
        Some(body) if body <= max_body => Ok((Head { len, body }, served(&req))),
        _ => Err(Verdict::HandOff),
    }
}

/// Whether the bytes from `from` on (with the three before them) hold a blank line, the only
/// thing that can complete a partial head (`\r\n\r\n`, or bare `\n\n` as httparse allows).
fn may_end_head(buf: &[u8], from: usize) -> bool {
    let tail = buf.get(from.saturating_sub(3)..).unwrap_or_default();
    memchr::memmem::find(tail, b"\n\n").is_some() || memchr::memmem::find(tail, b"\n\r\n").is_some()
}

/// A `Content-Length` value: ASCII digits only, no sign, no space, no overflow.
fn parse_length(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(usize::from(b - b'0')))
            .flatten()
    })
}

/// Serves `io` until it closes or hands off. `closing` turns when kengate drains.
pub(super) async fn serve(
    ctx: Arc<Ctx>,
    peer: std::net::SocketAddr,
    place: Place,
    mut io: Lingering,
    closing: &mut watch::Receiver<bool>,
) -> Outcome {
    // Bytes read and not yet served: empty (no allocation) while the connection is idle.
    let mut buf = BytesMut::new();
    loop {
        if *closing.borrow() {
            return Outcome::Closed;
        }
        let settings = ctx.settings();
        let (max_head, max_body) = (settings.max_header_bytes, settings.max_body_bytes);
        let head_by = Instant::now() + settings.header_read_timeout;
        drop(settings);
        if buf.is_empty() {
            // Idle: wait for the next request holding nothing but the socket.
            let ready = {
                let Ok(tcp) = io.tcp() else { return Outcome::Closed };
                tokio::select! {
                    r = tokio::time::timeout_at(head_by, tcp.readable()) => r,
                    _ = closing.changed() => return Outcome::Closed,
                }
            };
            if !matches!(ready, Ok(Ok(()))) {
                return Outcome::Closed;
            }
            match read_some(&mut io, &mut buf, READ_SIZE_FIRST) {
                Ok(true) => {}
                // Readiness left over from the last request's read (one that filled its
                // buffer, so it could not tell the socket was drained): nothing came. The buffer
                // reserved for it goes, or every idle connection would hold one.
                Ok(false) => {
                    buf = BytesMut::new();
                    continue;
                }
                Err(_) => return Outcome::Closed,
            }
        }
        let (head, owned) = loop {
            match judge(&buf, max_head, max_body, owned_parts) {
                Ok(judged) => break judged,
                // The head is parsed again only once the bytes read could end it (or it reached
                // the limit), as hyper does: a head trickled a byte at a time must not cost a
                // parse of everything before it per byte.
                Err(Verdict::Partial) => loop {
                    let from = buf.len();
                    if read_until(&mut io, &mut buf, READ_STEP, head_by).await.is_err() {
                        return Outcome::Closed;
                    }
                    if buf.len() >= max_head || may_end_head(&buf, from) {
                        break;
                    }
                },
                Err(_) => return Outcome::HandOff(Rewind::new(buf.freeze(), io)),
            }
        };
        // Boxed: the connection's task is as large as its largest state, and an idle
        // connection should not carry the room of a call in flight.
        let (served, close) = match Box::pin(request(&ctx, peer, &place, &mut io, &mut buf, head, owned)).await {
            Some(x) => x,
            None => return Outcome::Closed,
        };
        let close = close || *closing.borrow() || served.closes();
        if Box::pin(write_reply(&mut io, served, close)).await.is_err() || close {
            return Outcome::Closed;
        }
        if buf.is_empty() {
            // Free the request's buffer before waiting (its body may still share it).
            buf = BytesMut::new();
        }
    }
}

/// The first read of a request: room for a typical call and its head.
const READ_SIZE_FIRST: usize = READ_STEP;

/// One non-blocking read into `buf` (grown by `step` when full). `Ok(false)`: nothing there
/// (a spurious wake-up). EOF is an error.
///
/// A read that leaves room in the buffer has emptied the socket, so its readiness is cleared
/// with it (as tokio's own `poll_read` does on edge-triggered epoll): the wait for the next
/// request then sleeps until bytes arrive instead of first making a read that finds none —
/// one system call per request. Only the readiness seen before the read is cleared; bytes
/// that arrive after it raise a new one.
fn read_some(io: &mut Lingering, buf: &mut BytesMut, step: usize) -> io::Result<bool> {
    if buf.capacity() - buf.len() < step / 4 {
        buf.reserve(step);
    }
    let tcp = io.tcp()?;
    let room = buf.capacity() - buf.len();
    let mut got = 0;
    let read = tcp.try_io(tokio::io::Interest::READABLE, || {
        got = tcp.try_read_buf(buf)?;
        match got {
            // Drained: `WouldBlock` here is what clears the readiness.
            n if n > 0 && n < room => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    });
    match read {
        Ok(0) => {
            io.saw_eof();
            Err(io::ErrorKind::UnexpectedEof.into())
        }
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(got > 0),
        Err(e) => Err(e),
    }
}

/// Reads at least one more byte into `buf` by `until` (a timeout is an error).
async fn read_until(io: &mut Lingering, buf: &mut BytesMut, step: usize, until: Instant) -> io::Result<()> {
    loop {
        match tokio::time::timeout_at(until, io.tcp()?.readable()).await {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(r) => r?,
        }
        if read_some(io, buf, step)? {
            return Ok(());
        }
    }
}

/// Serves the request whose head is at the start of `buf` (`owned`: its path and headers, as
/// [`judge`] read them with the verdict): admission before the body is read,
/// then the body (within the edge deadlines, charged to the budget), then the call. Consumes
/// the request's bytes from `buf`. `None`: close without an answer (the client went away).
/// `Some((reply, close))`: answer, then close when `close`.
async fn request(
    ctx: &Ctx,
    peer: std::net::SocketAddr,
    place: &Place,
    io: &mut Lingering,
    buf: &mut BytesMut,
    head: Head,
    owned: Option<(String, Picked)>,
) -> Option<(Reply, bool)> {
    let (path, headers) = match owned {
        Some(x) => x,
        None => {
            return Some((
                Reply::Http(super::text(StatusCode::BAD_REQUEST, "bad request head\n")),
                true,
            ))
        }
    };
    let (network, token) = match route(&path) {
        Route::Rpc { network, token } => (network, token),
        _ => return Some((Reply::Http(super::text(StatusCode::NOT_FOUND, "not found\n")), true)),
    };
    let whole = buf.len() >= head.len + head.body;
    let (net, caller) = match admit_request(ctx, peer, &headers, network, token, None) {
        Ok(x) => x,
        // Refused before the body is read: a body still arriving is not waited for.
        Err(resp) => {
            let resp = vary(ctx, *resp);
            if whole {
                buf.advance(head.len + head.body);
            }
            return Some((Reply::Http(resp), !whole));
        }
    };
    // The body's bytes are drawn from the shared budget as they arrive (as `Edge::read_body`
    // draws them), not on the client's word.
    let need = head.len + head.body;
    let mut charged = buf.len().min(need) - head.len;
    let mut share = match ctx.edge.charge(charged) {
        Ok(s) => s,
        Err(e) => return Some((Reply::Http(body_refused(e, 0)), true)),
    };
    if !whole {
        let (total, idle) = ctx.edge.body_deadlines();
        let by = Instant::now() + total;
        while buf.len() < need {
            let until = (Instant::now() + idle).min(by);
            match read_until(io, buf, (need - buf.len()).min(READ_STEP * 16), until).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    ctx.edge.body_timed_out();
                    // A client too slow to send its body is not waited for again.
                    place.cut.store(true, Ordering::Relaxed);
                    return Some((Reply::Http(body_refused(edge::BodyError::TimedOut, 0)), true));
                }
                Err(_) => return None,
            }
            let now = buf.len().min(need) - head.len;
            match ctx.edge.charge(now - charged) {
                Ok(Some(more)) => match &mut share {
                    Some(s) => s.merge(more),
                    None => share = Some(more),
                },
                Ok(None) => {}
                Err(e) => return Some((Reply::Http(body_refused(e, 0)), true)),
            }
            charged = now;
        }
    }
    let mut request = buf.split_to(head.len + head.body);
    let body = request.split_off(head.len).freeze();
    drop(request);
    let reply = match rpc_reply(ctx, net, &caller, &body).await {
        RpcReply::Json(body) => Reply::Json {
            body,
            vary: varies(ctx),
        },
        RpcReply::Other(resp) => Reply::Http(vary(ctx, resp)),
    };
    Some((reply, false))
}

/// The path and the headers admission reads of a head [`classify`] accepted.
pub fn owned_head(raw: &[u8]) -> Option<(String, Picked)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(raw).ok()?;
    owned_parts(&req)
}

/// The path (without its query) of a parsed head and the headers admission reads, owned;
/// `None` when a header is one the `http` crate refuses (answered 400, as hyper's path would).
/// httparse has already held every name to HTTP's token characters and every value to tab,
/// space and the bytes above it but DEL, exactly what `HeaderName::from_bytes` and
/// `HeaderValue::from_bytes` take (`parsed_headers_are_ones_the_http_crate_takes` checks it
/// byte by byte); what is left is `HeaderName`'s length limit.
fn owned_parts(req: &httparse::Request<'_, '_>) -> Option<(String, Picked)> {
    let path = req.path?;
    let path = path.split_once('?').map_or(path, |(p, _)| p).to_owned();
    let mut picked = Picked::default();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.len() >= 1 << 16 {
            return None;
        }
        let Some(&(_, which)) = PICKED
            .iter()
            .find(|(n, _)| n.len() == name.len() && name.eq_ignore_ascii_case(n))
        else {
            continue;
        };
        picked.values.push((which, h.value.into()));
    }
    Some((path, picked))
}

/// The headers [`Picked`] keeps, by name.
const PICKED: [(&[u8], Pick); 4] = [
    (b"authorization", Pick::Authorization),
    (b"x-forwarded-for", Pick::XForwardedFor),
    (b"forwarded", Pick::Forwarded),
    (b"x-chain-id", Pick::XChainId),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    Authorization,
    XForwardedFor,
    Forwarded,
    XChainId,
}

/// The headers of a request that admission reads, in the order sent, copied out of the head;
/// the rest of the head is not kept (nothing reads it). Empty, with nothing allocated, for a
/// request that has none of them.
#[derive(Debug, Default)]
pub struct Picked {
    values: Vec<(Pick, Box<[u8]>)>,
}

impl Picked {
    fn all(&self, which: Pick) -> impl Iterator<Item = &[u8]> {
        self.values
            .iter()
            .filter(move |(w, _)| *w == which)
            .map(|(_, v)| &v[..])
    }

    /// Every `Authorization` value, as sent.
    #[cfg(test)]
    fn authorization_values(&self) -> impl Iterator<Item = &[u8]> {
        self.all(Pick::Authorization)
    }
}

/// A value as `HeaderValue::to_str` gives it: visible ASCII (and tab), else `None`.
fn visible(v: &[u8]) -> Option<&str> {
    v.iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(v).ok())
        .flatten()
}

impl Headers for Picked {
    fn authorization(&self) -> impl Iterator<Item = Option<&str>> {
        self.all(Pick::Authorization).map(visible)
    }

    fn x_forwarded_for(&self) -> impl Iterator<Item = Option<&str>> {
        self.all(Pick::XForwardedFor).map(visible)
    }

    fn forwarded(&self) -> impl Iterator<Item = Option<&str>> {
        self.all(Pick::Forwarded).map(visible)
    }
}

impl AdmitHeaders for Picked {
    fn x_chain_id(&self) -> Option<&[u8]> {
        self.all(Pick::XChainId).next()
    }
}

/// Whether CORS answers listed origins differently, so replies carry `Vary: origin` (as
/// `server::handle` adds it).
fn varies(ctx: &Ctx) -> bool {
    let s = ctx.live.load();
    s.cors.enabled() && s.cors.varies()
}

/// [`varies`] on a response.
fn vary(ctx: &Ctx, mut resp: Resp) -> Resp {
    if varies(ctx) {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
    }
    resp
}

/// A reply the front writes: the common `200` JSON reply as its body alone, anything else as a
/// `Response`.
enum Reply {
    /// `200`, `content-type: application/json` (and `vary: origin` when `vary`), this body.
    Json {
        /// The body.
        body: Bytes,
        /// Whether `vary: origin` goes with it.
        vary: bool,
    },
    /// Any other response.
    Http(Resp),
}

impl Reply {
    /// Whether the reply asks for the connection to be closed (`Connection: close`).
    fn closes(&self) -> bool {
        match self {
            Reply::Json { .. } => false,
            Reply::Http(resp) => resp
                .headers()
                .get(header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close")),
        }
    }
}

/// A reply's head: the status line, `headers`, `date`, the framing (`content-length` when
/// `exact`, else chunked), `connection: close` when closing and the headers do not say it.
fn put_head<'h>(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    exact: Option<u64>,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut says_connection = false;
    for (name, value) in headers {
        says_connection |= name == header::CONNECTION;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    DATE.with(|d| d.put(out));
    match exact {
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if close && !says_connection {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `reply`: its head ([`put_head`]), then its body — whole in one write when small, a
/// streamed reply as it arrives (with its length when the node declared one, else chunked).
async fn write_reply(io: &mut Lingering, reply: Reply, close: bool) -> io::Result<()> {
    let resp = match reply {
        Reply::Json { body, vary } => {
            let headers = [("content-type", &b"application/json"[..]), ("vary", b"origin")];
            let headers = headers.into_iter().take(if vary { 2 } else { 1 });
            let mut out = Vec::with_capacity(HEAD_ROOM + copied(body.len()));
            put_head(&mut out, StatusCode::OK, headers, Some(body.len() as u64), close);
            return write_whole(io, out, body).await;
        }
        Reply::Http(resp) => resp,
    };
    let (parts, mut body) = resp.into_parts();
    let exact = body.size_hint().exact();
    let whole = exact.and_then(|n| usize::try_from(n).ok()).map_or(0, copied);
    let mut out = Vec::with_capacity(HEAD_ROOM + whole);
    let headers = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    put_head(&mut out, parts.status, headers, exact, close);
    if let super::body::ReplyBody::Whole(whole) = &mut body {
        return write_whole(io, out, whole.take().unwrap_or_default()).await;
    }
    io.write_all(&out).await?;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if exact.is_some() {
            io.write_all(&data).await?;
        } else {
            io.write_all(&chunk_head(data.len())).await?;
            io.write_all(&data).await?;
            io.write_all(b"\r\n").await?;
        }
    }
    if exact.is_none() {
        io.write_all(b"0\r\n\r\n").await?;
    }
    io.flush().await
}

/// Room for a reply's head.
const HEAD_ROOM: usize = 256;

/// The bytes of a whole body of `len` that [`write_whole`] copies behind the head.
fn copied(len: usize) -> usize {
    if len <= COPY_BELOW {
        len
    } else {
        0
    }
}

/// Writes a head and a whole body: in one write when the body is small (copied behind the head,
/// whose buffer was made with room for it: [`copied`]).
async fn write_whole(io: &mut Lingering, mut head: Vec<u8>, body: Bytes) -> io::Result<()> {
    if body.len() <= COPY_BELOW {
        head.extend_from_slice(&body);
        io.write_all(&head).await?;
    } else {
        io.write_all(&head).await?;
        io.write_all(&body).await?;
    }
    io.flush().await
}

/// A chunk's size line: `len` in hex and CRLF.
fn chunk_head(len: usize) -> Vec<u8> {
    let mut line = Vec::with_capacity(18);
    let _ = write!(line, "{len:x}\r\n");
    line
}

thread_local! {
    static DATE: DateCache = const { DateCache { line: std::cell::RefCell::new((0, Vec::new())) } };
}

/// The `date` header line, formatted once a second per thread.
struct DateCache {
    line: std::cell::RefCell<(u64, Vec<u8>)>,
}

impl DateCache {
    /// Appends `date: <now>\r\n` to `out`.
    fn put(&self, out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let mut line = self.line.borrow_mut();
        if line.0 != secs || line.1.is_empty() {
            line.0 = secs;
            line.1.clear();
            line.1.extend_from_slice(b"date: ");
            line.1.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            line.1.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&line.1);
    }
}

/// A client connection handed to hyper: the bytes the front already read come first.
pub(super) struct Rewind {
    prefix: Bytes,
    io: Lingering,
}

impl Rewind {
    pub(super) fn new(prefix: Bytes, io: Lingering) -> Self {
        Self { prefix, io }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_HEAD: usize = 8192;
    const MAX_BODY: usize = 1024;

    fn verdict(raw: &str) -> Verdict {
        classify(raw.as_bytes(), MAX_HEAD, MAX_BODY)
    }

    #[test]
    fn serves_a_plain_rpc_post() {
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(
            verdict(raw),
            Verdict::Serve(Head {
                len: raw.len() - 2,
                body: 2
            })
        );
        for path in ["/v1/cypress", "/v1/klaytn/id.secret", "/?x=1"] {
            let raw = format!("POST {path} HTTP/1.1\r\ncontent-length: 0\r\nconnection: Keep-Alive\r\n\r\n");
            assert!(matches!(verdict(&raw), Verdict::Serve(_)), "{path}");
        }
    }

    #[test]
    fn waits_for_a_head_still_arriving() {
        assert_eq!(verdict("POST / HTTP/1.1\r\nContent-Le"), Verdict::Partial);
        assert_eq!(verdict(""), Verdict::Partial);
        // ... but not past the head limit
        let long = format!("POST / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD));
        assert_eq!(verdict(&long), Verdict::HandOff);
    }

    #[test]
    fn hands_everything_else_to_hyper() {
        for raw in [
            "GET / HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
            "POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "POST /v1/tx HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\nOrigin: http://a\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\nUpgrade: websocket\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: keep-alive, upgrade\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "POST\x00 / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(verdict(raw), Verdict::HandOff, "{raw:?}");
        }
        let many = format!(
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n{}\r\n",
            "x: y\r\n".repeat(MAX_HEADERS)
        );
        assert_eq!(verdict(&many), Verdict::HandOff);
    }

    #[test]
    fn a_head_is_parsed_again_only_when_new_bytes_could_end_it() {
        let head = b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n";
        // Every split of a whole head: the bytes after the split see its end.
        for at in 0..head.len() {
            assert!(may_end_head(head, at), "split at {at}");
        }
        assert!(may_end_head(b"POST / HTTP/1.1\nx: y\n\n", 20));
        // Header lines alone never end it.
        let partial = b"POST / HTTP/1.1\r\nx: y\r\nz: w\r\n";
        for at in 0..partial.len() {
            assert!(!may_end_head(partial, at), "split at {at}");
        }
        assert!(!may_end_head(b"", 0));
    }

    #[test]
    fn lengths() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"1234"), Some(1234));
        for bad in [&b""[..], b"-1", b"1a", b" 1", b"18446744073709551616", b"0x10"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn chunk_sizes() {
        for (n, want) in [
            (0usize, "0\r\n"),
            (15, "f\r\n"),
            (4096, "1000\r\n"),
            (usize::MAX, "ffffffffffffffff\r\n"),
        ] {
            assert_eq!(chunk_head(n), want.as_bytes());
        }
    }

    #[test]
    fn owned_head_keeps_repeated_headers_and_drops_the_query() {
        let raw = b"POST /v1/x/id.s?a=b HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nHost: h\r\nx-forwarded-for: 5.6.7.8\r\nX-Chain-Id: 1001\r\nx-chain-id: 8217\r\nAuthorization: Bearer \xff\r\nContent-Length: 0\r\n\r\n";
        let (path, picked) = owned_head(raw).expect("head");
        assert_eq!(path, "/v1/x/id.s");
        let xff: Vec<_> = picked.x_forwarded_for().collect();
        assert_eq!(xff, [Some("1.2.3.4"), Some("5.6.7.8")]);
        assert_eq!(picked.x_chain_id(), Some(&b"1001"[..]));
        assert_eq!(picked.forwarded().count(), 0);
        // Not visible ASCII: present, but unreadable (as `HeaderValue::to_str` has it).
        assert_eq!(picked.authorization().collect::<Vec<_>>(), [None]);
        assert_eq!(picked.authorization_values().collect::<Vec<_>>(), [&b"Bearer \xff"[..]]);
    }

    #[test]
    fn parsed_headers_are_ones_the_http_crate_takes() {
        let mut parsed = 0;
        for c in (0..=0xff_u8).chain([b'\t']) {
            for (name, value) in [(vec![b'x', c, b'y'], &b"v"[..]), (b"x".to_vec(), &[b'a', c, b'b'][..])] {
                let mut raw = b"POST / HTTP/1.1\r\n".to_vec();
                raw.extend_from_slice(&name);
                raw.extend_from_slice(b": ");
                raw.extend_from_slice(value);
                raw.extend_from_slice(b"\r\n\r\n");
                let mut headers = [httparse::EMPTY_HEADER; 4];
                let mut req = httparse::Request::new(&mut headers);
                if !matches!(req.parse(&raw), Ok(httparse::Status::Complete(_))) {
                    continue;
                }
                parsed += 1;
                for h in req.headers.iter() {
                    assert!(http::HeaderName::from_bytes(h.name.as_bytes()).is_ok(), "{:?}", h.name);
                    let v = http::HeaderValue::from_bytes(h.value);
                    assert!(v.is_ok(), "{:?}", h.value);
                    if let Ok(v) = v {
                        assert_eq!(visible(h.value), v.to_str().ok(), "{:?}", h.value);
                    }
                }
                assert!(owned_parts(&req).is_some());
            }
        }
        // Names of the 77 token characters (and `x:y: v`, a header `x`), values of tab and every
        // byte from space up but DEL (224), tab once more.
        assert_eq!(parsed, 77 + 1 + 224 + 1);
    }
}
