//! The per-call pipeline, transport-agnostic: parse → classify → authorize → plan →
//! forward (with retries) → response bytes. HTTP and WebSocket both call
//! [`Gateway::handle_body`].
//!
//! ```text
//! body ─ parse_body ─┬─ call ─ methods.lookup ─ routing::plan ─┬─ Answer ───────────────┐
//!                    ├─ call ─ ...                             └─ Forward ─ forward() ──┤
//!                    └─ (batch: all calls concurrently)              │ choose node       ├─ bytes
//!                                                                    │ post, retry on    │
//!                                                                    │ failure / null    │
//! ```

pub mod cache;
pub mod coalesce;
mod error;
mod forward;
mod multi;

pub use cache::FinalCache;
pub use coalesce::Coalescer;
pub use error::ProxyError;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::join_all;

use crate::access::{Access, Caller};
use crate::cluster::{Cluster, Streamed};
use crate::config::Config;
use crate::events::{Hub, Session};
use crate::jsonrpc::{self, batch_response, error_response, member_response, result_response, Call, Incoming, Part};
use crate::jsonrpc::{clip, UpstreamReply};
use crate::methods::{Class, Lookup, MethodSpec, MethodTable};
use crate::metrics::{Audit, Metrics};
use crate::routing::{self, choose, CachePolicy, Decision, NodeSet, Plan, Target};
use crate::txpath::lifecycle::Lifecycle;
use crate::txpath::senders::Senders;
use cache::{read_key, ReadKey};
use coalesce::{Answer, Role};
use forward::{Forwarded, Take};

/// Settings the pipeline reads on every call.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timeout of one upstream attempt.
    pub upstream_timeout: Duration,
    /// Extra attempts after transport failures of reads.
    pub max_retries: u32,
    /// Extra attempts after `null` by-hash answers.
    pub null_retries: u32,
    /// Most calls per batch.
    pub max_batch: usize,
    /// Identical in-flight reads share one upstream request.
    pub coalesce: bool,
    /// How long a call waits for a node that can take it.
    pub node_wait: Duration,
    /// Replies over this many bytes are passed on to HTTP clients as they arrive (`None`:
    /// always read whole).
    pub stream_after: Option<usize>,
}

impl Settings {
    /// From the validated config.
    pub fn from_config(c: &Config) -> Self {
        Self {
            upstream_timeout: Duration::from_millis(c.cluster.upstream_timeout_ms),
            max_retries: c.cluster.max_retries,
            null_retries: c.cluster.null_retries,
            max_batch: c.limits.max_batch,
            coalesce: c.cache.coalesce,
            node_wait: Duration::from_millis(c.cluster.node_wait_ms),
            stream_after: (c.limits.stream_over_bytes > 0).then_some(c.limits.stream_over_bytes),
        }
    }
}

/// Who is calling, the access rules their calls are admitted by, and where their event
/// methods (subscriptions, polling filters) go.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// Weights, buckets.
    pub access: &'a Access,
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// The network's event hub.
    pub events: &'a Arc<Hub>,
    /// The WebSocket connection's subscriptions (`None` over HTTP).
    pub session: Option<&'a Session>,
}

impl Who<'_> {
    /// Takes `weight` tokens, or the 429 to answer with (`reply` builds its JSON-RPC body).
    fn admit(&self, weight: u32, reply: impl FnOnce() -> Bytes) -> Result<(), Throttled> {
        self.access.admit(self.caller, weight).map_err(|denied| Throttled {
            retry_after_secs: denied.retry_after_secs().unwrap_or(1),
            reason: denied.reason(),
            reply: reply(),
        })
    }
}

/// A request refused by a rate limit: HTTP answers 429 with `Retry-After` and `reply`; a
/// WebSocket sends `reply` (the JSON-RPC error -32005 for each call).
#[derive(Debug, Clone)]
pub struct Throttled {
    /// Seconds until a retry can be admitted.
    pub retry_after_secs: u64,
    /// Which bucket (metric label).
    pub reason: &'static str,
    /// The JSON-RPC error response(s).
    pub reply: Bytes,
}

