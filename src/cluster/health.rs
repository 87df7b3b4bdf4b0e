//! What an operator sees of node faults: one log line per node state change (in sync →
//! lagging → down → back, with head, lag and reason) and per "no node in sync" episode
//! (start, end, calls that waited and failed), and the same events as counters for
//! `/metrics`. Fed by the tracker on every published view; never on the request path
//! except two counter increments.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::view::{ClusterView, NodeState};
use super::NodeId;

/// Labels of a node state change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// The node's label (its URL).
    pub node: String,
    /// The state it went to.
    pub to: &'static str,
}

/// Fault counters, registered in the network's metrics registry.
#[derive(Debug, Clone, Default)]
pub struct FaultCounters {
    /// Node state changes by node and new state.
    pub node_state_changes: Family<ChangeLabels, Counter>,
    /// Episodes with no node in sync.
    pub no_node_episodes: Counter,
    /// Calls that found no node able to take them and waited for one.
    pub waited_calls: Counter,
    /// Calls answered with an error because no node returned within the bound.
    pub no_node_errors: Counter,
    /// Outlier ejections by node and reason (errors, latency).
    pub ejections: Family<EjectionLabels, Counter>,
}

/// Labels of an ejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EjectionLabels {
    /// The node's name.
    pub node: String,
    /// Why: `errors` or `latency`.
    pub reason: &'static str,
}

impl FaultCounters {
    /// Counts an ejection.
    pub fn ejected(&self, node: &str, reason: &'static str) {
        self.ejections
            .get_or_create(&EjectionLabels {
                node: node.to_owned(),
                reason,
            })
            .inc();
    }
}

/// An episode with no node in sync.
#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    waited_before: u64,
    failed_before: u64,
}

/// Logs and counts state changes; owned by the tracker, called under its lock.
#[derive(Debug)]
pub struct Health {
    labels: Vec<String>,
    /// The counters (cloned into the metrics registry).
    pub counters: FaultCounters,
    episode: Option<Episode>,
}

impl Health {
    /// Health reporting for nodes labelled `labels` (indexed by node id), counting in
    /// `counters` (new ones, or those of the tracker a reload replaces).
    pub fn with_counters(labels: Vec<String>, counters: FaultCounters) -> Self {
        Self {
            labels,
            counters,
            episode: None,
        }
    }

    fn label(&self, id: NodeId) -> &str {
        self.labels.get(id).map_or("?", String::as_str)
    }

    /// Compares two consecutive views and reports what changed. `down_reason` is why the
    /// node whose observation produced `next` was marked down, if it was.
    pub fn published(&mut self, prev: &ClusterView, next: &ClusterView, down_reason: Option<(NodeId, &str)>) {
        // Until the first served head, the first probes of each node are start-up, not news.
        let started = prev.served_head > 0;
        for (id, (before, after)) in prev.nodes.iter().zip(&next.nodes).enumerate() {
            if before.state == after.state {
                continue;
            }
            let node = self.label(id).to_owned();
            self.counters
                .node_state_changes
                .get_or_create(&ChangeLabels {
                    node: node.clone(),
                    to: after.state.as_str(),
                })
                .inc();
            let lag = next.highest.saturating_sub(after.head);
            if !started {
                tracing::debug!(%node, head = after.head, state = after.state.as_str(), "node state");
                continue;
            }
            match after.state {
                NodeState::InSync => tracing::info!(
                    %node, head = after.head, served_head = next.served_head, from = before.state.as_str(),
                    "node is in sync again"
                ),
                NodeState::Lagging => tracing::warn!(
                    %node, head = after.head, lag, served_head = next.served_head, from = before.state.as_str(),
                    "node is lagging: it gets only reads of blocks it has"
                ),
                NodeState::Ejected => tracing::debug!(%node, head = after.head, "node is out of rotation (ejected)"),
                NodeState::Down => {
                    let reason = down_reason.filter(|(n, _)| *n == id).map_or("no answer", |(_, r)| r);
                    tracing::warn!(
                        %node, head = after.head, from = before.state.as_str(), reason,
                        "node is down: it gets no calls until it answers a probe"
                    );
                }
            }
        }
        self.episodes(prev, next);
    }

    fn episodes(&mut self, prev: &ClusterView, next: &ClusterView) {
        let waited = self.counters.waited_calls.get();
        let failed = self.counters.no_node_errors.get();
        match (next.any_in_sync(), self.episode) {
            (false, None) if prev.served_head > 0 => {
                self.counters.no_node_episodes.inc();
                self.episode = Some(Episode {
                    since: Instant::now(),
                    waited_before: waited,
                    failed_before: failed,
                });
                tracing::warn!(
                    served_head = next.served_head,
                    nodes = %describe(next, &self.labels),
                    "no node is in sync: calls that need one wait for it (cluster.node_wait_ms)"
                );
            }
            (true, Some(e)) => {
                self.episode = None;
                tracing::info!(
                    after_ms = e.since.elapsed().as_millis() as u64,
                    calls_waited = waited - e.waited_before,
                    calls_failed = failed - e.failed_before,
                    served_head = next.served_head,
                    "a node is in sync again: the episode with no node in sync is over"
                );
            }
            _ => {}
        }
    }
}

/// One line per node: `label: state at head` — for logs and for the error a call gets when
/// no node returned in time.
pub fn describe(view: &ClusterView, labels: &[String]) -> String {
    let mut out = String::new();
    for (id, n) in view.nodes.iter().enumerate() {
        if id > 0 {
            out.push_str(", ");
        }
        let label = labels.get(id).map_or("?", String::as_str);
        out.push_str(&format!("{label} {} at {}", n.state.as_str(), n.head));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{compute_view, NodeObservation};

    fn view(prev: u64, nodes: &[(u64, bool)]) -> ClusterView {
        let obs: Vec<_> = nodes
            .iter()
            .map(|&(h, down)| NodeObservation {
                head: Some(h),
                down,
                ejected: false,
            })
            .collect();
        compute_view(prev, &obs, 3)
    }

    #[test]
    fn counts_each_change_and_each_episode_once() {
        let mut h = Health::with_counters(vec!["a".into(), "b".into()], FaultCounters::default());
        let v1 = view(0, &[(10, false), (10, false)]);
        let v2 = view(10, &[(10, true), (10, false)]);
        let v3 = view(10, &[(10, true), (10, true)]);
        let v4 = view(10, &[(11, false), (10, true)]);
        h.published(&ClusterView::empty(2), &v1, None);
        h.published(&v1, &v2, Some((0, "timeout")));
        h.published(&v2, &v3, None);
        h.counters.waited_calls.inc();
        h.published(&v3, &v3, None);
        h.published(&v3, &v4, None);
        let changes = |node: &str, to: &'static str| {
            h.counters
                .node_state_changes
                .get_or_create(&ChangeLabels { node: node.into(), to })
                .get()
        };
        assert_eq!(changes("a", "down"), 1);
        assert_eq!(changes("b", "down"), 1);
        assert_eq!(changes("a", "in_sync"), 2);
        assert_eq!(h.counters.no_node_episodes.get(), 1);
        assert!(h.episode.is_none());
        assert_eq!(describe(&v4, &h.labels), "a in_sync at 11, b down at 10");
    }
}
