//! `/v2/...`: the KAS Token History API's HTTP side — the network by `x-chain-id`, Basic auth
//! with an access key (or the admin token, which sees every preset), the key's REST group
//! (`kas_tokenHistory`, `kas_preset`), the throttle, and refusals in KAS's `{code, message}`
//! shape (401: KAS's 1010009). The answers come from [`crate::index::kas`].

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;

use super::domain::{denied_status, network_status};
use super::{admit, edge, json, Ctx, Place, Refusal, Resp};
use crate::access::Denied;
use crate::index::kas::{self, Scope};

/// The largest preset body.
const MAX_BODY: usize = 64 * 1024;

/// Answers one `/v2{rest}` request.
pub(super) async fn handle(ctx: &Ctx, peer: SocketAddr, req: Request<Incoming>, rest: &str, _place: &Place) -> Resp {
    let app = &ctx.app;
    let method = kas::permission(rest);
    let admin = app.access().admin_configured() && app.access().admin_authorized(req.headers());
    // The admin token stands for no key: the network is picked, nobody is authenticated.
    let (net, caller) = match admin {
        true => {
            let chain = req.headers().get("x-chain-id").map(HeaderValue::as_bytes);
            match app.networks.select(None, chain) {
                Ok(n) => (n, None),
                Err(e) => return refusal(network_status(&e), &e.to_string()),
            }
        }
        false => match admit(ctx, peer, req.headers(), None, None, None) {
            Ok((net, caller)) => (net, Some(caller)),
            Err(Refusal::Denied(d)) => return denied(ctx, &d),
            Err(Refusal::Network(e)) => return refusal(network_status(&e), &e.to_string()),
        },
    };
    if let Some(caller) = &caller {
        if !caller.allows(method, false) {
            return refusal(
                StatusCode::FORBIDDEN,
                &format!("this access key may not call {method} (/v2{rest})"),
            );
        }
        if let Err(d) = app.access().admit(caller, app.access().weight(method)) {
            return denied(ctx, &d);
        }
    }
    let Some(index) = app.index.clone() else {
        return refusal(
            StatusCode::NOT_FOUND,
            "the index is off on this gateway ([index] enabled = false)",
        );
    };
    let verb = req.method().clone();
    if !matches!(verb, Method::GET | Method::POST | Method::PUT | Method::DELETE) {
        return refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET (POST, PUT, DELETE for presets)",
        );
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = match verb {
        Method::POST | Method::PUT => match ctx.edge.read_body(req.into_body(), MAX_BODY).await {
            Ok(b) => b.bytes.clone(),
            Err(edge::BodyError::TooLarge) => {
                return refusal(StatusCode::PAYLOAD_TOO_LARGE, "a preset body is at most 64 KiB")
            }
            Err(e) => return super::body_refused(e, MAX_BODY),
        },
        _ => Bytes::new(),
    };
    let owner = caller.as_ref().and_then(|c| c.key.as_ref()).map(|k| k.id().to_owned());
    let (network, rest_owned) = (net.name.clone(), rest.to_owned());
    let started = std::time::Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let done = tokio::task::spawn_blocking(move || {
        let scope = match &owner {
            Some(id) => Scope::Key(id),
            None => Scope::All,
        };
        let req = kas::Request {
            method: verb.as_str(),
            path: &rest_owned,
            query: &query,
            body: &body,
            scope,
            now,
        };
        kas::answer(index.db(), &network, &req)
    })
    .await;
    let reply = match done {
        Ok(r) => r,
        Err(_) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "the index query failed"),
    };
    if let Some(key) = caller.as_ref().and_then(|c| c.key.as_ref()) {
        app.audit
            .call(key.shared_id(), method, started.elapsed(), reply.status < 400);
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, Bytes::from(reply.body))
}

/// A refusal of kengate's own in KAS's shape: 401 carries KAS's code 1010009, the others
/// their HTTP status as the code.
fn refusal(status: StatusCode, message: &str) -> Resp {
    let code = match status {
        StatusCode::UNAUTHORIZED => 1010009,
        s => u32::from(s.as_u16()),
    };
    json(
        status,
        Bytes::from(serde_json::json!({"code": code, "message": message}).to_string()),
    )
}

/// An authentication or throttle refusal, counted like any other, in KAS's shape with its
/// `WWW-Authenticate` / `Retry-After`; 401 in KAS's own words.
fn denied(ctx: &Ctx, d: &Denied) -> Resp {
    ctx.app.audit.denied(d.reason());
    let message = match denied_status(d) {
        StatusCode::UNAUTHORIZED => {
            tracing::debug!(reason = d.detail(), "authentication failed");
            "The credential you provided does not match in our record".to_owned()
        }
        _ => d.message(),
    };
    let mut r = refusal(denied_status(d), &message);
    if let Some(v) = d.www_authenticate() {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    if let Some(secs) = d.retry_after_secs() {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}
