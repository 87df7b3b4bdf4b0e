//! The only module that knows HTTP and WebSocket: the accept loop, header and body limits,
//! paths (which network, which URL token), authentication before the body is read, the WS
//! upgrade, and the admin endpoints. Every JSON-RPC body goes to
//! [`Gateway::handle_body`](crate::proxy::Gateway::handle_body).
//!
//! Paths: `POST /` and `/v1/{network}` (JSON-RPC; also `/v1/klaytn`, where caver-js-ext-kas
//! posts, picking the network by `x-chain-id`), `/v1/{network}/{id}.{secret}` (URL token),
//! the same with a WS upgrade (and `/v1/ws/open?chain-id=N`, the KAS WebSocket path),
//! `GET [/v1/{network}]/v1/tx...` (REST), `/api` and `/v1/{network}/api` (Etherscan-compatible),
//! `/v2/...` (KAS Token History, network by `x-chain-id`), `/admin/keys...` (admin token), and `/health`,
//! `/ready`, `/status`, `/metrics`.

mod admin;
mod api;
mod body;
mod cors;
mod domain;
mod edge;
mod front;
mod kas;
mod keys;
mod linger;
mod tls;
mod webhooks;
mod ws;

pub use cors::Cors;
pub use edge::EdgeLimits;
/// The plain front's reading of a client's request head, for the fuzzer (`client_head`).
#[doc(hidden)]
pub use front::{
    classify as front_classify, owned_head as front_owned_head, Head as FrontHead, Verdict as FrontVerdict,
};
pub use tls::ServerTls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use arc_swap::ArcSwap;

use crate::access::{Caller, Denied};
use crate::jsonrpc::{codes, error_response, RpcError};
use crate::networks::{Network, NetworkError};
use crate::proxy::{Delivered, Who};
use crate::App;
use domain::{denied_status, network_status, AdmitHeaders};

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest body / WS message.
    pub max_body_bytes: usize,
    /// Most calls in flight per WS connection.
    pub ws_max_in_flight: usize,
    /// Request headers must arrive within this (slowloris guard).
    pub header_read_timeout: Duration,
    /// Largest request head; larger → 431.
    pub max_header_bytes: usize,
    /// Messages queued per WS connection (replies and notifications); a subscriber that
    /// lets it fill is disconnected.
    pub ws_send_queue: usize,
    /// Most subscriptions per WS connection.
    pub ws_max_subscriptions: usize,
    /// Connection caps and body deadlines.
    pub edge: EdgeLimits,
    /// Which browser origins may call.
    pub cors: Cors,
    /// How kengate drains on SIGTERM / SIGINT.
    pub drain: DrainSettings,
}

/// The drain on shutdown.
#[derive(Debug, Clone)]
pub struct DrainSettings {
    /// WebSocket sessions are served this long after the drain starts, then closed with 1001.
    pub ws_grace: Duration,
    /// The drain ends after this even if connections are still open.
    pub timeout: Duration,
}

/// Shared by every connection.
#[derive(Debug)]
struct Ctx {
    app: Arc<App>,
    /// Replaced by a reload; read once per request.
    live: Arc<ArcSwap<ServerSettings>>,
    edge: Arc<edge::Edge>,
    /// Shutting down: `/ready` answers 503.
    draining: std::sync::atomic::AtomicBool,
}

type Resp = Response<body::ReplyBody>;

