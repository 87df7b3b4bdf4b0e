//! One upstream node: its URLs, live load/latency figures, and JSON-RPC calls — over
//! kengate's own HTTP/1.1 client ([`super::relay`]) to an `http://` node, over the shared
//! pooled hyper client to an `https://` one. Errors are data (kind + retryability), never
//! strings to match.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

use super::relay::Relay;
use super::stream::{Fetched, Source, Streamed};
use crate::config::NodeTlsConfig;

/// Index of a node in the configured node list.
pub type NodeId = usize;

/// Largest upstream body kengate accepts (a block with thousands of full txs fits).
const MAX_UPSTREAM_BODY: usize = 128 * 1024 * 1024;

/// Bytes read of a reply known to be large before it is passed on: enough for its envelope
/// (`jsonrpc`, `id`, the start of `result`), which decides whether it may be.
const ENVELOPE_BYTES: usize = 512;

/// A pooled keep-alive client: HTTP/1.1 to `http://` nodes; to `https://` ones HTTP/2 where
/// the node offers it (ALPN), HTTP/1.1 otherwise. One is shared by the nodes that use the
/// system roots; a node with TLS settings of its own gets its own.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl UpstreamClient {
    /// A client with keep-alive pooling and TCP_NODELAY, verifying servers with `tls`.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(2)));
        conn.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(conn);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(https);
        Self { inner }
    }

    /// A client for nodes without TLS settings of their own (`system`: trust the system roots,
    /// needed only when such a node is `https://`).
    pub fn shared(system: bool) -> Result<Self, super::tls::TlsError> {
        Ok(Self::new(super::tls::client_config(&NodeTlsConfig::default(), system)?))
    }
}

/// What went wrong talking to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Could not connect: the request never reached the node (safe to retry, even writes).
    Connect,
    /// No complete answer in time.
    Timeout,
    /// An HTTP status other than 200.
    Status(u16),
    /// The connection broke mid-request or the body could not be read.
    Io,
    /// 200, but not a JSON-RPC response (empty, truncated, not JSON).
    BadReply,
}

/// An upstream failure with the node it came from.
#[derive(Debug, Clone, Error)]
#[error("node {node}: {kind:?}: {detail}")]
pub struct UpstreamError {
    /// Which node.
    pub node: NodeId,
    /// What kind of failure.
    pub kind: UpstreamErrorKind,
    /// Human-readable detail for logs and `/status`.
    pub detail: String,
}

impl UpstreamError {
    /// Whether an idempotent call may be retried on another node.
    pub fn retryable_read(&self) -> bool {
        match self.kind {
            UpstreamErrorKind::Status(s) => s >= 500 || s == 429,
            UpstreamErrorKind::Connect
            | UpstreamErrorKind::Timeout
            | UpstreamErrorKind::Io
            | UpstreamErrorKind::BadReply => true,
        }
    }

    /// Whether the node refused the request itself (a 4xx other than 408 and 429, e.g. 413 for
    /// a body over its limit): the client's answer, not a node fault, and no other node would
    /// answer differently.
    pub fn client_caused(&self) -> bool {
        matches!(self.kind, UpstreamErrorKind::Status(s) if (400..500).contains(&s) && s != 408 && s != 429)
    }

    /// Whether a write may be retried elsewhere: only if it provably never reached the node.
    pub fn retryable_write(&self) -> bool {
        self.kind == UpstreamErrorKind::Connect
    }

    /// Short label for metrics.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Status(_) => "status",
            UpstreamErrorKind::Io => "io",
            UpstreamErrorKind::BadReply => "bad_reply",
        }
    }
}

/// `uri` without `user:password@` (a hosted node's credentials go in a header instead).
fn without_userinfo(uri: &Uri) -> Uri {
    let Some(auth) = uri.authority() else {
        return uri.clone();
    };
    let Some((_, host)) = auth.as_str().rsplit_once('@') else {
        return uri.clone();
    };
    let mut parts = uri.clone().into_parts();
    parts.authority = host.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// `Authorization: Basic base64(user:password)` from `uri`'s userinfo, percent-decoded.
fn basic_auth(uri: &Uri) -> Option<HeaderValue> {
    let (userinfo, _) = uri.authority()?.as_str().rsplit_once('@')?;
    let raw = userinfo.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            c,
            raw.get(i + 1).and_then(|&b| hex(b)),
            raw.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let mut v = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(decoded)
    ))
    .ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// One upstream node.
