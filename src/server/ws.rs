//! JSON-RPC over WebSocket on the same port and paths: the upgrade handshake, then one
//! task reading messages (each handled concurrently, bounded per connection) and one
//! writing replies and subscription notifications from one bounded queue. A connection whose
//! subscriptions overflow the queue is closed with code 1008 and the reason.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::edge::MessageRefused;
use super::{text, Ctx, Resp};
use std::time::Duration;

use crate::access::Caller;
use crate::events::{Hub, Session};
use crate::jsonrpc::{codes, error_response, RpcError};
use crate::networks::Network;
use crate::proxy::Who;

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
pub(super) fn upgrade(
    ctx: &Arc<Ctx>,
    net: &Network,
    caller: Caller,
    mut req: Request<Incoming>,
    place: super::Place,
) -> Resp {
    let (current, events, network) = (net.current.clone(), net.events.clone(), net.name.clone());
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let settings = ctx.settings();
    let max = settings.max_body_bytes;
    let in_flight = settings.ws_max_in_flight;
    let ctx = ctx.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // The connection keeps its place under the caps until the session ends.
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = WebSocketConfig {
                    max_message_size: Some(max),
                    max_frame_size: Some(max),
                    ..Default::default()
                };
                let (io, done) = super::edge::Metered::new(TokioIo::new(upgraded), ctx.edge.clone());
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(cfg)).await;
                session(ctx, current, events, network, caller, (ws, done), (in_flight, place)).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut r = Response::new(super::body::ReplyBody::whole(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

#[allow(clippy::too_many_arguments)]
async fn session(
    ctx: Arc<Ctx>,
    current: Arc<crate::networks::Current>,
    events: Arc<Hub>,
    network: String,
    caller: Caller,
    (ws, done): (
        WebSocketStream<super::edge::Metered<TokioIo<hyper::upgrade::Upgraded>>>,
        super::edge::MessageDone,
    ),
    (in_flight, place): (usize, super::Place),
) {
    let mut caller = Arc::new(caller);
    let (mut sink, mut stream) = ws.split();
    let settings = ctx.settings();
    let (tx, mut rx) = mpsc::channel::<Bytes>(settings.ws_send_queue);
    let (subs, mut overflow) = Session::new(tx.clone(), settings.ws_max_subscriptions);
    let subs = Arc::new(subs);
    let mut close = overflow.clone();
    let writer = tokio::spawn(async move {
        // Queued messages go first; an overflow closes the connection with its code and
        // reason once they are out. The session going away is not an overflow.
        let mut watching = true;
        loop {
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(b) => {
                        // What is queued already goes out in the same write.
                        let mut ok = sink.feed(text_message(b)).await.is_ok();
                        for _ in 1..COALESCE {
                            let Ok(b) = rx.try_recv() else { break };
                            ok = ok && sink.feed(text_message(b)).await.is_ok();
                        }
                        if !ok || sink.flush().await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                changed = close.changed(), if watching => {
                    let why = close.borrow().clone();
                    match (changed, why) {
                        (Ok(()), Some(_)) => break,
                        (Ok(()), None) => {}
                        (Err(_), _) => watching = false,
                    }
                }
            }
        }
        // The queue ended because the session did: an overflow still says why.
        let why = close.borrow().clone();
        if let Some(o) = why {
            let frame = CloseFrame {
                code: CloseCode::from(o.code),
                reason: o.reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    });
    let permits = Arc::new(Semaphore::new(in_flight));
    // Subscribers may never send again: their key is re-checked on a timer too (a keyless
    // caller has nothing to re-check).
    let mut recheck = tokio::time::interval(Duration::from_secs(1));
    let keyed = caller.key.is_some();
    // Draining: the session is served for the grace period, then closed with 1001.
    let mut closing = place.closing.clone();
    let mut drain_at: Option<tokio::time::Instant> = None;
    let drain_sleep = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain_sleep);
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = overflow.changed() => break,
            _ = closing.changed(), if drain_at.is_none() => {
                let at = tokio::time::Instant::now() + ctx.settings().drain.ws_grace;
                drain_at = Some(at);
                drain_sleep.as_mut().reset(at);
                continue;
            }
            () = &mut drain_sleep, if drain_at.is_some() => {
                // Calls in flight are answered first (bounded), then the close frame goes
                // after every queued message.
                let all = u32::try_from(in_flight).unwrap_or(u32::MAX);
                let _ = tokio::time::timeout(ctx.settings().drain.timeout, permits.acquire_many(all)).await;
                subs.close_with(1001, "kengate is shutting down; reconnect".to_owned());
                break;
            }
            _ = recheck.tick(), if keyed => {
                if subs.is_empty() || ctx.app.access().recheck(&caller, &network).is_ok() {
                    continue;
                }
                Some(Ok(Message::Text(String::new())))
            }
        };
        if let Some(Ok(_)) = &msg {
            done.done();
        }
        let body: Bytes = match msg {
            Some(Ok(Message::Text(t))) => Bytes::from(t),
            Some(Ok(Message::Binary(b))) => Bytes::from(b),
            Some(Err(e)) => {
                // The client is told why (the writer sends the close frame).
                if let Some((code, reason)) = close_for(&e, settings.max_body_bytes) {
                    subs.close_with(code, reason);
                }
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
        };
        // The key may have been revoked, rotated or expired since the upgrade.
        match ctx.app.access().recheck(&caller, &network) {
            Ok(c) => caller = Arc::new(c),
            Err(d) => {
                ctx.app.audit.denied(d.reason());
                let err = RpcError::new(codes::UNAUTHORIZED, d.message());
                let _ = tx.send(error_response(None, &err)).await;
                break;
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // Each message is handled by the gateway current when it arrives (a reload may have
        // replaced the one the session started with).
        let (gw, tx, ctx, caller, events, subs) = (
            current.gw(),
            tx.clone(),
            ctx.clone(),
            caller.clone(),
            events.clone(),
            subs.clone(),
        );
        tokio::spawn(async move {
            let who = Who {
                access: &ctx.app.access(),
                caller: &caller,
                events: &events,
                session: Some(&subs),
            };
            let key = caller.key.as_ref().map(|k| k.shared_id().clone());
            let served = gw.handle_body(&body, &who);
            let served = match key {
                Some(k) => crate::txpath::lifecycle::ACCESS_KEY.scope(k, served).await,
                None => served.await,
            };
            let reply = match served {
                Ok(reply) => reply,
                // Over the rate: each call gets -32005; the connection stays open.
                Err(t) => {
                    ctx.app.audit.denied(t.reason);
                    Some(t.reply)
                }
            };
            if let Some(reply) = reply {
                let _ = tx.send(reply).await;
            }
            // Subscriptions this message made may notify now: their ids are queued first.
            subs.replies_sent();
            drop(permit);
        });
    }
    // Ends the subscriptions (they hold queue senders), then the writer drains.
    drop(subs);
    drop(tx);
    let _ = writer.await;
}

/// The close code and reason for a read error the client caused: 1009 for a message over the
/// size limit, 1007 for text that is not UTF-8, 1002 for any other protocol violation, 1008 for
/// a message that stalled, 1013 when the shared byte budget is spent.
fn close_for(e: &tokio_tungstenite::tungstenite::Error, max: usize) -> Option<(u16, String)> {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Capacity(_) => Some((1009, format!("message over {max} bytes (limits.max_body_bytes)"))),
        Error::Utf8 => Some((1007, "text message is not UTF-8".to_owned())),
        Error::Protocol(p) => Some((1002, crate::jsonrpc::clip(&p.to_string()))),
        Error::Io(io) => Some(match MessageRefused::of(io)? {
            r @ MessageRefused::Stalled => (
                1008,
                format!("{r} (limits.body_timeout_ms, limits.body_idle_timeout_ms)"),
            ),
            r @ MessageRefused::OverBudget => (1013, format!("{r} (limits.max_buffered_body_bytes); retry")),
        }),
        _ => None,
    }
}

/// Most queued messages written with one flush.
const COALESCE: usize = 64;

fn text_message(b: Bytes) -> Message {
    match String::from_utf8(b.to_vec()) {
        Ok(s) => Message::Text(s),
        Err(e) => Message::Binary(e.into_bytes()),
    }
}