impl Ctx {
    /// The settings as of now.
    fn settings(&self) -> Arc<ServerSettings> {
        self.live.load_full()
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `listen`: everything, or — with a private admin surface — everything but it.
    Public { admin_elsewhere: bool },
    /// `admin_listen`: `/status`, `/metrics`, `/admin/keys`, `/health`, `/ready` only; not
    /// subject to the connection caps (an operator can look while the public side is flooded).
    Admin,
}

/// Accepts connections on `listener` (and `admin`, the private admin surface) until
/// `shutdown` resolves, then lets open ones finish (bounded).
pub async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    app: Arc<App>,
    live: Arc<ArcSwap<ServerSettings>>,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()>,
) {
    let edge = edge::Edge::new(live.clone(), app.edge.clone());
    let ctx = Arc::new(Ctx {
        app,
        live,
        edge,
        draining: std::sync::atomic::AtomicBool::new(false),
    });
    let public = Surface::Public {
        admin_elsewhere: admin.is_some(),
    };
    let accept_admin = || async {
        match &admin {
            Some(l) => l.accept().await,
            None => std::future::pending().await,
        }
    };
    // Connections hold a receiver; on shutdown each finishes its request in flight and
    // closes, and the sender sees when the last one has gone.
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (accepted, surface) = tokio::select! {
            a = listener.accept() => (a, public),
            a = accept_admin() => (a, Surface::Admin),
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The connection's place under the caps, held by the connection and, after an upgrade,
        // by its WebSocket session (which outlives the HTTP connection's task).
        let place = match surface {
            Surface::Admin => None,
            Surface::Public { .. } => match ctx.edge.admit(peer.ip()) {
                Some(p) => Some(p),
                None => {
                    // Told why, best effort (never waits on the client), and closed.
                    let _ = stream.try_write(edge::REFUSED);
                    continue;
                }
            },
        };
        let place: Place = Arc::new(Conn {
            _place: place,
            cut: std::sync::atomic::AtomicBool::new(false),
            closing: closing_rx.clone(),
        });
        let _ = stream.set_nodelay(true);
        let tls = match surface {
            Surface::Public { .. } => tls.clone(),
            Surface::Admin => None,
        };
        tokio::spawn(connection(ctx.clone(), surface, peer, place, stream, tls));
    }
    // Draining: /ready says so at once, the public listener closes (new connections are
    // refused), HTTP requests in flight finish and their connections close, WebSocket
    // sessions carry on for the grace period and then close with 1001. The admin surface
    // stays up until the end (the drain does not wait for its connections), so an operator
    // and probes see it.
    drop(listener);
    ctx.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(closing_rx);
    tracing::info!(
        open = ctx.edge.open(),
        "draining: no new connections; finishing requests in flight"
    );
    let _ = closing_tx.send(true);
    let (_admin_open, admin_closing) = watch::channel(false);
    let limit = ctx.settings().drain.timeout;
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = closing_tx.closed() => break,
            () = &mut deadline => {
                tracing::warn!(?limit, "connections still open at the end of the drain; closing them");
                break;
            }
            a = accept_admin() => {
                let Ok((stream, peer)) = a else { continue };
                // The drain does not wait for it; it closes when the drain ends.
                let place: Place = Arc::new(Conn {
                    _place: None,
                    cut: std::sync::atomic::AtomicBool::new(false),
                    closing: admin_closing.clone(),
                });
                tokio::spawn(connection(ctx.clone(), Surface::Admin, peer, place, stream, None));
            }
        }
    }
}