/// A reply asked for whole (never streamed, so this only takes the bytes).
async fn whole(reply: Delivered) -> Bytes {
    reply
        .into_bytes()
        .await
        .unwrap_or_else(|e| error_response(None, &e.to_rpc()))
}

/// -32005 for each call of a throttled request, with its id.
fn throttled_reply(calls: &[Result<Call<'_>, jsonrpc::RpcError>], batch: bool) -> Bytes {
    let err = jsonrpc::RpcError::new(
        jsonrpc::codes::LIMIT_EXCEEDED,
        "rate limit exceeded; retry later (see Retry-After)",
    );
    let parts: Vec<Bytes> = calls
        .iter()
        .map(|c| error_response(c.as_ref().ok().and_then(|c| c.id), &err))
        .collect();
    match (batch, parts.first()) {
        (false, Some(one)) => one.clone(),
        _ => batch_response(&parts),
    }
}

/// One network's pipeline: the cluster, the method table, per-sender write state, the tx
/// records, the cache and coalescer, metrics and settings. Built by [`Gateway::new`] at start
/// and on a reload; the rest of kengate reads it through a few methods, never its parts.
#[derive(Debug)]
pub struct Gateway {
    /// Nodes and the published view.
    cluster: Arc<Cluster>,
    /// Method classes and policy.
    methods: MethodTable,
    /// Per-sender write ordering and read-your-writes state.
    senders: Arc<Senders>,
    /// Transaction lifecycle records.
    lifecycle: Lifecycle,
    /// Final answers (blocks, receipts, mined txs, logs at or below the served head).
    cache: FinalCache,
    /// Identical reads in flight.
    coalescer: Coalescer,
    /// Prometheus metrics of this network.
    metrics: Arc<Metrics>,
    /// Per-credential request audit (shared by all networks).
    audit: Arc<Audit>,
    /// Per-call settings.
    settings: Settings,
}

/// The gateway a new one replaces (a reload), and whether the node list kept its ids.
#[derive(Debug, Clone, Copy)]
pub struct Replacing<'a> {
    /// The gateway in place.
    pub old: &'a Gateway,
    /// Same nodes at the same positions: the per-sender write state carries over.
    pub same_nodes: bool,
}

impl Gateway {
    /// A network's pipeline over `cluster`. Replacing `old`: its per-sender write state is
    /// kept when the node ids are the same, and its cache when `cache.max_bytes` is.
    pub fn new(
        config: &Config,
        cluster: Arc<Cluster>,
        lifecycle: Lifecycle,
        (metrics, audit): (Arc<Metrics>, Arc<Audit>),
        old: Option<Replacing<'_>>,
    ) -> Self {
        let senders = match old {
            Some(r) if r.same_nodes => r.old.senders.clone(),
            _ => Arc::new(Senders::new(Duration::from_millis(config.writes.gap_wait_ms))),
        };
        let cache = match old {
            Some(r) if r.old.cache.max_bytes() == config.cache.max_bytes => r.old.cache.clone(),
            _ => FinalCache::new(config.cache.max_bytes),
        };
        Self {
            cluster,
            methods: MethodTable::new(&config.methods.allow, &config.methods.deny),
            senders,
            lifecycle,
            cache,
            coalescer: Coalescer::default(),
            metrics,
            audit,
            settings: Settings::from_config(config),
        }
    }

