//! JSON-RPC over WebSocket on the same port and paths: the upgrade handshake, then one
//! task reading messages (each handled concurrently, bounded per connection) and one
//! writing replies. Request/response only; subscriptions come with session support.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{text, Ctx, Resp};
use crate::access::Caller;
use crate::jsonrpc::{codes, error_response, RpcError};
use crate::networks::Network;
use crate::proxy::{Gateway, Who};

pub(super) fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// Upgrades an authenticated request; the session keeps its caller (every message is
/// admitted by the caller's buckets).
pub(super) fn upgrade(ctx: &Arc<Ctx>, net: &Network, caller: Caller, mut req: Request<Incoming>) -> Resp {
    let (gw, network) = (net.gw.clone(), net.name.clone());
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let max = ctx.settings.max_body_bytes;
    let in_flight = ctx.settings.ws_max_in_flight;
    let ctx = ctx.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = WebSocketConfig {
                    max_message_size: Some(max),
                    max_frame_size: Some(max),
                    ..Default::default()
                };
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg)).await;
                session(ctx, gw, network, caller, ws, in_flight).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

async fn session(
    ctx: Arc<Ctx>,
    gw: Arc<Gateway>,
    network: String,
    caller: Caller,
    ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    in_flight: usize,
) {
    let mut caller = Arc::new(caller);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(in_flight);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let permits = Arc::new(Semaphore::new(in_flight));
    while let Some(msg) = stream.next().await {
        let body: Bytes = match msg {
            Ok(Message::Text(t)) => Bytes::from(t),
            Ok(Message::Binary(b)) => Bytes::from(b),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        // The key may have been revoked, rotated or expired since the upgrade.
        match ctx.app.access.recheck(&caller, &network) {
            Ok(c) => caller = Arc::new(c),
            Err(d) => {
                ctx.app.audit.denied(d.reason());
                let err = RpcError::new(codes::UNAUTHORIZED, d.message());
                let body = error_response(None, &err);
                let _ = tx
                    .send(Message::Text(String::from_utf8_lossy(&body).into_owned()))
                    .await;
                break;
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (gw, tx, ctx, caller) = (gw.clone(), tx.clone(), ctx.clone(), caller.clone());
        tokio::spawn(async move {
            let who = Who {
                access: &ctx.app.access,
                caller: &caller,
            };
            let reply = match gw.handle_body(&body, &who).await {
                Ok(reply) => reply,
                // Over the rate: each call gets -32005; the connection stays open.
                Err(t) => {
                    ctx.app.audit.denied(t.reason);
                    Some(t.reply)
                }
            };
            if let Some(reply) = reply {
                let msg = match String::from_utf8(reply.to_vec()) {
                    Ok(s) => Message::Text(s),
                    Err(e) => Message::Binary(e.into_bytes()),
                };
                let _ = tx.send(msg).await;
            }
            drop(permit);
        });
    }
    drop(tx);
    let _ = writer.await;
}