/// Serves one connection: TLS first where the listener has it, then HTTP/2 when the client
/// chose it by ALPN, HTTP/1.1 (with WebSocket upgrades) otherwise — a plain public connection
/// starts in the front (`front.rs`: JSON-RPC POSTs without hyper) and goes to hyper for the rest
/// of its life at the first request the front does not serve; on shutdown, the request in
/// flight finishes and the connection closes. Each stage is boxed: the task holds only the
/// stage this connection is in (an idle connection in the front holds no hyper state, TLS
/// session or HTTP/2 room).
async fn connection(
    ctx: Arc<Ctx>,
    surface: Surface,
    peer: SocketAddr,
    place: Place,
    stream: tokio::net::TcpStream,
    tls: Option<Arc<ServerTls>>,
) {
    let mut closing = place.closing.clone();
    let io = linger::Lingering::new(stream, place.clone());
    let io = match (tls, surface) {
        (Some(tls), _) => {
            return Box::pin(over_tls(ctx, surface, peer, place, io, tls, closing)).await;
        }
        (None, Surface::Public { .. }) => {
            match Box::pin(front::serve(ctx.clone(), peer, place.clone(), io, &mut closing)).await {
                front::Outcome::Closed => return,
                front::Outcome::HandOff(rewind) => rewind,
            }
        }
        (None, Surface::Admin) => front::Rewind::new(Bytes::new(), io),
    };
    let svc = service(ctx.clone(), surface, peer, place);
    let res = Box::pin(drive(
        h1(&ctx.settings())
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades(),
        &mut closing,
        |c| c.graceful_shutdown(),
    ))
    .await;
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A TLS connection: the handshake within the head deadline, then HTTP/2 by ALPN or HTTP/1.1.
async fn over_tls(
    ctx: Arc<Ctx>,
    surface: Surface,
    peer: SocketAddr,
    place: Place,
    io: linger::Lingering,
    tls: Arc<ServerTls>,
    mut closing: watch::Receiver<bool>,
) {
    let settings = ctx.settings();
    // The handshake is part of the head: the same deadline.
    let stream = match tokio::time::timeout(settings.header_read_timeout, tls.acceptor().accept(io)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let svc = service(ctx.clone(), surface, peer, place);
    let res = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        let mut b = http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        Box::pin(drive(
            b.serve_connection(TokioIo::new(stream), svc),
            &mut closing,
            |c| c.graceful_shutdown(),
        ))
        .await
    } else {
        Box::pin(drive(
            h1(&settings)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades(),
            &mut closing,
            |c| c.graceful_shutdown(),
        ))
        .await
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Hyper's HTTP/1.1 server with kengate's head limits.
fn h1(settings: &ServerSettings) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        // The parsed head's size (431 above it), however fast it arrived; the read
        // buffer may hold a little more than one head.
        .max_header_size(settings.max_header_bytes)
        .max_buf_size(settings.max_header_bytes.max(8192) * 2);
    b
}

/// A request's future as hyper's service returns it.
type Handled = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

/// The service hyper calls for each request of a connection.
fn service(
    ctx: Arc<Ctx>,
    surface: Surface,
    peer: SocketAddr,
    place: Place,
) -> impl hyper::service::Service<Request<Incoming>, Response = Resp, Error = Infallible, Future = Handled> + Clone {
    service_fn(move |req| {
        let (ctx, place) = (ctx.clone(), place.clone());
        // Boxed: hyper keeps a slot the size of this future for every connection, in use or
        // idle; boxed, an idle keep-alive connection holds a pointer instead of the whole
        // request's state (kilobytes), which is allocated per request and freed after it.
        Box::pin(async move {
            let resp = handle(ctx, surface, peer, place.clone(), req).await;
            if resp.as_ref().is_ok_and(|r| r.status() == StatusCode::REQUEST_TIMEOUT) {
                // A client too slow to send its body is not waited for again.
                place.cut.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            resp
        }) as Handled
    })
}

/// Runs a connection to its end, or — once `closing` turns — asks it to finish gracefully.
async fn drive<C, E>(conn: C, closing: &mut watch::Receiver<bool>, graceful: impl FnOnce(Pin<&mut C>)) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => res,
        _ = closing.changed() => {
            graceful(conn.as_mut());
            conn.await
        }
    }
}

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// JSON-RPC (POST, or GET with a WS upgrade).
    Rpc {
        network: Option<&'a str>,
        token: Option<&'a str>,
    },
    /// The KAS WebSocket path: network by the `chain-id` query parameter.
    KasWs,
    /// The REST tx API; `rest` starts at `/v1/tx`.
    Tx {
        network: Option<&'a str>,
        rest: &'a str,
    },
    /// The Etherscan-compatible API over the index (`/api`, `/v1/{network}/api`).
    Etherscan {
        network: Option<&'a str>,
    },
    /// The KAS Token History API over the index: `/v2` + rest (network by `x-chain-id`).
    Kas(&'a str),
    /// The webhooks API: `[/v1/{network}]/v1/webhooks` + rest.
    Webhooks {
        network: Option<&'a str>,
        rest: &'a str,
    },
    /// `/admin/keys` + rest.
    Keys(&'a str),
    Health,
    Ready,
    Status,
    Metrics,
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/" => {
            return Route::Rpc {
                network: None,
                token: None,
            }
        }
        "/health" => return Route::Health,
        "/ready" => return Route::Ready,
        "/status" => return Route::Status,
        "/metrics" => return Route::Metrics,
        "/v1/ws/open" => return Route::KasWs,
        "/api" => return Route::Etherscan { network: None },
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/v2") {
        if rest.starts_with('/') {
            return Route::Kas(rest);
        }
    }
    if let Some(rest) = path.strip_prefix("/admin/keys") {
        if rest.is_empty() || rest.starts_with('/') {
            return Route::Keys(rest);
        }
    }
    if let Some(rest) = path.strip_prefix("/v1/").and_then(webhooks::rest_of) {
        return Route::Webhooks { network: None, rest };
    }
    if path == "/v1/tx" || path.starts_with("/v1/tx/") {
        return Route::Tx {
            network: None,
            rest: &path["/v1/tx".len()..],
        };
    }
    let Some(after) = path.strip_prefix("/v1/") else {
        return Route::NotFound;
    };
    let (network, rest) = after.split_once('/').unwrap_or((after, ""));
    if network.is_empty() {
        return Route::NotFound;
    }
    match rest {
        "" => Route::Rpc {
            network: Some(network),
            token: None,
        },
        r if r == "tx" || r.starts_with("tx/") => Route::Tx {
            network: Some(network),
            rest: &r["tx".len()..],
        },
        "api" => Route::Etherscan { network: Some(network) },
        r if webhooks::rest_of(r).is_some() => Route::Webhooks {
            network: Some(network),
            rest: webhooks::rest_of(r).unwrap_or(""),
        },
        token if !token.contains('/') => Route::Rpc {
            network: Some(network),
            token: Some(token),
        },
        _ => Route::NotFound,
    }
}

