//! `/v1/{network}/webhooks...` (and `/v1/webhooks...`, the network by `x-chain-id` or the
//! only one): the webhooks API's HTTP side — the admin token (every webhook) or an access key
//! (its own; its allowed methods name the group `kengate_webhooks`), the throttle, a 64 KiB
//! body. The answers come from [`crate::webhooks::api`].

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::{admit_request, denied, json, json_error, Ctx, Resp};
use crate::webhooks::api::{self, Owner};

/// The largest request body.
const MAX_BODY: usize = 64 * 1024;

/// The REST group a key's allowed methods name.
const METHOD: &str = "kengate_webhooks";

/// Answers one request under `.../webhooks` (`rest` is what follows).
pub(super) async fn handle(
    ctx: &Ctx,
    peer: SocketAddr,
    req: Request<Incoming>,
    network: Option<&str>,
    rest: &str,
) -> Resp {
    let app = &ctx.app;
    let admin = app.access().admin_configured() && app.access().admin_authorized(req.headers());
    let (net, caller) = match admin {
        true => match app
            .networks
            .select(network, req.headers().get("x-chain-id").map(|v| v.as_bytes()))
        {
            Ok(n) => (n, None),
            Err(e) => return json_error(super::domain::network_status(&e), &e.to_string()),
        },
        false => match admit_request(ctx, peer, req.headers(), network, None, None) {
            Ok((net, caller)) => (net, Some(caller)),
            Err(resp) => return *resp,
        },
    };
    if let Some(caller) = &caller {
        if !caller.allows(METHOD, false) {
            return json_error(
                StatusCode::FORBIDDEN,
                &format!("this access key may not call {METHOD} (webhooks)"),
            );
        }
        if let Err(d) = app.access().admit(caller, app.access().weight(METHOD)) {
            return denied(app, &d, None);
        }
    }
    let Some(wh) = app.webhooks.clone() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "webhooks are off on this gateway ([webhooks] enabled = false)",
        );
    };
    let verb = req.method().clone();
    if !matches!(
        verb,
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST, PUT, PATCH or DELETE");
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = match verb {
        Method::POST | Method::PUT | Method::PATCH => match ctx.edge.read_body(req.into_body(), MAX_BODY).await {
            Ok(b) => b.bytes.clone(),
            Err(e) => return super::body_refused(e, MAX_BODY),
        },
        _ => Bytes::new(),
    };
    // With keys off everyone is the operator; with them on, a key is its webhooks' owner.
    let owner = caller.as_ref().and_then(|c| c.key.as_ref()).map(|k| k.id().to_owned());
    let (network, rest) = (net.name.clone(), rest.to_owned());
    let started = std::time::Instant::now();
    let done = tokio::task::spawn_blocking(move || {
        let req = api::Request {
            method: verb.as_str(),
            path: &rest,
            query: &query,
            body: &body,
            network: &network,
            owner: match &owner {
                Some(id) => Owner::Key(id),
                None => Owner::Admin,
            },
        };
        api::answer(&wh, &req)
    })
    .await;
    let reply = match done {
        Ok(r) => r,
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "the webhook request failed"),
    };
    if let Some(key) = caller.as_ref().and_then(|c| c.key.as_ref()) {
        app.audit
            .call(key.shared_id(), METHOD, started.elapsed(), reply.status < 400);
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, Bytes::from(reply.body))
}

/// The part of a path after `/webhooks`, if the path is the webhooks API's.
pub(super) fn rest_of(r: &str) -> Option<&str> {
    let rest = r.strip_prefix("webhooks")?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}
