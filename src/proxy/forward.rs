//! Executes a [`Plan`]: builds the upstream body, picks a node per attempt, and retries —
//! on another candidate after a transport failure the retry class allows, on a higher node
//! after a `null` by-hash answer. Node replies pass through byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

use super::cache::raw_bytes;
use super::{Gateway, ProxyError};
use crate::cluster::{NodeId, UpstreamError, UpstreamErrorKind};
use crate::jsonrpc::{format_quantity, parse_quantity, result_response, Call, UpstreamReply};
use crate::methods::{Class, FilterOp, MethodSpec};
use crate::routing::{choose, higher_node, NodeSet, Plan, RetryClass, Target, WriteTx};
use crate::txpath::home::{home_node, sender_key};
use crate::txpath::lifecycle::{unhex, Transition};
use crate::txpath::senders::{Kept, Turn};

/// A node's answer: the reply as received (carrying the caller's id), and its `result` or
/// `error` JSON sliced out of it without copying.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The whole reply, passed to the caller unchanged.
    pub bytes: Bytes,
    /// The `result` JSON (`null` included).
    pub result: Option<Bytes>,
    /// The node's `error` object.
    pub error: Option<Bytes>,
}

impl Reply {
    /// The answer to share with identical calls.
    pub fn answer(&self) -> super::coalesce::Answer {
        use super::coalesce::Answer;
        match (&self.error, &self.result) {
            (Some(e), _) => Answer::Error(e.clone()),
            (None, Some(r)) => Answer::Result(r.clone()),
            (None, None) => Answer::Result(Bytes::from_static(b"null")),
        }
    }

    fn new(bytes: Bytes, parsed: &UpstreamReply<'_>) -> Self {
        Self {
            result: parsed.result.map(|r| raw_bytes(&bytes, r)),
            error: parsed.error.map(|e| raw_bytes(&bytes, e)),
            bytes,
        }
    }
}