/// One client connection, shared by its HTTP task, its WebSocket session and its socket.
#[derive(Debug)]
struct Conn {
    /// Its place under the connection caps (`None` on the admin surface), freed when the last
    /// holder ends.
    _place: Option<edge::ConnGuard>,
    /// Close without lingering (a client too slow to wait for: a body timeout).
    cut: std::sync::atomic::AtomicBool,
    /// Turns when kengate drains; the server waits until every connection's copy is gone.
    closing: watch::Receiver<bool>,
}

/// A connection, as its holders share it.
type Place = Arc<Conn>;

async fn handle(
    ctx: Arc<Ctx>,
    surface: Surface,
    peer: SocketAddr,
    place: Place,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let browser_path = || {
        matches!(
            route(req.uri().path()),
            Route::Rpc { .. } | Route::Tx { .. } | Route::KasWs
        )
    };
    // Cross-origin calls: only with CORS on, or a WebSocket (browsers do not check those
    // themselves, so kengate checks the page's origin).
    // Settings read without taking a reference on the common path (no Origin).
    let (cors_on, vary) = {
        let s = ctx.live.load();
        (s.cors.enabled(), s.cors.enabled() && s.cors.varies())
    };
    if req.headers().contains_key(header::ORIGIN) && (cors_on || ws::is_upgrade(&req)) && browser_path() {
        let settings = ctx.settings();
        let cors = &settings.cors;
        let verdict = cors.verdict(req.headers());
        if req.method() == Method::OPTIONS {
            if req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
                return Ok(cors.preflight(&verdict));
            }
        } else if verdict == cors::Verdict::Refused {
            return Ok(text(
                StatusCode::FORBIDDEN,
                "this origin may not call kengate (cors.allowed_origins)\n",
            ));
        }
        let mut resp = dispatch(ctx.clone(), surface, peer, place, req).await?;
        if let cors::Verdict::Allowed(origin) = &verdict {
            cors.decorate(&mut resp, origin);
        }
        return Ok(resp);
    }
    let vary = vary && browser_path();
    let mut resp = dispatch(ctx, surface, peer, place, req).await?;
    if vary {
        // The answer to a listed origin differs: a shared cache must not hand this one out.
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
    }
    Ok(resp)
}

