//! Admin endpoints: `/health` (process alive), `/ready` (every network has an in-sync node),
//! `/status` (per network: per-node heads, lag, state, last error; the served head; the
//! cache) and `/metrics` (Prometheus, every network's series labelled `network`).

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use super::{json, Resp};
use crate::jsonrpc::set_member;
use crate::networks::Network;
use crate::App;

pub(super) fn health() -> Resp {
    json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
}

/// Ready when every network has an in-sync node.
pub(super) fn ready(app: &App, draining: bool) -> Resp {
    let mut ok = !draining;
    let mut nets = serde_json::Map::new();
    for net in app.networks.iter() {
        let view = net.gw().cluster().view();
        ok &= view.any_in_sync();
        nets.insert(
            net.name.clone(),
            json!({ "ready": view.any_in_sync(), "served_head": view.served_head }),
        );
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({ "ready": ok, "draining": draining, "networks": nets });
    if let Some(first) = app.networks.first() {
        set_member(&mut body, "served_head", json!(first.gw().cluster().view().served_head));
    }
    json(status, Bytes::from(body.to_string()))
}

/// One network's heads, nodes and index.
fn network_status(net: &Network, index: Option<&crate::index::Index>) -> serde_json::Value {
    let gw = &net.gw();
    let view = gw.cluster().view();
    let nodes: Vec<_> = gw
        .cluster()
        .nodes
        .iter()
        .zip(&view.nodes)
        .map(|(node, v)| {
            json!({
                "id": node.id,
                "name": node.name,
                "url": node.shown,
                "ws": node.shown_ws,
                "ws_subscribed": node.ws_subscribed(),
                "ws_error": node.ws_error(),
                "head": v.head,
                "lag": view.highest.saturating_sub(v.head),
                "state": v.state.as_str(),
                "in_flight": node.in_flight(),
                "latency_ms": node.latency_us() as f64 / 1000.0,
                "last_error": node.last_error(),
                "software": node.software.get().map(|d| d.as_str()),
            })
        })
        .collect();
    json!({
        "network": net.name,
        "chain_id": net.chain_id(),
        "dialect": gw.cluster().dialect().as_str(),
        "served_head": view.served_head,
        "highest_head": view.highest,
        "nodes": nodes,
        "cache": { "bytes": gw.cache_size().0, "entries": gw.cache_size().1 },
        "index": index.and_then(|i| i.status(&net.name)),
    })
}

/// The first network's status at the top level (what a single-network deployment reads),
/// and every network under `networks`.
pub(super) fn status(app: &App) -> Resp {
    let all: Vec<_> = app
        .networks
        .iter()
        .map(|n| network_status(n, app.index.as_deref()))
        .collect();
    let mut body = all.first().cloned().unwrap_or_else(|| json!({}));
    set_member(&mut body, "networks", json!(all));
    json(StatusCode::OK, Bytes::from(body.to_string()))
}

pub(super) fn metrics(app: &App) -> Resp {
    if let Some(index) = &app.index {
        index.sample();
    }
    if let Some(wh) = &app.webhooks {
        wh.sample();
    }
    for net in app.networks.iter() {
        net.gw().sample_metrics();
    }
    let text = crate::metrics::render(&app.registry);
    let mut r = json(StatusCode::OK, Bytes::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