    /// Its nodes, their view and the client to them.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The transaction records (the `/tx` REST API reads them).
    pub fn tx_records(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Its metrics (a replacing gateway renames them for its node list).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The final-data cache's size: (bytes, entries).
    pub fn cache_size(&self) -> (u64, u64) {
        (self.cache.weighted_size(), self.cache.entry_count())
    }

    /// Brings the sampled gauges (node heads and states, cache size) up to date for a scrape.
    pub fn sample_metrics(&self) {
        self.metrics.sample(&self.cluster.view());
        let (bytes, entries) = self.cache_size();
        self.metrics.sample_cache(bytes, entries);
    }
}

impl crate::txpath::upkeep::WritePath for Gateway {
    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn senders(&self) -> &Senders {
        &self.senders
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn upstream_timeout(&self) -> Duration {
        self.settings.upstream_timeout
    }

    fn resubmitted(&self) {
        self.metrics.retry("resubmit");
    }
}

/// A reply to send back.
#[derive(Debug)]
pub enum Delivered {
    /// The whole reply.
    Whole(Bytes),
    /// A node's large reply, passed on as it arrives (HTTP only).
    Streamed(Box<Streamed>),
}

impl Delivered {
    /// The reply as bytes, read to its end if it was being streamed.
    pub async fn into_bytes(self) -> Result<Bytes, ProxyError> {
        match self {
            Self::Whole(b) => Ok(b),
            Self::Streamed(s) => Streamed::collect(*s).await.map_err(ProxyError::Upstream),
        }
    }
}

impl From<Forwarded> for Delivered {
    fn from(f: Forwarded) -> Self {
        match f {
            Forwarded::Reply(r) => Self::Whole(r.bytes),
            Forwarded::Unread(b) => Self::Whole(b),
            Forwarded::Stream(s) => Self::Streamed(s),
        }
    }
}

impl Gateway {
    /// Handles one request body (single call or batch) for `who`, replies whole. `Ok(None)`:
    /// nothing to send back (only notifications). `Err`: over a rate limit; nothing was
    /// forwarded.
    pub async fn handle_body(&self, body: &[u8], who: &Who<'_>) -> Result<Option<Bytes>, Throttled> {
        Ok(match self.serve(body, who, None).await? {
            Some(reply) => Some(whole(reply).await),
            None => None,
        })
    }

    /// [`Self::handle_body`] for a client that takes its reply as it arrives: a single
    /// call's large reply (over `limits.stream_over_bytes`) that kengate does not need to read
    /// is passed on while the node sends it, not held whole. Batches are always whole.
    pub async fn handle_streaming(&self, body: &[u8], who: &Who<'_>) -> Result<Option<Delivered>, Throttled> {
        self.serve(body, who, self.settings.stream_after).await
    }