async fn dispatch(
    ctx: Arc<Ctx>,
    surface: Surface,
    peer: SocketAddr,
    place: Place,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let app = &ctx.app;
    let is_get = req.method() == Method::GET;
    let route = route(req.uri().path());
    let admin_route = matches!(route, Route::Status | Route::Metrics | Route::Keys(_));
    let served_here = match surface {
        Surface::Admin => admin_route || matches!(route, Route::Health | Route::Ready),
        Surface::Public { admin_elsewhere } => !(admin_elsewhere && admin_route),
    };
    if !served_here {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n"));
    }
    // Without a private admin surface, an operator who set an admin token wants it for
    // /status and /metrics too (they name nodes and access keys).
    if matches!(surface, Surface::Public { .. })
        && matches!(route, Route::Status | Route::Metrics)
        && app.access().admin_configured()
        && !app.access().admin_authorized(req.headers())
    {
        return Ok(admin_token_required(
            app,
            "admin token required (Authorization: Bearer <token>), or use admin_listen",
        ));
    }
    Ok(match route {
        Route::Health if is_get => admin::health(),
        Route::Ready if is_get => admin::ready(app, ctx.draining.load(std::sync::atomic::Ordering::Relaxed)),
        Route::Status if is_get => admin::status(app),
        Route::Metrics if is_get => admin::metrics(app),
        Route::Health | Route::Ready | Route::Status | Route::Metrics => not_allowed("GET", "use GET\n"),
        Route::Keys(rest) => keys_admin(&ctx, rest.to_owned(), req).await,
        Route::Webhooks { network, rest } => {
            let (network, rest) = (network.map(str::to_owned), rest.to_owned());
            webhooks::handle(&ctx, peer, req, network.as_deref(), &rest).await
        }
        Route::Kas(rest) => {
            let rest = rest.to_owned();
            kas::handle(&ctx, peer, req, &rest, &place).await
        }
        Route::Tx { network, rest } => {
            if !is_get {
                return Ok(not_allowed("GET", "use GET\n"));
            }
            let (net, caller) = match admit_request(&ctx, peer, req.headers(), network, None, None) {
                Ok(x) => x,
                Err(resp) => return Ok(*resp),
            };
            // A REST route is a method for the key's permissions and the buckets.
            let method = api::method_of(rest);
            if !caller.allows(method, false) {
                return Ok(json_error(
                    StatusCode::FORBIDDEN,
                    &format!("this access key may not call {method} (GET /v1/tx…)"),
                ));
            }
            if let Err(d) = app.access().admit(&caller, app.access().weight(method)) {
                return Ok(denied(app, &d, None));
            }
            let started = std::time::Instant::now();
            let resp = api::tx(&net.gw(), rest, req.uri().query()).await;
            if let Some(key) = &caller.key {
                app.audit
                    .call(key.shared_id(), method, started.elapsed(), resp.status().is_success());
            }
            resp
        }
        Route::Etherscan { network } => {
            if !is_get {
                return Ok(not_allowed("GET", "use GET\n"));
            }
            let (net, caller) = match admit_request(&ctx, peer, req.headers(), network, None, None) {
                Ok(x) => x,
                Err(resp) => return Ok(*resp),
            };
            let method = "kengate_etherscanApi";
            if !caller.allows(method, false) {
                return Ok(json_error(
                    StatusCode::FORBIDDEN,
                    &format!("this access key may not call {method} (GET /api)"),
                ));
            }
            if let Err(d) = app.access().admit(&caller, app.access().weight(method)) {
                return Ok(denied(app, &d, None));
            }
            let Some(index) = &app.index else {
                return Ok(json_error(
                    StatusCode::NOT_FOUND,
                    "the index is off on this gateway ([index] enabled = false)",
                ));
            };
            let started = std::time::Instant::now();
            let body =
                crate::index::etherscan::answer(index, &*net.current, &net.name, req.uri().query().unwrap_or("")).await;
            if let Some(key) = &caller.key {
                app.audit.call(key.shared_id(), method, started.elapsed(), true);
            }
            json(StatusCode::OK, Bytes::from(body))
        }
        Route::KasWs => {
            let chain = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("chain-id=")))
                .map(str::to_owned);
            match admit_request(
                &ctx,
                peer,
                req.headers(),
                None,
                None,
                chain.as_deref().map(str::as_bytes),
            ) {
                Ok((net, caller)) if ws::is_upgrade(&req) => ws::upgrade(&ctx, net, caller, req, place),
                Ok(_) => text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n"),
                Err(resp) => *resp,
            }
        }
        Route::Rpc { network, token } => {
            let (net, caller) = match admit_request(&ctx, peer, req.headers(), network, token, None) {
                Ok(x) => x,
                Err(resp) => return Ok(*resp),
            };
            match *req.method() {
                Method::POST => rpc(&ctx, net, &caller, req).await,
                Method::GET if ws::is_upgrade(&req) => ws::upgrade(&ctx, net, caller, req, place),
                Method::GET => text(StatusCode::OK, "kengate: POST JSON-RPC 2.0 here, or open a WebSocket\n"),
                Method::OPTIONS if ctx.settings().cors.enabled() => {
                    let mut r = text(StatusCode::NO_CONTENT, "");
                    r.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, POST, OPTIONS"));
                    r
                }
                _ => not_allowed("GET, POST", "use POST for JSON-RPC (GET opens a WebSocket)\n"),
            }
        }
        Route::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Picks the network and authenticates the caller, before the body is read. `Err`: the
/// 4xx to answer.
fn admit_request<'a>(
    ctx: &'a Ctx,
    peer: SocketAddr,
    headers: &impl AdmitHeaders,
    network: Option<&str>,
    token: Option<&str>,
    chain_override: Option<&[u8]>,
) -> Result<(&'a Network, Caller), Box<Resp>> {
    admit(ctx, peer, headers, network, token, chain_override).map_err(|r| {
        Box::new(match r {
            Refusal::Denied(d) => denied(&ctx.app, &d, None),
            Refusal::Network(e) => network_error(&e),
        })
    })
}

