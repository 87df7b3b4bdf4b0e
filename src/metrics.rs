//! Prometheus metrics: per-method request counts and latency, upstream errors, retries,
//! and per-node head/lag/state (sampled from the cluster view at scrape time).

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::cluster::{ClusterView, FaultCounters, HeadTimings, NodeId, NodeState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeKindLabels {
    node: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One method's series in `requests` and `request_duration_seconds`, shared with the
/// families (the same counters and histogram, not copies). An outcome's counter is taken
/// from its family when it first happens, so `/metrics` lists only outcomes that did.
#[derive(Debug)]
struct MethodSeries {
    ok: OnceLock<Counter>,
    error: OnceLock<Counter>,
    latency: Histogram,
}

/// The series of every method seen so far, found by name: a call costs one read lock and a
/// short hash, not a SipHash of its label set and a lock in each family.
type SeriesByMethod = std::sync::Arc<std::sync::RwLock<HashMap<&'static str, MethodSeries, ahash::RandomState>>>;

/// One network's metrics, registered once in that network's sub-registry (label
/// `network`) of the root registry [`render`] encodes.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Node URLs, the `node` label, indexed by node id.
    node_names: Vec<String>,
    requests: Family<MethodLabels, Counter>,
    latency: HistogramFamily<LatencyLabels>,
    series: SeriesByMethod,
    upstream_errors: Family<NodeKindLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
    node_head: Family<NodeLabels, Gauge>,
    node_lag: Family<NodeLabels, Gauge>,
    node_in_sync: Family<NodeLabels, Gauge>,
    node_up: Family<NodeLabels, Gauge>,
    served_head: Gauge,
    cache_lookups: Family<ReasonLabels, Counter>,
    coalesced: Counter,
    streamed: Counter,
    batched: Counter,
    cache_bytes: Gauge,
    cache_entries: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    /// The same series (shared), labelled for a new node list (a reload).
    pub fn renamed(&self, node_names: Vec<String>) -> Self {
        Self {
            node_names,
            ..self.clone()
        }
    }

    /// Registers every metric in `registry`; `node_names` label the per-node series.
    pub fn new(
        registry: &mut Registry,
        node_names: Vec<String>,
        timings: &HeadTimings,
        faults: &FaultCounters,
    ) -> Self {
        registry.register(
            "node_state_changes",
            "Node state changes (in_sync, lagging, down) by node and new state",
            faults.node_state_changes.clone(),
        );
        registry.register(
            "no_node_episodes",
            "Episodes during which no node was in sync",
            faults.no_node_episodes.clone(),
        );
        registry.register(
            "no_node_waits",
            "Calls that found no node able to take them and waited for one",
            faults.waited_calls.clone(),
        );
        registry.register(
            "node_ejections",
            "Outlier ejections by node and reason (errors, latency)",
            faults.ejections.clone(),
        );
        registry.register(
            "no_node_errors",
            "Calls answered with an error because no node could take them within cluster.node_wait_ms",
            faults.no_node_errors.clone(),
        );
        registry.register(
            "served_head_update_seconds",
            "From receiving the node report that completes a block to the served head moving",
            timings.update.clone(),
        );
        registry.register(
            "served_head_trail_seconds",
            "From the first node reporting a block to the served head reaching it",
            timings.trail.clone(),
        );
        let requests = Family::default();
        registry.register("requests", "JSON-RPC calls by method and outcome", requests.clone());
        let latency: HistogramFamily<LatencyLabels> = Family::new_with_constructor(latency_histogram);
        registry.register("request_duration_seconds", "Time to answer one call", latency.clone());
        let upstream_errors = Family::default();
        registry.register(
            "upstream_errors",
            "Transport failures talking to a node",
            upstream_errors.clone(),
        );
        let retries = Family::default();
        registry.register(
            "retries",
            "Extra upstream attempts by reason (transport failure, null answer)",
            retries.clone(),
        );
        let node_head = Family::default();
        registry.register("node_head", "Last head reported by the node", node_head.clone());
        let node_lag = Family::default();
        registry.register(
            "node_lag_blocks",
            "Blocks the node trails the highest node",
            node_lag.clone(),
        );
        let node_in_sync = Family::default();
        registry.register(
            "node_in_sync",
            "1 when the node is in the in-sync set",
            node_in_sync.clone(),
        );
        let node_up = Family::default();
        registry.register("node_up", "1 when the node answers its probes", node_up.clone());
        let served_head = Gauge::default();
        registry.register(
            "served_head",
            "Highest block every in-sync node has",
            served_head.clone(),
        );
        let cache_lookups = Family::default();
        registry.register(
            "cache_lookups",
            "Final-data cache lookups by outcome (hit, miss)",
            cache_lookups.clone(),
        );
        let coalesced = Counter::default();
        registry.register(
            "coalesced_calls",
            "Calls answered from an identical call already in flight",
            coalesced.clone(),
        );
        let streamed = Counter::default();
        registry.register(
            "streamed_replies",
            "Replies over limits.stream_over_bytes passed on as the node sent them",
            streamed.clone(),
        );
        let batched = Counter::default();
        registry.register(
            "batched_calls",
            "Calls of client batches answered through one upstream batch request",
            batched.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register("cache_bytes", "Bytes held by the final-data cache", cache_bytes.clone());
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Entries in the final-data cache",
            cache_entries.clone(),
        );
        Self {
            cache_lookups,
            coalesced,
            streamed,
            batched,
            cache_bytes,
            cache_entries,
            node_names,
            requests,
            latency,
            series: SeriesByMethod::default(),
            upstream_errors,
            retries,
            node_head,
            node_lag,
            node_in_sync,
            node_up,
            served_head,
        }
    }

    /// Counts one call.
    pub fn call(&self, method: &'static str, took: Duration, ok: bool) {
        let record = |s: &MethodSeries| {
            let (counter, outcome) = match ok {
                true => (&s.ok, "ok"),
                false => (&s.error, "error"),
            };
            counter
                .get_or_init(|| self.requests.get_or_create(&MethodLabels { method, outcome }).clone())
                .inc();
            s.latency.observe(took.as_secs_f64());
        };
        if let Some(s) = self.series.read().unwrap_or_else(PoisonError::into_inner).get(method) {
            record(s);
            return;
        }
        // First call of this method: its series, kept for the next ones.
        let mut all = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let series = all.entry(method).or_insert_with(|| MethodSeries {
            ok: OnceLock::new(),
            error: OnceLock::new(),
            latency: self.latency.get_or_create(&LatencyLabels { method }).clone(),
        });
        record(series);
    }

    /// Counts a transport failure.
    pub fn upstream_error(&self, node: NodeId, kind: &'static str) {
        let node = self.node_names.get(node).cloned().unwrap_or_default();
        self.upstream_errors.get_or_create(&NodeKindLabels { node, kind }).inc();
    }

    /// Counts a retry.
    pub fn retry(&self, reason: &'static str) {
        self.retries.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a cache lookup (`hit` / `miss`).
    pub fn cache(&self, reason: &'static str) {
        self.cache_lookups.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a reply passed on as it arrived.
    pub fn streamed(&self) {
        self.streamed.inc();
    }

    /// Counts a call answered by an identical call's flight.
    pub fn coalesced(&self) {
        self.coalesced.inc();
    }

    /// Counts calls answered through an upstream batch.
    pub fn batched(&self, n: usize) {
        self.batched.inc_by(n as u64);
    }

    /// Samples the cache's size (at scrape time).
    pub fn sample_cache(&self, bytes: u64, entries: u64) {
        self.cache_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.cache_entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// Samples node state from `view` into the gauges (at scrape time).
    pub fn sample(&self, view: &ClusterView) {
        for (name, n) in self.node_names.iter().zip(&view.nodes) {
            let l = NodeLabels { node: name.clone() };
            self.node_head
                .get_or_create(&l)
                .set(i64::try_from(n.head).unwrap_or(i64::MAX));
            let lag = view.highest.saturating_sub(n.head);
            self.node_lag
                .get_or_create(&l)
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
            self.node_in_sync
                .get_or_create(&l)
                .set(i64::from(n.state == NodeState::InSync));
            self.node_up
                .get_or_create(&l)
                .set(i64::from(n.state != NodeState::Down));
        }
        self.served_head
            .set(i64::try_from(view.served_head).unwrap_or(i64::MAX));
    }
}

/// The root registry, prefix `kengate`.
pub fn root_registry() -> Registry {
    Registry::with_prefix("kengate")
}

/// The sub-registry of one network's metrics.
pub fn network_registry<'a>(root: &'a mut Registry, network: &str) -> &'a mut Registry {
    root.sub_registry_with_label((
        std::borrow::Cow::Borrowed("network"),
        std::borrow::Cow::Owned(network.to_owned()),
    ))
}

/// The text exposition of everything registered (gauges sampled beforehand).
pub fn render(root: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, root);
    out
}

/// A key id as a label value, shared with the key (cloning it does not allocate).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct KeyLabel(std::sync::Arc<str>);

impl prometheus_client::encoding::EncodeLabelValue for KeyLabel {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyMethodLabels {
    key: KeyLabel,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLatencyLabels {
    key: KeyLabel,
    method: &'static str,
}

/// The request audit: per access key and method, calls, errors and latency; refused
/// requests by reason. Shared by every network.
#[derive(Debug)]
pub struct Audit {
    requests: Family<KeyMethodLabels, Counter>,
    latency: HistogramFamily<KeyLatencyLabels>,
    denied: Family<ReasonLabels, Counter>,
}

impl Audit {
    /// Registers the audit metrics in the root registry.
    pub fn new(root: &mut Registry) -> Self {
        let requests = Family::default();
        root.register(
            "key_requests",
            "JSON-RPC calls by access key, method and outcome",
            requests.clone(),
        );
        let latency: HistogramFamily<KeyLatencyLabels> = Family::new_with_constructor(latency_histogram);
        root.register(
            "key_request_duration_seconds",
            "Time to answer one call, by access key and method",
            latency.clone(),
        );
        let denied = Family::default();
        root.register(
            "denied_requests",
            "Requests refused before any call ran, by reason (credential, network, ip, rate, ...)",
            denied.clone(),
        );
        Self {
            requests,
            latency,
            denied,
        }
    }

    /// One call made with access key `key`.
    pub fn call(&self, key: &std::sync::Arc<str>, method: &'static str, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.requests
            .get_or_create(&KeyMethodLabels {
                key: KeyLabel(key.clone()),
                method,
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&KeyLatencyLabels {
                key: KeyLabel(key.clone()),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// One refused request.
    pub fn denied(&self, reason: &'static str) {
        self.denied.get_or_create(&ReasonLabels { reason }).inc();
    }
}

/// The listener's own counters: connections and request bodies refused at the edge.
#[derive(Debug, Default)]
pub struct EdgeCounters {
    /// Connections open now.
    pub open_connections: Gauge,
    /// Connections refused at accept, by cap (`global`, `per_ip`).
    refused_connections: Family<ReasonLabels, Counter>,
    /// Requests refused while their body was read, by reason (`body_timeout`, `buffer_full`).
    refused_bodies: Family<ReasonLabels, Counter>,
}

impl EdgeCounters {
    /// Registers them in the root registry.
    pub fn new(root: &mut Registry) -> Self {
        let e = EdgeCounters::default();
        root.register(
            "open_connections",
            "Client connections open now",
            e.open_connections.clone(),
        );
        root.register(
            "refused_connections",
            "Client connections refused at accept, by cap (global, per_ip)",
            e.refused_connections.clone(),
        );
        root.register(
            "refused_bodies",
            "Requests refused while their body was read (body_timeout, buffer_full)",
            e.refused_bodies.clone(),
        );
        e
    }

    /// Counts a refused connection.
    pub fn refused_connection(&self, reason: &'static str) {
        self.refused_connections.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a refused body.
    pub fn refused_body(&self, reason: &'static str) {
        self.refused_bodies.get_or_create(&ReasonLabels { reason }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_the_families_and_only_outcomes_that_happened_are_listed() {
        let mut registry = Registry::default();
        let m = Metrics::new(
            &mut registry,
            vec!["n0".into()],
            &HeadTimings::default(),
            &FaultCounters::default(),
        );
        for _ in 0..3 {
            m.call("klay_gasPrice", Duration::from_micros(80), true);
        }
        let text = render(&registry);
        assert!(
            text.contains("requests_total{method=\"klay_gasPrice\",outcome=\"ok\"} 3"),
            "{text}"
        );
        assert!(!text.contains("outcome=\"error\""), "{text}");
        assert!(
            text.contains("request_duration_seconds_count{method=\"klay_gasPrice\"} 3"),
            "{text}"
        );
        m.call("klay_gasPrice", Duration::from_micros(80), false);
        // A clone for a reloaded node list shares the series.
        m.renamed(vec!["n1".into()])
            .call("klay_gasPrice", Duration::from_micros(80), false);
        let text = render(&registry);
        assert!(
            text.contains("requests_total{method=\"klay_gasPrice\",outcome=\"error\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("request_duration_seconds_count{method=\"klay_gasPrice\"} 5"),
            "{text}"
        );
    }
}