    async fn serve(
        &self,
        body: &[u8],
        who: &Who<'_>,
        stream_after: Option<usize>,
    ) -> Result<Option<Delivered>, Throttled> {
        match jsonrpc::parse_body(body, self.settings.max_batch) {
            Err(e) => {
                self.metrics.call("invalid", Duration::ZERO, false);
                who.admit(1, || error_response(None, &e.to_rpc()))?;
                Ok(Some(Delivered::Whole(error_response(None, &e.to_rpc()))))
            }
            Ok(Incoming::Single(call)) => {
                let weight = call.as_ref().map_or(1, |c| who.access.weight(&c.method));
                who.admit(weight, || throttled_reply(std::slice::from_ref(&call), false))?;
                Ok(self.handle_parsed(call, who, stream_after).await)
            }
            Ok(Incoming::Batch(calls)) => {
                // A batch counts each of its calls.
                let weight = calls
                    .iter()
                    .map(|c| c.as_ref().map_or(1, |c| who.access.weight(&c.method)))
                    .fold(0u32, u32::saturating_add);
                who.admit(weight, || throttled_reply(&calls, true))?;
                // Reads that can share one node go upstream as one batch; the rest (and any
                // answer that needs a retry) take the single-call path, concurrently.
                let early = self.batch_reads(&calls, who).await;
                // Each call's reply in the client's order, with the id it answers (`None`: a
                // notification); only the calls the upstream batch left get a future of their own.
                let mut slots: Vec<Option<(Option<jsonrpc::RawJson<'_>>, Part)>> = Vec::with_capacity(calls.len());
                let mut rest = Vec::new();
                for (c, early) in calls.into_iter().zip(early) {
                    match (early, &c) {
                        (Some(part), Ok(call)) => slots.push(call.id.map(|id| (Some(id), part))),
                        _ => {
                            rest.push((slots.len(), c));
                            slots.push(None);
                        }
                    }
                }
                if !rest.is_empty() {
                    let done = join_all(rest.into_iter().map(|(at, c)| async move {
                        let reply = match self.handle_parsed(c, who, None).await {
                            Some(reply) => Some(whole(reply).await),
                            None => None,
                        };
                        (at, reply)
                    }))
                    .await;
                    for (at, reply) in done {
                        if let Some(slot) = slots.get_mut(at) {
                            *slot = reply.map(|r| (None, Part::Whole(r)));
                        }
                    }
                }
                let parts: Vec<_> = slots.into_iter().flatten().collect();
                Ok((!parts.is_empty()).then(|| Delivered::Whole(jsonrpc::batch_of(&parts))))
            }
        }
    }

    async fn handle_parsed(
        &self,
        call: Result<Call<'_>, jsonrpc::RpcError>,
        who: &Who<'_>,
        stream_after: Option<usize>,
    ) -> Option<Delivered> {
        match call {
            Err(e) => {
                self.metrics.call("invalid", Duration::ZERO, false);
                Some(Delivered::Whole(error_response(None, &e)))
            }
            Ok(call) => {
                let notification = call.id.is_none();
                // A notification's reply is dropped: nothing to stream.
                let stream_after = stream_after.filter(|_| !notification);
                let reply = self.handle_call(&call, who, stream_after).await;
                (!notification).then_some(reply)
            }
        }
    }

    /// One call, start to finish. Always produces a response object.
    async fn handle_call(&self, call: &Call<'_>, who: &Who<'_>, stream_after: Option<usize>) -> Delivered {
        let started = Instant::now();
        let (label, result) = match self.methods.lookup(&call.method, self.cluster.dialect()) {
            Lookup::Allowed(spec) if !who.caller.allows(&call.method, matches!(spec.class, Class::Write(_))) => {
                (spec.name, Err(ProxyError::NotPermitted(spec.name.to_string())))
            }
            Lookup::Allowed(spec) if multi::is_multi_send(&spec) => (
                spec.name,
                multi::send_each(self, call, &spec, who).await.map(Delivered::Whole),
            ),
            Lookup::Allowed(spec) => (spec.name, self.route(call, &spec, who, stream_after).await),
            Lookup::Denied(why) => ("denied", Err(ProxyError::MethodDenied(clip(&call.method), why))),
            Lookup::Unknown => ("unknown", Err(ProxyError::MethodNotFound(clip(&call.method)))),
        };
        self.record(who, label, started.elapsed(), result.is_ok());
        result.unwrap_or_else(|e| Delivered::Whole(error_response(call.id, &e.to_rpc())))
    }

    /// Counts one answered call: per method, and per access key when there is one.
    fn record(&self, who: &Who<'_>, method: &'static str, took: Duration, ok: bool) {
        self.metrics.call(method, took, ok);
        if let Some(key) = &who.caller.key {
            self.audit.call(key.shared_id(), method, took, ok);
        }
    }

    async fn route(
        &self,
        call: &Call<'_>,
        spec: &MethodSpec,
        who: &Who<'_>,
        stream_after: Option<usize>,
    ) -> Result<Delivered, ProxyError> {
        let view = self.cluster.view();
        let answered = match routing::plan(spec, call.params, &view)? {
            Decision::Answer(result) => result_response(call.id, &result),
            Decision::Event(op) => {
                let owner = who.caller.key.as_ref().map(|k| k.id());
                match who.events.call(op, spec.name, call.params, owner, who.session).await {
                    Ok(result) => result_response(call.id, &result),
                    Err(e) => error_response(call.id, &e),
                }
            }
            Decision::TxStatus(hash) => {
                let rec = self
                    .lifecycle
                    .get(hash)
                    .await
                    .map_err(|e| ProxyError::Store(e.to_string()))?;
                let json = serde_json::to_string(&rec).map_err(|e| ProxyError::Store(e.to_string()))?;
                result_response(call.id, &json)
            }
            Decision::Forward(plan) if plan.shared => return self.shared_read(call, spec, plan, stream_after).await,
            Decision::Forward(plan) => {
                return forward::forward_with(self, call, spec, plan, Take::pass_on(stream_after))
                    .await
                    .map(Delivered::from)
            }
        };
        Ok(Delivered::Whole(answered))
    }

    /// [`Self::route`] with the reply read whole.
    async fn route_whole(&self, call: &Call<'_>, spec: &MethodSpec, who: &Who<'_>) -> Result<Bytes, ProxyError> {
        self.route(call, spec, who, None).await?.into_bytes().await
    }

    /// The reads of a batch that any one node can answer (shared reads of in-sync data or of a
    /// block every candidate has), answered from the cache or sent to one node as one upstream
    /// batch, as a plain load balancer would, instead of one request per call. Returns each call's reply,
    /// or `None` for the calls left to the single-call path: everything else, `null` answers
    /// that a higher node may still have, and every call if the upstream batch fails.
    async fn batch_reads(&self, calls: &[Result<Call<'_>, jsonrpc::RpcError>], who: &Who<'_>) -> Vec<Option<Part>> {
        let mut out = vec![None; calls.len()];
        if calls.len() < 2 {
            return out;
        }
        let view = self.cluster.view();
        let started = Instant::now();
        let mut items = Vec::new();
        let mut need = view.served_head;
        for (idx, c) in calls.iter().enumerate() {
            let Ok(call) = c else { continue };
            let Lookup::Allowed(spec) = self.methods.lookup(&call.method, self.cluster.dialect()) else {
                continue;
            };
            if !who.caller.allows(&call.method, matches!(spec.class, Class::Write(_))) {
                continue;
            }
            let Ok(Decision::Forward(mut plan)) = routing::plan(&spec, call.params, &view) else {
                continue;
            };
            let at = match plan.target {
                Target::InSync => view.served_head,
                Target::AtLeast(n) => n,
                _ => continue,
            };
            // A tx kengate forwarded is looked up first on the node that accepted it (single path).
            let sent_here = || forward::first_param_hash(call).and_then(|h| self.senders.sent_via(&h));
            if !plan.shared || (plan.retry_null && sent_here().is_some()) {
                continue;
            }
            let params: std::borrow::Cow<'_, str> = match plan.params.take() {
                Some(rewritten) => rewritten.into(),
                None => call.params.map_or("[]", |p| p.get()).into(),
            };
            // The key is built only where something looks it up: the cache or a flight.
            let cacheable = plan.cache != CachePolicy::No && self.cache.enabled();
            let key = (cacheable || self.settings.coalesce).then(|| read_key(spec.shared, &params));
            if let (true, Some(key)) = (cacheable, &key) {
                if let Some(hit) = self.cache.get(key) {
                    self.metrics.cache("hit");
                    if let Some(slot) = out.get_mut(idx) {
                        *slot = Some(Part::Member("result", hit));
                    }
                    self.record(who, spec.name, started.elapsed(), true);
                    continue;
                }
            }
            // Identical reads in flight elsewhere: this call waits for them (single path); this
            // batch's own reads lead their flights, so later identical calls share its answer.
            let leader = match (self.settings.coalesce, &key) {
                (true, Some(key)) => match self.coalescer.join(key.clone()) {
                    Role::Leader(l) => Some(l),
                    Role::Waiter(_) => continue,
                },
                _ => None,
            };
            need = need.max(at);
            items.push((idx, spec, plan, params, key, leader));
        }
        if items.len() < 2 {
            return out;
        }
        let mut rng = fastrand::Rng::new();
        let nodes = &self.cluster.nodes;
        let target = Target::AtLeast(need);
        let Some(node) =
            choose(&view, &target, NodeSet::default(), nodes.as_slice(), &mut rng).and_then(|id| nodes.get(id))
        else {
            return out;
        };
        let mut body = BytesMut::with_capacity(items.iter().map(|i| i.3.len() + 64).sum::<usize>() + 2);
        body.put_u8(b'[');
        let mut id = itoa::Buffer::new();
        for (k, (_, spec, _, params, _, _)) in items.iter().enumerate() {
            if k > 0 {
                body.put_u8(b',');
            }
            jsonrpc::put_request(&mut body, id.format(k), spec.upstream, params);
        }
        body.put_u8(b']');
        let reply = match node
            .post(&self.cluster.client, body.freeze(), self.settings.upstream_timeout)
            .await
        {
            Ok(r) => r,
            Err(e) if e.client_caused() => return out,
            Err(e) => {
                self.metrics.upstream_error(e.node, e.kind_label());
                if e.kind == crate::cluster::UpstreamErrorKind::Connect {
                    self.cluster.tracker.observe_down(e.node, &e.detail);
                }
                return out;
            }
        };
        // Each element's member and its JSON. Passed on unread when nothing keeps or shares
        // the answers and every element is a plain result (as a single reply is); else read.
        let unread = items.iter().all(|(.., key, leader)| key.is_none() && leader.is_none());
        let elements: Vec<(usize, &str, &[u8])> = match unread.then(|| jsonrpc::unread_batch(&reply)).flatten() {
            Some(results) => results.into_iter().map(|(id, r)| (id, "result", r)).collect(),
            None => {
                let Ok(elements) = UpstreamReply::parse_batch(&reply) else {
                    return out;
                };
                elements
                    .into_iter()
                    .filter(|(id, parsed)| {
                        let retried = items.get(*id).is_some_and(|(_, _, plan, ..)| plan.retry_null);
                        !(retried && parsed.is_null_result())
                    })
                    .filter_map(|(id, parsed)| match (parsed.error, parsed.result) {
                        (Some(e), _) => Some((id, "error", e.get().as_bytes())),
                        (None, Some(r)) => Some((id, "result", r.get().as_bytes())),
                        (None, None) => None,
                    })
                    .collect()
            }
        };
        let mut answered = 0;
        // One clock read for the whole upstream batch: its calls were answered together.
        let took = started.elapsed();
        for (id, member, json) in elements {
            let Some((idx, spec, plan, _, key, leader)) = items.get_mut(id) else {
                continue;
            };
            // Mined above the served head: the single-call path holds it until announced.
            let above = || cache::mined_in(json).is_some_and(|n| n > view.served_head);
            if plan.cache == CachePolicy::IfMined && member == "result" && above() {
                continue;
            }
            let json = cache::sub_bytes(&reply, json);
            if let (true, Some(key)) = (member == "result" && plan.cache != CachePolicy::No, key) {
                self.cache
                    .offer(key.clone(), json.clone(), plan.cache, self.cluster.view().served_head);
            }
            if let Some(l) = leader.take() {
                l.finish(Ok(match member {
                    "error" => Answer::Error(json.clone()),
                    _ => Answer::Result(json.clone()),
                }));
            }
            if let Some(slot) = out.get_mut(*idx) {
                *slot = Some(Part::Member(member, json));
            }
            self.record(who, spec.name, took, true);
            answered += 1;
        }
        self.metrics.batched(answered);
        out
    }

    /// A read whose answer does not depend on who asks: from the cache when final, else
    /// forwarded once for every identical call in flight, and kept when final. A streamed
    /// reply is neither kept nor shared (the identical calls waiting on it ask on their own):
    /// holding it whole is what streaming avoids.
    async fn shared_read(
        &self,
        call: &Call<'_>,
        spec: &MethodSpec,
        plan: Plan,
        stream_after: Option<usize>,
    ) -> Result<Delivered, ProxyError> {
        let policy = plan.cache;
        let cacheable = policy != CachePolicy::No && self.cache.enabled();
        if !cacheable && !self.settings.coalesce {
            // Nothing to look up or share: no key to build.
            return forward::forward_with(self, call, spec, plan, Take::pass_on(stream_after))
                .await
                .map(Delivered::from);
        }
        let params = plan.params.as_deref().or(call.params.map(|p| p.get())).unwrap_or("[]");
        let key = read_key(spec.shared, params);
        if cacheable {
            if let Some(hit) = self.cache.get(&key) {
                self.metrics.cache("hit");
                return Ok(Delivered::Whole(member_response(call.id, "result", &hit)));
            }
            self.metrics.cache("miss");
        }
        if !self.settings.coalesce {
            return Ok(
                match forward::forward_with(self, call, spec, plan, Take::read(stream_after)).await? {
                    Forwarded::Reply(reply) => {
                        self.keep(key, policy, &reply);
                        Delivered::Whole(reply.bytes)
                    }
                    Forwarded::Stream(s) => Delivered::Streamed(s),
                    Forwarded::Unread(b) => Delivered::Whole(b),
                },
            );
        }
        match self.coalescer.join(key.clone()) {
            Role::Leader(leader) => {
                match forward::forward_with(self, call, spec, plan, Take::read(stream_after)).await {
                    Ok(Forwarded::Reply(reply)) => {
                        // Kept before the flight ends, so a caller arriving next finds it cached.
                        self.keep(key, policy, &reply);
                        leader.finish(Ok(reply.answer()));
                        Ok(Delivered::Whole(reply.bytes))
                    }
                    Ok(Forwarded::Stream(s)) => {
                        // Not held, so not shared: ending the flight sends its waiters upstream.
                        drop(leader);
                        Ok(Delivered::Streamed(s))
                    }
                    // Not asked for (`read`); passed on, not shared, all the same.
                    Ok(Forwarded::Unread(b)) => {
                        drop(leader);
                        Ok(Delivered::Whole(b))
                    }
                    Err(e) => {
                        leader.finish(Err(e.to_rpc()));
                        Err(e)
                    }
                }
            }
            Role::Waiter(waiter) => match waiter.wait().await {
                Some(shared) => {
                    self.metrics.coalesced();
                    match shared {
                        Ok(Answer::Result(r)) => Ok(Delivered::Whole(member_response(call.id, "result", &r))),
                        Ok(Answer::Error(e)) => Ok(Delivered::Whole(member_response(call.id, "error", &e))),
                        Err(e) => Err(ProxyError::Shared(e)),
                    }
                }
                // The leader's client went away mid-flight, or its reply was streamed: ask on
                // our own.
                None => forward::forward_with(self, call, spec, plan, Take::pass_on(stream_after))
                    .await
                    .map(Delivered::from),
            },
        }
    }

    fn keep(&self, key: ReadKey, policy: CachePolicy, reply: &forward::Reply) {
        if policy == CachePolicy::No || reply.error.is_some() || !self.cache.enabled() {
            return;
        }
        if let Some(result) = &reply.result {
            self.cache
                .offer(key, result.clone(), policy, self.cluster.view().served_head);
        }
    }
}

/// The event feed reads blocks, headers and logs through the same pipeline as clients, so
/// it sees only what the served head allows, from nodes that have it.
impl crate::events::Fetch for Gateway {
    fn call(
        &self,
        method: &'static str,
        params: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, String>> + Send + '_>> {
        Box::pin(async move {
            let params = serde_json::value::RawValue::from_string(params).map_err(|e| e.to_string())?;
            let id = serde_json::value::RawValue::from_string("1".to_owned()).map_err(|e| e.to_string())?;
            let call = Call {
                id: Some((&*id).into()),
                method: method.into(),
                params: Some((&*params).into()),
            };
            // kengate's own read: `[methods] deny` is for clients.
            let Some(spec) = self.methods.row(method, self.cluster.dialect()) else {
                return Err(format!("{method} is not in the method table"));
            };
            let plan = match routing::plan(&spec, call.params, &self.cluster.view()) {
                Ok(Decision::Forward(plan)) => plan,
                Ok(other) => return Err(format!("{method}: not a forwarded read ({other:?})")),
                Err(e) => return Err(e.to_string()),
            };
            let reply = match plan.shared {
                true => match self.shared_read(&call, &spec, plan, None).await {
                    Ok(reply) => reply.into_bytes().await,
                    Err(e) => Err(e),
                },
                false => forward::forward(self, &call, &spec, plan).await.map(|r| r.bytes),
            }
            .map_err(|e| e.to_string())?;
            let parsed = UpstreamReply::parse(&reply).map_err(|e| e.to_string())?;
            match (parsed.error, parsed.result) {
                (Some(e), _) => Err(e.get().to_owned()),
                (None, Some(r)) => Ok(cache::raw_bytes(&reply, r)),
                (None, None) => Ok(Bytes::from_static(b"null")),
            }
        })
    }

    fn served(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cluster.tracker.subscribe_served()
    }

    fn dialect(&self) -> crate::methods::Dialect {
        self.cluster.dialect()
    }
}