/// Why a request was refused before its body was read.
enum Refusal {
    Denied(Denied),
    Network(NetworkError),
}

/// [`admit_request`], leaving the answer's shape to the caller (KAS clients read another).
fn admit<'a>(
    ctx: &'a Ctx,
    peer: SocketAddr,
    headers: &impl AdmitHeaders,
    network: Option<&str>,
    token: Option<&str>,
    chain_override: Option<&[u8]>,
) -> Result<(&'a Network, Caller), Refusal> {
    let app = &ctx.app;
    // The rules as of now, once for the whole request.
    let access = app.access.load();
    let chain = chain_override.or_else(|| headers.x_chain_id());
    let ip = access.client_ip(peer, headers);
    let net = app.networks.select(network, chain).map_err(|e| {
        // With auth on, which networks exist is not told before a credential works: a
        // credential that does not is refused as on any network.
        if access.enabled() {
            if let Err(d) = access.authenticate(ip, headers, token, "") {
                if denied_status(&d) != StatusCode::FORBIDDEN {
                    return Refusal::Denied(d);
                }
            }
        }
        Refusal::Network(e)
    })?;
    let caller = access
        .authenticate(ip, headers, token, &net.name)
        .map_err(Refusal::Denied)?;
    Ok((net, caller))
}

async fn rpc(ctx: &Ctx, net: &Network, caller: &Caller, req: Request<Incoming>) -> Resp {
    let max = ctx.live.load().max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    let body = match ctx.edge.read_body(req.into_body(), max).await {
        Ok(b) => b,
        Err(e) => return body_refused(e, max),
    };
    rpc_body(ctx, net, caller, &body.bytes).await
}