#[derive(Debug)]
pub struct Node {
    /// Position in the node list.
    pub id: NodeId,
    /// Its name in metrics, logs, `/status`, errors and tx records (`nodes[].name`, default
    /// `en1`, `en2`, … by position).
    pub name: String,
    /// `http` as shown anywhere (credentials hidden, see [`super::shown_url`]).
    pub shown: String,
    /// JSON-RPC over HTTP endpoint.
    pub http: Uri,
    /// `http` without its userinfo: what requests go to.
    target: Uri,
    /// `Authorization: Basic …` from `http`'s userinfo (percent-decoded), if it has one.
    basic: Option<HeaderValue>,
    /// WebSocket endpoint for `newHeads`, if known.
    pub ws: Option<String>,
    /// `ws` as shown anywhere.
    pub shown_ws: Option<String>,
    /// Calls currently in flight (load for the selector), streamed replies until their end.
    in_flight: Arc<AtomicU32>,
    /// Exponentially weighted latency of successful calls, in microseconds.
    ewma_us: AtomicU64,
    /// Whether the `newHeads` subscription is live right now (for `/status`).
    ws_subscribed: AtomicBool,
    /// Last transport error, for `/status`. A std Mutex: held for a clone, never across `.await`.
    last_error: Mutex<Option<String>>,
    /// Why the `newHeads` subscription is not live, while it is not (for `/status`).
    ws_error: Mutex<Option<String>>,
    /// TLS for `wss://` (the node's own settings, or the system roots).
    tls: Arc<rustls::ClientConfig>,
    /// Its own HTTP client, when it has TLS settings of its own.
    own_client: Option<UpstreamClient>,
    /// kengate's own HTTP/1.1 client and connection pool, for an `http://` node.
    relay: Option<Relay>,
    /// Calls, failures and latency over the last seconds (outlier ejection).
    pub outcomes: super::Outcomes,
    /// The software it runs, once probed (`software`).
    pub software: super::software::DialectCell,
}

impl Node {
    /// A node with no history; `hide_path` hides its URL paths wherever they are shown. `tls`
    /// verifies it (and carries its client certificate); `own_tls` says they are its own
    /// settings, not the shared client's, so it gets a pool of its own.
    pub fn new(
        id: NodeId,
        name: String,
        (http, ws): (Uri, Option<String>),
        hide_path: bool,
        tls: Arc<rustls::ClientConfig>,
        own_tls: bool,
    ) -> Self {
        let target = without_userinfo(&http);
        let basic = basic_auth(&http);
        let relay = (http.scheme() == Some(&http::uri::Scheme::HTTP) && !own_tls)
            .then(|| Relay::new(&target, basic.as_ref().map(HeaderValue::as_bytes)))
            .flatten();
        Self {
            id,
            name,
            ws_error: Mutex::new(None),
            outcomes: super::Outcomes::default(),
            own_client: own_tls.then(|| UpstreamClient::new(tls.clone())),
            relay,
            tls,
            shown: super::shown_url(&http.to_string(), hide_path),
            shown_ws: ws.as_deref().map(|w| super::shown_url(w, hide_path)),
            target,
            basic,
            http,
            ws,
            in_flight: Arc::new(AtomicU32::new(0)),
            ewma_us: AtomicU64::new(1_000),
            ws_subscribed: AtomicBool::new(false),
            last_error: Mutex::new(None),
            software: Default::default(),
        }
    }

    /// TLS for its WebSocket.
    pub fn ws_tls(&self) -> &Arc<rustls::ClientConfig> {
        &self.tls
    }

    /// Why the `newHeads` subscription is down, if it is and has failed.
    pub fn ws_error(&self) -> Option<String> {
        self.ws_error.lock().ok().and_then(|g| g.clone())
    }

