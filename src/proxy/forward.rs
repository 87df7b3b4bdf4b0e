//! Executes a [`Plan`]: builds the upstream body, picks a node per attempt, and retries —
//! on another candidate after a transport failure the retry class allows, on a higher node
//! after a `null` by-hash answer. Node replies pass through byte for byte.

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use super::cache::{mined_in, raw_bytes};
use super::{Gateway, ProxyError};
use crate::cluster::{describe, Fetched, NodeId, Streamed, UpstreamError, UpstreamErrorKind};
use crate::jsonrpc::{self, hex, unhex};
use crate::jsonrpc::{format_quantity, parse_quantity, result_response, Call, UpstreamReply};
use crate::methods::MethodSpec;
use crate::routing::{choose, higher_node, CachePolicy, NodeSet, Plan, RetryClass, Target, WriteTx};
use crate::txpath::home::{home_node, sender_key};
use crate::txpath::lifecycle::Transition;
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

/// A forwarded call's answer.
#[derive(Debug)]
pub enum Forwarded {
    /// The node's reply, whole (or kengate's answer in its place).
    Reply(Reply),
    /// A large successful reply, passed on as it arrives.
    Stream(Box<Streamed>),
    /// A successful reply passed on unread ([`Take::bytes_only`]): its result is not `null`,
    /// and nothing else of it was looked at.
    Unread(Bytes),
}

/// How the caller of [`forward_with`] takes a successful reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Take {
    /// A reply larger than this many bytes is passed on as it arrives.
    pub stream_after: Option<usize>,
    /// The caller only passes the reply's bytes on (nothing cached, nothing shared): one that
    /// begins as a result that is not `null` comes back [unread](Forwarded::Unread) — the
    /// forwarding path's replies cost no parse, as a streamed one never did.
    pub bytes_only: bool,
}

impl Take {
    /// The caller only passes a successful reply on: streamed past `stream_after` bytes,
    /// unread when it is a plain result.
    pub fn pass_on(stream_after: Option<usize>) -> Self {
        Self {
            stream_after,
            bytes_only: true,
        }
    }

    /// The caller reads a successful reply (to cache or share it), unless it is streamed.
    pub fn read(stream_after: Option<usize>) -> Self {
        Self {
            stream_after,
            bytes_only: false,
        }
    }
}

/// Forwards one call according to `plan`; the reply comes back whole.
pub async fn forward(gw: &Gateway, call: &Call<'_>, spec: &MethodSpec, plan: Plan) -> Result<Reply, ProxyError> {
    match forward_with(gw, call, spec, plan, Take::default()).await? {
        Forwarded::Reply(reply) => Ok(reply),
        // Not asked for either; read all the same.
        Forwarded::Unread(bytes) => {
            let parsed = UpstreamReply::parse(&bytes).map_err(|e| ProxyError::Upstream(bad_reply(0, &e)))?;
            Ok(Reply::new(bytes.clone(), &parsed))
        }
        // Not asked for; read whole all the same.
        Forwarded::Stream(s) => {
            let bytes = Streamed::collect(*s).await.map_err(ProxyError::Upstream)?;
            let parsed = UpstreamReply::parse(&bytes).map_err(|e| ProxyError::Upstream(bad_reply(0, &e)))?;
            Ok(Reply::new(bytes.clone(), &parsed))
        }
    }
}

/// Whether a plan may have its reply streamed or passed on unread: nothing kengate does after
/// the answer needs to read it (writes are recorded, pending nonces raised, receipts held until
/// their block is served) — and a large reply is never a `null` to retry (an unread one is
/// checked for that).
fn may_stream(plan: &Plan) -> bool {
    plan.write.is_none() && plan.nonce_floor.is_none() && plan.cache != CachePolicy::IfMined
}

fn bad_reply(node: NodeId, e: &dyn std::fmt::Display) -> UpstreamError {
    UpstreamError {
        node,
        kind: UpstreamErrorKind::BadReply,
        detail: e.to_string(),
    }
}