/// Answers a JSON-RPC body read whole by [`rpc`] (hyper's path), as a `Response`.
async fn rpc_body(ctx: &Ctx, net: &Network, caller: &Caller, body: &Bytes) -> Resp {
    rpc_reply(ctx, net, caller, body).await.into_resp()
}

/// What a JSON-RPC body is answered with: a `200` JSON reply (the common case, which the plain
/// front writes without building a `Response`), or any other response.
enum RpcReply {
    /// `200`, `content-type: application/json`, this body.
    Json(Bytes),
    /// Anything else.
    Other(Resp),
}

impl RpcReply {
    fn into_resp(self) -> Resp {
        match self {
            RpcReply::Json(body) => json(StatusCode::OK, body),
            RpcReply::Other(resp) => resp,
        }
    }
}

/// Answers a JSON-RPC body read whole: for [`rpc_body`], and for the plain front, which writes
/// the common `200` JSON reply itself.
async fn rpc_reply(ctx: &Ctx, net: &Network, caller: &Caller, body: &Bytes) -> RpcReply {
    let who = Who {
        access: &ctx.app.access(),
        caller,
        events: &net.events,
        session: None,
    };
    let key = who.caller.key.as_ref().map(|k| k.shared_id().clone());
    let gw = net.gw();
    let served = gw.handle_streaming(body, &who);
    // The key goes with the txs it sends (webhooks can follow a key's txs).
    let served = match key {
        Some(k) => crate::txpath::lifecycle::ACCESS_KEY.scope(k, served).await,
        None => served.await,
    };
    match served {
        Ok(Some(Delivered::Whole(reply))) => RpcReply::Json(reply),
        Ok(Some(Delivered::Streamed(rest))) => {
            let mut r = Response::new(body::ReplyBody::Streamed(rest));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            RpcReply::Other(r)
        }
        Ok(None) => RpcReply::Json(Bytes::new()),
        Err(t) => {
            ctx.app.audit.denied(t.reason);
            let mut r = json(StatusCode::TOO_MANY_REQUESTS, t.reply);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after_secs));
            RpcReply::Other(r)
        }
    }
}

/// `/admin/keys...`: the admin token, then the key API.
async fn keys_admin(ctx: &Ctx, rest: String, req: Request<Incoming>) -> Resp {
    let access = ctx.app.access();
    if !access.admin_configured() {
        return json_error(
            StatusCode::NOT_FOUND,
            "the admin API is off: set auth.admin_token or KENGATE_ADMIN_TOKEN",
        );
    }
    if !access.admin_authorized(req.headers()) {
        return admin_token_required(&ctx.app, "admin token required (Authorization: Bearer <token>)");
    }
    let method = req.method().clone();
    let body = match ctx.edge.read_body(req.into_body(), 64 * 1024).await {
        Ok(b) => b.bytes.clone(),
        Err(edge::BodyError::TooLarge) => {
            return json_error(StatusCode::PAYLOAD_TOO_LARGE, "admin request body over 64 KiB")
        }
        Err(e) => return body_refused(e, 64 * 1024),
    };
    let access = access.clone();
    // Key management touches the store (blocking IO).
    let done = tokio::task::spawn_blocking(move || keys::admin_keys(&access, &method, &rest, &body)).await;
    match done {
        Ok((status, value)) => {
            let allow = value
                .get("allow")
                .and_then(|a| a.as_str())
                .and_then(|a| HeaderValue::from_str(a).ok());
            let mut r = json(status, Bytes::from(value.to_string()));
            if let (StatusCode::METHOD_NOT_ALLOWED, Some(a)) = (status, allow) {
                r.headers_mut().insert(header::ALLOW, a);
            }
            r
        }
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "key management failed"),
    }
}