/// Forwards one call according to `plan`.
pub async fn forward(gw: &Gateway, call: &Call<'_>, spec: &MethodSpec, plan: Plan) -> Result<Reply, ProxyError> {
    let body = upstream_body(call, spec.upstream, plan.params.as_deref());
    let filter_id = match &plan.target {
        Target::FilterOwner(id) => Some(id.clone()),
        _ => None,
    };
    let mut target = match plan.target {
        Target::FilterOwner(ref id) => match gw.filters.owner(id) {
            Some(node) => Target::Node(node),
            // Not an id kengate saw created (or long idle): any node gives the node's answer
            // to an unknown id ("filter not found", or `false` to uninstall).
            None => Target::InSync,
        },
        t => t,
    };
    if plan.retry_null {
        // A tx kengate forwarded and has not seen mined: ask the node that accepted it first.
        if let Some(node) = first_param_hash(call).and_then(|h| gw.senders.sent_via(&h)) {
            target = Target::Node(node);
        }
    }
    if let Some(w) = plan.write {
        // Recorded before it is forwarded, so a crash from here on loses no record.
        if let Err(e) = gw.lifecycle.created(&w, &body).await {
            tracing::warn!(error = %e, "could not record a transaction");
        }
    }
    // One submission per sender at a time, in nonce order; held until the node answers.
    let mut turn = match plan.write {
        Some(w) => Some(gw.senders.turn(&w.sender, w.nonce).await),
        None => None,
    };
    let mut tried = NodeSet::default();
    let (mut failures, mut nulls) = (0u32, 0u32);
    // A `null` already received: the answer if every higher node fails.
    let mut null_answer: Option<Reply> = None;
    let mut rng = fastrand::Rng::new();
    loop {
        let view = gw.cluster.view();
        let nodes = &gw.cluster.nodes;
        let picked = match &target {
            Target::SenderHome(addr) => home_node(&view, &gw.cluster.keys, sender_key(addr), tried),
            t => choose(&view, t, tried, |id| nodes[id].load_score(), &mut rng),
        };
        let Some(id) = picked else {
            let first = null_answer.is_none() && tried == NodeSet::default();
            if let (Target::Node(_), true) = (&target, first && (plan.retry_null || is_filter(spec))) {
                // The node that accepted the tx is gone: look it up like any other. The node
                // that owned the filter is gone, and the filter with it: another node answers
                // the id as unknown, as the owner would after losing it.
                if let Some(fid) = &filter_id {
                    gw.filters.remove(fid);
                }
                target = Target::InSync;
                continue;
            }
            return null_answer.ok_or(ProxyError::NoUpstream);
        };
        tried.insert(id);
        let answered_head = view.nodes[id].head;
        let outcome = nodes[id]
            .post(&gw.cluster.client, body.clone(), gw.settings.upstream_timeout)
            .await;
        let reply = match outcome {
            Ok(reply) => reply,
            Err(e) => match give_up(gw, spec, plan.retry, e, &mut failures, &mut null_answer) {
                Some(done) => return done,
                None => continue,
            },
        };
        let parsed = match UpstreamReply::parse(&reply) {
            Ok(parsed) => parsed,
            // A 200 that is not a JSON-RPC reply (empty, truncated, HTML) is a failure of that node.
            Err(bad) => {
                let e = UpstreamError {
                    node: id,
                    kind: UpstreamErrorKind::BadReply,
                    detail: bad.to_string(),
                };
                match give_up(gw, spec, plan.retry, e, &mut failures, &mut null_answer) {
                    Some(done) => return done,
                    None => continue,
                }
            }
        };
        if plan.retry_null && nulls < gw.settings.null_retries && parsed.is_null_result() {
            if let Some(higher) = higher_node(&gw.cluster.view(), answered_head, tried) {
                nulls += 1;
                gw.metrics.retry("null");
                null_answer = Some(Reply::new(reply.clone(), &parsed));
                target = Target::Node(higher);
                continue;
            }
        }
        if let Class::Filter(op) = spec.class {
            track_filter(gw, op, call, id, &parsed);
        }
        if let (Some(w), Some(t)) = (plan.write, turn.as_mut()) {
            record_write(gw, w, t, id, &body, &parsed).await;
        }
        if let Some(addr) = plan.nonce_floor {
            if let Some(raised) = raise_nonce(gw, call, &addr, &parsed) {
                return Ok(raised);
            }
        }
        return Ok(Reply::new(reply.clone(), &parsed));
    }
}

/// After a transport failure (or a reply that is not JSON-RPC): `Some(answer)` to stop —
/// the `null` already received, or the error — or `None` to try another node, as the plan's
/// retry class allows. A node that could not be connected to is marked down at once.
fn give_up(
    gw: &Gateway,
    spec: &MethodSpec,
    retry: RetryClass,
    e: UpstreamError,
    failures: &mut u32,
    null_answer: &mut Option<Reply>,
) -> Option<Result<Reply, ProxyError>> {
    gw.metrics.upstream_error(e.node, e.kind_label());
    if e.kind == UpstreamErrorKind::Connect {
        gw.cluster.tracker.observe_down(e.node);
    }
    if let Some(null) = null_answer.take() {
        return Some(Ok(null));
    }
    let retry = match retry {
        RetryClass::Read => e.retryable_read(),
        RetryClass::Write => e.retryable_write(),
        RetryClass::Never => false,
    };
    if !retry || *failures >= gw.settings.max_retries {
        return Some(Err(ProxyError::Upstream(e)));
    }
    *failures += 1;
    gw.metrics.retry("transport");
    tracing::debug!(method = spec.name, node = e.node, error = %e, "retrying on another node");
    None
}

/// After a node answered a submission: an accepted tx is kept (for read-your-writes and
/// re-sending) and recorded Submitted; a refused one is recorded Rejected with the node's error.
async fn record_write(
    gw: &Gateway,
    w: WriteTx,
    turn: &mut Turn,
    node: NodeId,
    body: &Bytes,
    reply: &UpstreamReply<'_>,
) {
    let transition = match reply.error {
        None => {
            turn.forwarded(
                w.nonce,
                Kept {
                    hash: w.hash,
                    body: body.clone(),
                    node,
                    pending_seen: false,
                },
            );
            gw.senders.remember(w.hash, node);
            Transition::Submitted {
                node: gw.cluster.nodes[node].http.to_string(),
            }
        }
        Some(e) => Transition::Rejected {
            error: e.get().to_owned(),
        },
    };
    if let Err(e) = gw.lifecycle.transition(w.hash, transition).await {
        tracing::warn!(error = %e, "could not record a transaction");
    }
}

