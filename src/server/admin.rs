//! Admin endpoints: `/health` (process alive), `/ready` (a node is in sync), `/status`
//! (per-node heads, lag, state, last error; the served head) and `/metrics` (Prometheus).

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use super::{json, Resp};
use crate::proxy::Gateway;

pub(super) fn health() -> Resp {
    json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
}

pub(super) fn ready(gw: &Gateway) -> Resp {
    let view = gw.cluster.view();
    let ok = view.any_in_sync();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": ok, "served_head": view.served_head });
    json(status, Bytes::from(body.to_string()))
}

pub(super) fn status(gw: &Gateway) -> Resp {
    let view = gw.cluster.view();
    let nodes: Vec<_> = gw
        .cluster
        .nodes
        .iter()
        .zip(&view.nodes)
        .map(|(node, v)| {
            json!({
                "id": node.id,
                "url": node.http.to_string(),
                "ws": node.ws,
                "ws_subscribed": node.ws_subscribed(),
                "head": v.head,
                "lag": view.highest.saturating_sub(v.head),
                "state": v.state.as_str(),
                "in_flight": node.in_flight(),
                "latency_ms": node.latency_us() as f64 / 1000.0,
                "last_error": node.last_error(),
            })
        })
        .collect();
    let body = json!({
        "served_head": view.served_head,
        "highest_head": view.highest,
        "nodes": nodes,
    });
    json(StatusCode::OK, Bytes::from(body.to_string()))
}

pub(super) fn metrics(gw: &Gateway) -> Resp {
    gw.metrics
        .sample_cache(gw.cache.weighted_size(), gw.cache.entry_count());
    let text = gw.metrics.render(&gw.cluster.view());
    let mut r = json(StatusCode::OK, Bytes::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