/// Forwards one call according to `plan`. With `stream_after`, a successful reply larger
/// than that many bytes to a plan that [may stream](may_stream) is passed on as it arrives
/// (once passing it on has begun, a node failing mid-reply can no longer be retried: the
/// client's connection is closed instead).
pub async fn forward_with(
    gw: &Gateway,
    call: &Call<'_>,
    spec: &MethodSpec,
    plan: Plan,
    take: Take,
) -> Result<Forwarded, ProxyError> {
    let pass_on = may_stream(&plan);
    let stream_after = take.stream_after.filter(|_| pass_on);
    let unread = take.bytes_only && pass_on;
    let started = Instant::now();
    let body = upstream_body(call, spec.upstream, plan.params.as_deref());
    let mut target = plan.target;
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
    // One submission per sender at a time, in nonce order; held until a node answers.
    let mut turn = match plan.write {
        Some(w) => Some(gw.senders.turn(&w.sender, w.nonce).await),
        None => None,
    };
    let mut tried = NodeSet::default();
    let (mut failures, mut nulls) = (0u32, 0u32);
    // A `null` already received: the answer if every higher node fails.
    let mut null_answer: Option<Reply> = None;
    // A signed tx sent to a node whose answer was lost (timeout, broken connection): it may
    // be in that node's pool, so another node's "known transaction" is this tx in hand.
    let mut maybe_delivered = false;
    // Set once the call has found no node and started waiting for the cluster to change.
    let mut changes: Option<watch::Receiver<u64>> = None;
    let mut rng = fastrand::Rng::new();
    loop {
        let view = gw.cluster.view();
        let nodes = &gw.cluster.nodes;
        let picked = match &target {
            Target::SenderHome(addr) => home_node(&view, &gw.cluster.keys, sender_key(addr), tried),
            t => choose(&view, t, tried, nodes.as_slice(), &mut rng),
        };
        let Some(id) = picked else {
            let first = null_answer.is_none() && tried == NodeSet::default();
            if let (Target::Node(_), true) = (&target, first && plan.retry_null) {
                // The node that accepted the tx is gone: look it up like any other.
                target = Target::InSync;
                continue;
            }
            if let Some(null) = null_answer {
                return Ok(Forwarded::Reply(null));
            }
            // No node can take the call right now: wait, bounded, for the cluster to change.
            match changes.as_mut() {
                None => {
                    changes = Some(gw.cluster.tracker.watch_views());
                    gw.cluster.tracker.faults.waited_calls.inc();
                    // Looked again with the subscription held: no change can slip between.
                    continue;
                }
                Some(rx) => {
                    let deadline = tokio::time::Instant::from_std(started) + gw.settings.node_wait;
                    if let Ok(Ok(())) = tokio::time::timeout_at(deadline, rx.changed()).await {
                        // A node may be back: every node is a candidate again (attempts stay
                        // bounded by max_retries and the deadline).
                        tried = NodeSet::default();
                        continue;
                    }
                }
            }
            gw.cluster.tracker.faults.no_node_errors.inc();
            let labels: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
            let view = gw.cluster.view();
            return Err(ProxyError::NoUpstream {
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                served_head: view.served_head,
                nodes: describe(&view, &labels),
            });
        };
        tried.insert(id);
        // Chosen from the view, which has a place for every node: an id without one is passed
        // over like a tried node.
        let (Some(seen), Some(node)) = (view.nodes.get(id), nodes.get(id)) else {
            continue;
        };
        let answered_head = seen.head;
        let outcome = node
            .fetch(
                &gw.cluster.client,
                body.clone(),
                gw.settings.upstream_timeout,
                stream_after,
            )
            .await;
        let outcome = match outcome {
            Ok(Fetched::Streaming(s)) if jsonrpc::result_follows(s.head()) => {
                gw.metrics.streamed();
                return Ok(Forwarded::Stream(s));
            }
            // Large, but not a plain result (an error, an odd envelope): read whole as usual.
            Ok(Fetched::Streaming(s)) => Streamed::collect(*s).await,
            Ok(Fetched::Whole(reply)) if unread && jsonrpc::unread_result(&reply) => {
                return Ok(Forwarded::Unread(reply));
            }
            Ok(Fetched::Whole(reply)) => Ok(reply),
            Err(e) => Err(e),
        };
        let reply = match outcome {
            Ok(reply) => reply,
            Err(e) => match after_failure(
                gw,
                spec,
                (plan.write, plan.retry),
                e,
                &mut failures,
                &mut null_answer,
                &mut maybe_delivered,
            )
            .await
            {
                Some(done) => return done.map(Forwarded::Reply),
                None => continue,
            },
        };
        let parsed = match UpstreamReply::parse(&reply) {
            Ok(parsed) => parsed,
            // A 200 that is not a JSON-RPC reply (empty, truncated, HTML) is a failure of that node.
            Err(bad) => {
                let e = bad_reply(id, &bad);
                match after_failure(
                    gw,
                    spec,
                    (plan.write, plan.retry),
                    e,
                    &mut failures,
                    &mut null_answer,
                    &mut maybe_delivered,
                )
                .await
                {
                    Some(done) => return done.map(Forwarded::Reply),
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
        if let (Some(w), Some(t)) = (plan.write, turn.as_mut()) {
            if maybe_delivered && parsed.error.is_some() && in_hand(gw, id, &w, &parsed).await {
                // Re-sent after its answer was lost, and this node already has it: the client
                // gets the hash, as from the first node.
                let result = format!("\"{}\"", hex(&w.hash));
                record_write(gw, w, t, id, &body, None).await;
                return Ok(Forwarded::Reply(Reply {
                    bytes: result_response(call.id, &result),
                    result: Some(Bytes::from(result)),
                    error: None,
                }));
            }
            record_write(gw, w, t, id, &body, parsed.error).await;
        }
        if let Some(addr) = plan.nonce_floor {
            if let Some(raised) = raise_nonce(gw, call, &addr, &parsed) {
                return Ok(Forwarded::Reply(raised));
            }
        }
        if plan.cache == CachePolicy::IfMined {
            let mined = parsed.result.and_then(|r| mined_in(r.get().as_bytes()));
            if let Some(n) = mined.filter(|&n| n > gw.cluster.view().served_head) {
                // Mined in a block kengate has not announced yet: a client told of it could not
                // read that block back. Answered once the served head has it; "not yet" (null)
                // if it does not get there within the bound.
                if !served_reaches(gw, n, started).await {
                    let null = Bytes::from_static(b"null");
                    return Ok(Forwarded::Reply(Reply {
                        bytes: result_response(call.id, "null"),
                        result: Some(null),
                        error: None,
                    }));
                }
            }
        }
        return Ok(Forwarded::Reply(Reply::new(reply.clone(), &parsed)));
    }
}

/// Waits until the served head reaches `n`, up to `cluster.node_wait_ms` from the call's
/// start; whether it did.
async fn served_reaches(gw: &Gateway, n: u64, started: Instant) -> bool {
    let mut served = gw.cluster.tracker.subscribe_served();
    let deadline = tokio::time::Instant::from_std(started) + gw.settings.node_wait;
    loop {
        if *served.borrow_and_update() >= n {
            return true;
        }
        match tokio::time::timeout_at(deadline, served.changed()).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
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
    if e.client_caused() {
        tracing::debug!(method = spec.name, node = e.node, error = %e, "the node refused the request");
        return Some(null_answer.take().map_or_else(|| Err(ProxyError::NodeRefused(e)), Ok));
    }
    gw.metrics.upstream_error(e.node, e.kind_label());
    if e.kind == UpstreamErrorKind::Connect {
        gw.cluster.tracker.observe_down(e.node, &e.detail);
    }
    if let Some(null) = null_answer.take() {
        return Some(Ok(null));
    }
    let retry = match retry {
        RetryClass::Read => e.retryable_read(),
        RetryClass::Write => e.retryable_write(),
    };
    if !retry || *failures >= gw.settings.max_retries {
        return Some(Err(ProxyError::Upstream(e)));
    }
    *failures += 1;
    gw.metrics.retry("transport");
    tracing::debug!(method = spec.name, node = e.node, error = %e, "retrying on another node");
    None
}

/// After a transport failure (or a reply that is not JSON-RPC): a signed transaction is
/// re-sent, anything else retried as its class allows.
async fn after_failure(
    gw: &Gateway,
    spec: &MethodSpec,
    (write, retry): (Option<WriteTx>, RetryClass),
    e: UpstreamError,
    failures: &mut u32,
    null_answer: &mut Option<Reply>,
    maybe_delivered: &mut bool,
) -> Option<Result<Reply, ProxyError>> {
    match write {
        Some(w) => resend_after(gw, w, e, failures, maybe_delivered).await,
        None => give_up(gw, spec, retry, e, failures, null_answer),
    }
}

/// A signed transaction's attempt failed. A connect failure never reached the node; after a
/// timeout, a broken connection, a 5xx or a garbled reply it may have: either way the same
/// raw bytes (one hash, one nonce) go to the sender's next node, and [`in_hand`] reads that
/// node's "known transaction" as success. `Some(error)` ends the call: a refusal of the
/// request itself (4xx), or every attempt spent.
async fn resend_after(
    gw: &Gateway,
    w: WriteTx,
    e: UpstreamError,
    failures: &mut u32,
    maybe_delivered: &mut bool,
) -> Option<Result<Reply, ProxyError>> {
    if e.client_caused() {
        // The node refused the request itself: the client's answer (nothing was submitted).
        return Some(Err(ProxyError::NodeRefused(e)));
    }
    gw.metrics.upstream_error(e.node, e.kind_label());
    if e.kind == UpstreamErrorKind::Connect {
        gw.cluster.tracker.observe_down(e.node, &e.detail);
    } else {
        *maybe_delivered = true;
    }
    let node = gw.cluster.nodes.get(e.node).map(|n| n.name.clone()).unwrap_or_default();
    let attempt = Transition::Attempt {
        node,
        outcome: e.kind_label().to_owned(),
    };
    if let Err(err) = gw.lifecycle.transition(w.hash, attempt).await {
        tracing::warn!(error = %err, "could not record a transaction attempt");
    }
    let budget = u32::try_from(gw.cluster.nodes.len())
        .unwrap_or(u32::MAX)
        .saturating_add(gw.settings.max_retries);
    if *failures >= budget {
        return Some(Err(ProxyError::Upstream(e)));
    }
    *failures += 1;
    gw.metrics.retry("write_resend");
    tracing::info!(node = e.node, error = %e, hash = %hex(&w.hash), "re-sending a transaction to the sender's next node");
    None
}

/// Whether a node's refusal of a re-sent tx means it already has this very tx: "known
/// transaction" (same hash in its pool), or "nonce too low" with the tx's own hash found
/// there (mined, so the nonce is taken by this tx).
async fn in_hand(gw: &Gateway, node: NodeId, w: &WriteTx, reply: &UpstreamReply<'_>) -> bool {
    let Some(msg) = reply
        .error
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e.get()).ok())
        .and_then(|v| v.get("message")?.as_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    if msg.contains("known transaction") || msg.contains("already known") {
        return true;
    }
    if !msg.contains("nonce too low") {
        return false;
    }
    let lookup = jsonrpc::request("1", "klay_getTransactionByHash", &format!("[\"{}\"]", hex(&w.hash)));
    let Some(n) = gw.cluster.nodes.get(node) else {
        return false;
    };
    match n.post(&gw.cluster.client, lookup, gw.settings.upstream_timeout).await {
        Ok(b) => UpstreamReply::parse(&b).is_ok_and(|r| r.error.is_none() && !r.is_null_result() && r.result.is_some()),
        Err(_) => false,
    }
}

/// After a node answered a submission: an accepted tx is kept (for read-your-writes and
/// re-sending) and recorded Submitted; a refused one is recorded Rejected with the node's error.
async fn record_write(
    gw: &Gateway,
    w: WriteTx,
    turn: &mut Turn,
    node: NodeId,
    body: &Bytes,
    error: Option<&serde_json::value::RawValue>,
) {
    let transition = match error {
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
                // The node that just answered: always in the list.
                node: gw.cluster.nodes.get(node).map(|n| n.name.clone()).unwrap_or_default(),
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

/// The first param as a 32-byte hash, if it is one.
pub(super) fn first_param_hash(call: &Call<'_>) -> Option<[u8; 32]> {
    let ps = crate::jsonrpc::split_params(call.params).ok()?;
    unhex(crate::jsonrpc::json_str(ps.first()?)?)
}

/// Read-your-writes for `getTransactionCount(sender, "pending")`: never below the next nonce
/// implied by what kengate forwarded for the sender (its home node may not have pooled it yet).
fn raise_nonce(gw: &Gateway, call: &Call<'_>, addr: &[u8; 20], reply: &UpstreamReply<'_>) -> Option<Reply> {
    let floor = gw.senders.next_nonce(addr)?;
    let answered = reply
        .result
        .and_then(|r| crate::jsonrpc::json_str(r.get()))
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

/// `{"jsonrpc":"2.0","id":<client id>,"method":<upstream name>,"params":<params>}`. The
/// client's id is sent upstream so the node's reply can be returned unchanged; a
/// notification is sent with id 0 (its reply is dropped).
fn upstream_body(call: &Call<'_>, method: &str, rewritten: Option<&str>) -> Bytes {
    let id = call.id.map_or("0", |v| v.get());
    let params = rewritten.or(call.params.map(|p| p.get())).unwrap_or("[]");
    jsonrpc::request(id, method, params)
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
            id: Some((&*id).into()),
            method: "kaia_getBalance".into(),
            params: Some((&*p).into()),
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
