//! The only module that knows HTTP and WebSocket: the accept loop, body limits, paths,
//! the WS upgrade, and the admin endpoints. Every JSON-RPC body goes to
//! [`Gateway::handle_body`](crate::proxy::Gateway::handle_body).

mod admin;
mod api;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::Gateway;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest body / WS message.
    pub max_body_bytes: usize,
    /// Most calls in flight per WS connection.
    pub ws_max_in_flight: usize,
}

/// Shared by every connection.
#[derive(Debug)]
struct Ctx {
    gw: Arc<Gateway>,
    settings: ServerSettings,
}

type Resp = Response<Full<Bytes>>;

/// Accepts connections until `shutdown` resolves, then lets open ones finish (bounded).
pub async fn serve(
    listener: TcpListener,
    gw: Arc<Gateway>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let ctx = Arc::new(Ctx { gw, settings });
    // Connections hold a receiver; on shutdown each finishes its request in flight and
    // closes, and the sender sees when the last one has gone.
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                let svc = service_fn(move |req| handle(ctx.clone(), req));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .max_buf_size(64 * 1024)
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                let mut closing = closing_rx.clone();
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    let res = tokio::select! {
                        res = conn.as_mut() => res,
                        _ = closing.changed() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(closing);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(closing_rx);
    let _ = closing_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(5), closing_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; closing");
    }
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path();
    let rpc_path = matches!(path, "/" | "/v1/klaytn" | "/v1/klaytn/");
    Ok(match (req.method(), path) {
        (&Method::POST, _) if rpc_path => rpc(&ctx, req).await,
        (&Method::GET, _) if rpc_path && ws::is_upgrade(&req) => ws::upgrade(ctx.gw.clone(), &ctx.settings, req),
        (&Method::GET, "/health") => admin::health(),
        (&Method::GET, "/ready") => admin::ready(&ctx.gw),
        (&Method::GET, "/status") => admin::status(&ctx.gw),
        (&Method::GET, "/metrics") => admin::metrics(&ctx.gw),
        (&Method::GET, p) if p == "/v1/tx" || p.starts_with("/v1/tx/") => api::tx(&ctx.gw, p, req.uri().query()).await,
        (&Method::GET, _) if rpc_path => text(StatusCode::OK, "kengate: POST JSON-RPC 2.0 here, or open a WebSocket\n"),
        (_, _) if rpc_path => text(StatusCode::METHOD_NOT_ALLOWED, "use POST for JSON-RPC\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

async fn rpc(ctx: &Ctx, req: Request<Incoming>) -> Resp {
    let max = ctx.settings.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(max),
        Err(_) => return text(StatusCode::BAD_REQUEST, "could not read the request body\n"),
    };
    match ctx.gw.handle_body(&body).await {
        Some(reply) => json(StatusCode::OK, reply),
        None => json(StatusCode::OK, Bytes::new()),
    }
}

fn too_large(max: usize) -> Resp {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body exceeds {max} bytes\n"),
    )
}

fn json(status: StatusCode, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
