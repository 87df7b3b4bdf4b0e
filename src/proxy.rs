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
mod filters;
mod forward;

pub use cache::FinalCache;
pub use coalesce::Coalescer;
pub use error::ProxyError;
pub use filters::FilterRegistry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::jsonrpc::{self, batch_response, error_response, member_response, result_response, Call, Incoming};
use crate::methods::{Lookup, MethodSpec, MethodTable};
use crate::metrics::Metrics;
use crate::routing::{self, CachePolicy, Decision, Plan};
use crate::txpath::lifecycle::Lifecycle;
use crate::txpath::senders::Senders;
use cache::{read_key, ReadKey};
use coalesce::{Answer, Role};

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
        }
    }
}

/// What a request handler needs: the cluster, the method table, node-local filter state,
/// metrics and settings. Built once by `run`; shared by reference.
#[derive(Debug)]
pub struct Gateway {
    /// Nodes and the published view.
    pub cluster: Arc<Cluster>,
    /// Method classes and policy.
    pub methods: MethodTable,
    /// Which node owns which filter id.
    pub filters: FilterRegistry,
    /// Per-sender write ordering and read-your-writes state.
    pub senders: Senders,
    /// Transaction lifecycle records.
    pub lifecycle: Lifecycle,
    /// Final answers (blocks, receipts, mined txs, logs at or below the served head).
    pub cache: FinalCache,
    /// Identical reads in flight.
    pub coalescer: Coalescer,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-call settings.
    pub settings: Settings,
}

impl Gateway {
    /// Handles one request body (single call or batch). `None`: nothing to send back (only
    /// notifications).
    pub async fn handle_body(&self, body: &[u8]) -> Option<Bytes> {
        match jsonrpc::parse_body(body, self.settings.max_batch) {
            Err(e) => {
                self.metrics.call("invalid", Duration::ZERO, false);
                Some(error_response(None, &e.to_rpc()))
            }
            Ok(Incoming::Single(call)) => self.handle_parsed(call).await,
            Ok(Incoming::Batch(calls)) => {
                let replies = join_all(calls.into_iter().map(|c| self.handle_parsed(c))).await;
                let parts: Vec<Bytes> = replies.into_iter().flatten().collect();
                (!parts.is_empty()).then(|| batch_response(&parts))
            }
        }
    }

    async fn handle_parsed(&self, call: Result<Call<'_>, jsonrpc::RpcError>) -> Option<Bytes> {
        match call {
            Err(e) => {
                self.metrics.call("invalid", Duration::ZERO, false);
                Some(error_response(None, &e))
            }
            Ok(call) => {
                let notification = call.id.is_none();
                let reply = self.handle_call(&call).await;
                (!notification).then_some(reply)
            }
        }
    }

    /// One call, start to finish. Always produces a response object.
    async fn handle_call(&self, call: &Call<'_>) -> Bytes {
        let started = Instant::now();
        let (label, result) = match self.methods.lookup(&call.method) {
            Lookup::Allowed(spec) => (spec.name, self.route(call, &spec).await),
            Lookup::Denied => ("denied", Err(ProxyError::MethodDenied(call.method.to_string()))),
            Lookup::Unknown => ("unknown", Err(ProxyError::MethodNotFound(call.method.to_string()))),
        };
        self.metrics.call(label, started.elapsed(), result.is_ok());
        result.unwrap_or_else(|e| error_response(call.id, &e.to_rpc()))
    }

    async fn route(&self, call: &Call<'_>, spec: &MethodSpec) -> Result<Bytes, ProxyError> {
        let view = self.cluster.view();
        match routing::plan(spec, call.params, &view)? {
            Decision::Answer(result) => Ok(result_response(call.id, &result)),
            Decision::Subscription => Err(ProxyError::SubscriptionsUnsupported(call.method.to_string())),
            Decision::TxStatus(hash) => {
                let rec = self
                    .lifecycle
                    .get(hash)
                    .await
                    .map_err(|e| ProxyError::Store(e.to_string()))?;
                let json = serde_json::to_string(&rec).map_err(|e| ProxyError::Store(e.to_string()))?;
                Ok(result_response(call.id, &json))
            }
            Decision::Forward(plan) if plan.shared => self.shared_read(call, spec, plan).await,
            Decision::Forward(plan) => forward::forward(self, call, spec, plan).await.map(|r| r.bytes),
        }
    }

    /// A read whose answer does not depend on who asks: from the cache when final, else
    /// forwarded once for every identical call in flight, and kept when final.
    async fn shared_read(&self, call: &Call<'_>, spec: &MethodSpec, plan: Plan) -> Result<Bytes, ProxyError> {
        let params = plan.params.as_deref().or(call.params.map(|p| p.get())).unwrap_or("[]");
        let key = read_key(spec.upstream, params);
        let policy = plan.cache;
        if policy != CachePolicy::No && self.cache.enabled() {
            if let Some(hit) = self.cache.get(&key) {
                self.metrics.cache("hit");
                return Ok(member_response(call.id, "result", &hit));
            }
            self.metrics.cache("miss");
        }
        if !self.settings.coalesce {
            let reply = forward::forward(self, call, spec, plan).await?;
            self.keep(key, policy, &reply);
            return Ok(reply.bytes);
        }
        match self.coalescer.join(key.clone()) {
            Role::Leader(leader) => {
                let out = forward::forward(self, call, spec, plan).await;
                if let Ok(reply) = &out {
                    // Kept before the flight ends, so a caller arriving next finds it cached.
                    self.keep(key, policy, reply);
                }
                leader.finish(match &out {
                    Ok(reply) => Ok(reply.answer()),
                    Err(e) => Err(e.to_rpc()),
                });
                out.map(|r| r.bytes)
            }
            Role::Waiter(waiter) => match waiter.wait().await {
                Some(shared) => {
                    self.metrics.coalesced();
                    match shared {
                        Ok(Answer::Result(r)) => Ok(member_response(call.id, "result", &r)),
                        Ok(Answer::Error(e)) => Ok(member_response(call.id, "error", &e)),
                        Err(e) => Err(ProxyError::Shared(e)),
                    }
                }
                // The leader's client went away mid-flight: ask on our own.
                None => forward::forward(self, call, spec, plan).await.map(|r| r.bytes),
            },
        }
    }

    fn keep(&self, key: ReadKey, policy: CachePolicy, reply: &forward::Reply) {
        if policy == CachePolicy::No || reply.error.is_some() {
            return;
        }
        if let Some(result) = &reply.result {
            self.cache
                .offer(key, result.clone(), policy, self.cluster.view().served_head);
        }
    }
}