    /// Records why the `newHeads` subscription failed (`None`: it is live again).
    pub fn set_ws_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.ws_error.lock() {
            *g = e;
        }
    }

    /// Load score for selection: expected wait ≈ latency × (queue + 1). Lower is better.
    pub fn load_score(&self) -> u64 {
        let q = u64::from(self.in_flight.load(Ordering::Relaxed)) + 1;
        self.ewma_us.load(Ordering::Relaxed).max(1).saturating_mul(q)
    }

    /// The selector chose another node over this one: the latency estimate decays by 1/128
    /// (at least 1 µs) toward zero. Only an answer raises it again, so a node whose estimate is
    /// stale (slow answers long ago, or none yet) wins a comparison again after a few hundred
    /// losses and is measured anew. A node that really is slower is probed that way too: one
    /// 10× slower than the rest gets under 1 % of the calls (each probe's answer lifts its
    /// estimate to ~2× the others', which takes ~100 losses to decay), one 2× slower 4–5 %.
    /// Under load every node loses comparisons in proportion, which scales the estimates alike.
    pub fn passed_over(&self) {
        let old = self.ewma_us.load(Ordering::Relaxed);
        // Racing updates may lose one decay or one sample: only the smoothing differs.
        self.ewma_us.store(Self::decayed(old), Ordering::Relaxed);
    }

    /// A latency estimate (µs) after one [`passed_over`](Self::passed_over): 1/128 less, at
    /// least 1 µs less (a floored 1/128 would stop at 127 µs), never below 1.
    pub fn decayed(ewma_us: u64) -> u64 {
        (ewma_us - ewma_us.div_ceil(128)).max(1)
    }

    /// Calls currently in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Smoothed latency in microseconds.
    pub fn latency_us(&self) -> u64 {
        self.ewma_us.load(Ordering::Relaxed)
    }

    /// Whether the `newHeads` subscription is live.
    pub fn ws_subscribed(&self) -> bool {
        self.ws_subscribed.load(Ordering::Relaxed)
    }

    /// Records whether the `newHeads` subscription is live.
    pub fn set_ws_subscribed(&self, live: bool) {
        self.ws_subscribed.store(live, Ordering::Relaxed);
    }

    /// Last transport error seen, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }

    /// Clears the last error (the node answered a probe).
    pub fn clear_error(&self) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = None;
        }
    }

    /// POSTs one JSON-RPC body and returns the reply body.
    pub async fn post(&self, client: &UpstreamClient, body: Bytes, timeout: Duration) -> Result<Bytes, UpstreamError> {
        match self.fetch(client, body, timeout, None).await? {
            Fetched::Whole(reply) => Ok(reply),
            Fetched::Streaming(rest) => Streamed::collect(*rest).await,
        }
    }

    /// POSTs one JSON-RPC body; a 200 reply that runs past `stream_after` bytes comes back as
    /// its first part and the rest still arriving ([`Fetched::Streaming`]). `timeout` bounds
    /// the reply up to that point, and each later gap between two frames.
    pub async fn fetch(
        &self,
        client: &UpstreamClient,
        body: Bytes,
        timeout: Duration,
        stream_after: Option<usize>,
    ) -> Result<Fetched, UpstreamError> {
        let _guard = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        // From the same clock read as the latency (a `timeout` would read the clock again).
        let deadline = tokio::time::Instant::from_std(started) + timeout;
        let res = tokio::time::timeout_at(
            deadline,
            self.post_inner(client, body, (started, timeout), stream_after),
        )
        .await;
        let res = match res {
            Ok(r) => r,
            Err(_) => Err(self.err(UpstreamErrorKind::Timeout, format!("no answer in {timeout:?}"))),
        };
        match &res {
            Ok(_) => {
                let now = Instant::now();
                let took = now - started;
                self.record_latency(took);
                self.outcomes.record(now, Some(took));
            }
            // A refusal of the request says nothing about the node's health.
            Err(e) if e.client_caused() => {}
            Err(e) => {
                self.outcomes.record(Instant::now(), None);
                if let Ok(mut g) = self.last_error.lock() {
                    *g = Some(e.to_string());
                }
            }
        }
        res
    }

    /// `(started, timeout)`: when the call started (the relay's pool keeps its idle times by
    /// it) and how long it may take.
    async fn post_inner(
        &self,
        client: &UpstreamClient,
        body: Bytes,
        (started, timeout): (Instant, Duration),
        stream_after: Option<usize>,
    ) -> Result<Fetched, UpstreamError> {
        let (status, declared, mut source) = match &self.relay {
            Some(relay) => {
                let reply = relay
                    .send(&body, started)
                    .await
                    .map_err(|(kind, detail)| self.err(kind, detail))?;
                (reply.status, reply.declared, Source::Relay(reply.body))
            }
            None => self.send_hyper(client, body).await?,
        };
        let stream_after = stream_after.filter(|&n| status == 200 && declared.is_none_or(|d| d > n as u64));
        let body = match stream_after {
            None => match source {
                Source::Relay(body) => body
                    .whole(MAX_UPSTREAM_BODY)
                    .await
                    .map_err(|e| self.err(UpstreamErrorKind::Io, e))?,
                Source::Hyper(body) => Limited::new(body, MAX_UPSTREAM_BODY)
                    .collect()
                    .await
                    .map_err(|e| self.err(UpstreamErrorKind::Io, e.to_string()))?
                    .to_bytes(),
            },
            // A declared length past the limit settles "large" at once: only the envelope is read
            // before passing the reply on. Without one (chunked), `limit` bytes are read first.
            Some(limit) => {
                let limit = declared.map_or(limit, |_| ENVELOPE_BYTES.min(limit));
                let head = self.read_head(&mut source, limit).await?;
                if !source.is_end_stream() {
                    let streamed =
                        Streamed::new(self.id, (head, source), (timeout, MAX_UPSTREAM_BODY), &self.in_flight);
                    return Ok(Fetched::Streaming(Box::new(streamed)));
                }
                head
            }
        };
        if status != 200 {
            let snippet = String::from_utf8_lossy(body.get(..200).unwrap_or(&body)).into_owned();
            let shown = StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string());
            return Err(self.err(
                UpstreamErrorKind::Status(status),
                format!("HTTP {shown}: {}", snippet.trim_end()),
            ));
        }
        Ok(Fetched::Whole(body))
    }

    /// Sends `body` through hyper's client (an `https://` node, or one with TLS settings of
    /// its own): the status, the declared length and the body to read.
    async fn send_hyper(
        &self,
        client: &UpstreamClient,
        body: Bytes,
    ) -> Result<(u16, Option<u64>, Source), UpstreamError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.target.clone())
            .header(header::CONTENT_TYPE, "application/json");
        let req = match &self.basic {
            Some(v) => req.header(header::AUTHORIZATION, v.clone()),
            None => req,
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| self.err(UpstreamErrorKind::Connect, e.to_string()))?;
        let client = self.own_client.as_ref().unwrap_or(client);
        let resp = client.inner.request(req).await.map_err(|e| {
            let kind = if e.is_connect() {
                UpstreamErrorKind::Connect
            } else {
                UpstreamErrorKind::Io
            };
            self.err(kind, super::tls::error_chain(&e))
        })?;
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        Ok((resp.status().as_u16(), declared, Source::Hyper(resp.into_body())))
    }

    /// Reads `body` until it ends or passes `limit` bytes: the bytes read (the rest, if any,
    /// stays in `body`).
    async fn read_head(&self, body: &mut Source, limit: usize) -> Result<Bytes, UpstreamError> {
        let mut head = BytesMut::new();
        while let Some(data) = body.data().await {
            let data = data.map_err(|e| self.err(UpstreamErrorKind::Io, e))?;
            if head.is_empty() && body.is_end_stream() {
                // One frame, the whole reply: no copy.
                return Ok(data);
            }
            head.extend_from_slice(&data);
            if head.len() > limit {
                break;
            }
        }
        Ok(head.freeze())
    }

    fn record_latency(&self, d: Duration) {
        let sample = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let old = self.ewma_us.load(Ordering::Relaxed);
        // α = 1/8; a racing update may be lost, which only smooths a little differently.
        let new = old - old / 8 + sample / 8;
        self.ewma_us.store(new.max(1), Ordering::Relaxed);
    }

    fn err(&self, kind: UpstreamErrorKind, detail: String) -> UpstreamError {
        UpstreamError {
            node: self.id,
            kind,
            detail,
        }
    }
}

/// Counts a call in flight for as long as it lives (also when the future is dropped).
struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    fn enter(c: &'a AtomicU32) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