fn is_filter(spec: &MethodSpec) -> bool {
    matches!(spec.class, Class::Filter(FilterOp::Use | FilterOp::Uninstall))
}

/// The first param as a 32-byte hash, if it is one.
pub(super) fn first_param_hash(call: &Call<'_>) -> Option<[u8; 32]> {
    let ps = crate::jsonrpc::split_params(call.params).ok()?;
    unhex(serde_json::from_str::<&str>(ps.first()?.get()).ok()?)
}

/// Read-your-writes for `getTransactionCount(sender, "pending")`: never below the next nonce
/// implied by what kengate forwarded for the sender (its home node may not have pooled it yet).
fn raise_nonce(gw: &Gateway, call: &Call<'_>, addr: &[u8; 20], reply: &UpstreamReply<'_>) -> Option<Reply> {
    let floor = gw.senders.next_nonce(addr)?;
    let answered = reply
        .result
        .and_then(|r| serde_json::from_str::<&str>(r.get()).ok())
        .and_then(parse_quantity)?;
    (answered < floor).then(|| {
        let result = format_quantity(floor);
        Reply {
            bytes: result_response(call.id, &result),
            result: Some(Bytes::from(result)),
            error: None,
        }
    })
}

fn track_filter(gw: &Gateway, op: FilterOp, call: &Call<'_>, node: NodeId, reply: &UpstreamReply<'_>) {
    match op {
        FilterOp::Create => {
            if let Some(id) = reply.result.and_then(|r| serde_json::from_str::<String>(r.get()).ok()) {
                gw.filters.insert(id, node);
            }
        }
        FilterOp::Uninstall => {
            let first = crate::jsonrpc::split_params(call.params)
                .ok()
                .and_then(|ps| ps.first().copied());
            if let Some(id) = first.and_then(|p| serde_json::from_str::<String>(p.get()).ok()) {
                gw.filters.remove(&id);
            }
        }
        FilterOp::Use => {}
    }
}

/// `{"jsonrpc":"2.0","id":<client id>,"method":<upstream name>,"params":<params>}`. The
/// client's id is sent upstream so the node's reply can be returned unchanged; a
/// notification is sent with id 0 (its reply is dropped).
fn upstream_body(call: &Call<'_>, method: &str, rewritten: Option<&str>) -> Bytes {
    let id = call.id.map_or("0", |v| v.get());
    let params = rewritten.or(call.params.map(|p| p.get())).unwrap_or("[]");
    let mut b = BytesMut::with_capacity(48 + id.len() + method.len() + params.len());
    b.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    b.put_slice(id.as_bytes());
    b.put_slice(b",\"method\":\"");
    b.put_slice(method.as_bytes());
    b.put_slice(b"\",\"params\":");
    b.put_slice(params.as_bytes());
    b.put_u8(b'}');
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn upstream_bodies() {
        let id = RawValue::from_string("\"x\"".into()).unwrap();
        let p = RawValue::from_string("[\"0x1\",\"latest\"]".into()).unwrap();
        let call = Call {
            id: Some(&id),
            method: "kaia_getBalance".into(),
            params: Some(&p),
        };
        let b = upstream_body(&call, "klay_getBalance", None);
        assert_eq!(
            &b[..],
            br#"{"jsonrpc":"2.0","id":"x","method":"klay_getBalance","params":["0x1","latest"]}"#
        );
        let b = upstream_body(&call, "klay_getBalance", Some("[\"0x1\",\"0x5\"]"));
        assert!(b.ends_with(br#""params":["0x1","0x5"]}"#));
        let call = Call {
            id: None,
            method: "m".into(),
            params: None,
        };
        assert_eq!(
            &upstream_body(&call, "m", None)[..],
            br#"{"jsonrpc":"2.0","id":0,"method":"m","params":[]}"#
        );
    }
}