/// A refused request: status, JSON-RPC error body (clients such as caver surface its
/// message), `WWW-Authenticate` / `Retry-After`.
fn denied(app: &App, d: &Denied, id: Option<crate::jsonrpc::RawJson<'_>>) -> Resp {
    app.audit.denied(d.reason());
    if denied_status(d) == StatusCode::UNAUTHORIZED {
        tracing::debug!(reason = d.detail(), "authentication failed");
    }
    let code = match d {
        Denied::RateLimited { .. } | Denied::LockedOut { .. } => codes::LIMIT_EXCEEDED,
        _ => codes::UNAUTHORIZED,
    };
    let mut r = json(denied_status(d), error_response(id, &RpcError::new(code, d.message())));
    if let Some(v) = d.www_authenticate() {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    if let Some(secs) = d.retry_after_secs() {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn network_error(e: &NetworkError) -> Resp {
    json(
        network_status(e),
        error_response(None, &RpcError::new(codes::INVALID_REQUEST, e.to_string())),
    )
}

fn json_error(status: StatusCode, msg: &str) -> Resp {
    json(status, Bytes::from(serde_json::json!({ "error": msg }).to_string()))
}

fn too_large(max: usize) -> Resp {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body exceeds {max} bytes\n"),
    )
}

fn json(status: StatusCode, body: Bytes) -> Resp {
    let mut r = Response::new(body::ReplyBody::whole(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// 401 for a missing or wrong admin token (counted), with its `WWW-Authenticate`.
fn admin_token_required(app: &App, msg: &str) -> Resp {
    app.audit.denied("admin_token");
    let mut r = json_error(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"kengate-admin\""),
    );
    r
}

/// The answer to a body that could not be read; all but "too large" close the connection.
fn body_refused(e: edge::BodyError, max: usize) -> Resp {
    let mut r = match e {
        edge::BodyError::TooLarge => return too_large(max),
        edge::BodyError::TimedOut => text(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time (limits.body_timeout_ms, limits.body_idle_timeout_ms)\n",
        ),
        edge::BodyError::Busy => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many request bytes in flight (limits.max_buffered_body_bytes); retry\n",
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            r
        }
        edge::BodyError::Broken => text(StatusCode::BAD_REQUEST, "could not read the request body\n"),
    };
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 405 with the `Allow` header.
fn not_allowed(allow: &'static str, body: &str) -> Resp {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, body);
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn text(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(body::ReplyBody::whole(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let rpc = |network, token| Route::Rpc { network, token };
        assert_eq!(route("/"), rpc(None, None));
        assert_eq!(route("/v1/cypress"), rpc(Some("cypress"), None));
        assert_eq!(route("/v1/cypress/"), rpc(Some("cypress"), None));
        assert_eq!(route("/v1/klaytn/id.secret"), rpc(Some("klaytn"), Some("id.secret")));
        assert_eq!(
            route("/v1/tx"),
            Route::Tx {
                network: None,
                rest: ""
            }
        );
        assert_eq!(
            route("/v1/tx/0xab"),
            Route::Tx {
                network: None,
                rest: "/0xab"
            }
        );
        assert_eq!(
            route("/v1/baobab/tx"),
            Route::Tx {
                network: Some("baobab"),
                rest: ""
            }
        );
        assert_eq!(
            route("/v1/baobab/tx/0xab"),
            Route::Tx {
                network: Some("baobab"),
                rest: "/0xab"
            }
        );
        assert_eq!(route("/admin/keys"), Route::Keys(""));
        assert_eq!(route("/admin/keys/KG1/rotate"), Route::Keys("/KG1/rotate"));
        assert_eq!(route("/admin/keysx"), Route::NotFound);
        assert_eq!(route("/v1/ws/open"), Route::KasWs);
        for nf in ["/v1/", "/v1//x", "/v1/a/b/c", "/x", "/v1"] {
            assert_eq!(route(nf), Route::NotFound, "{nf}");
        }
        assert_eq!(route("/metrics"), Route::Metrics);
    }
}
