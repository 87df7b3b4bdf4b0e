//! The upstream cluster: node clients, head tracking and health, published as an immutable
//! [`ClusterView`] snapshot that the request path borrows without a lock.
//!
//! Architecture invariant: only the [`tracker::Tracker`] writes the view; everything else
//! reads snapshots.

pub mod h1;
mod heads;
mod health;
mod node;
mod outliers;
mod relay;
mod software;
mod stream;
mod tls;
mod tracker;
mod view;

pub use crate::config::shown_url;
pub use heads::spawn_head_watchers;
pub use health::{describe, FaultCounters};
pub use node::{Node, NodeId, UpstreamClient, UpstreamError, UpstreamErrorKind};
pub use outliers::{spawn as spawn_ejector, stands_out, Outcomes, Outlier, Sample};
pub use software::DialectCell;
pub use stream::{Fetched, Streamed};
pub use tls::{
    client_config, connect_ws, error_chain, provider as tls_provider, read_certs, read_key, TlsError, WsStream,
};
pub use tracker::{HeadSource, HeadTimings, Tracker};
pub use view::{compute_view, ClusterView, NodeObservation, NodeState, NodeView};

use std::sync::Arc;

use crate::methods::Dialect;

/// The nodes and their tracker: what the request path needs of the cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Node clients, indexed by [`NodeId`].
    pub nodes: Vec<Arc<Node>>,
    /// Head/health state; publishes the view.
    pub tracker: Tracker,
    /// The shared pooled HTTP client for all nodes.
    pub client: UpstreamClient,
    /// Per node, a stable hash of its URL: the identity rendezvous hashing uses, so every
    /// replica maps a sender to the same node whatever the order of its node list.
    pub keys: Vec<u64>,
    /// The network's method dialect, from its nodes' software (`software`).
    pub dialect: DialectCell,
}

impl Cluster {
    /// The current snapshot.
    pub fn view(&self) -> Arc<ClusterView> {
        self.tracker.view()
    }

    /// The method dialect to speak to this network's nodes.
    pub fn dialect(&self) -> Dialect {
        self.dialect.get().unwrap_or_default()
    }

    /// Records what software a node runs (`None`: not known, e.g. it went down) and
    /// derives the network's dialect again; a change is logged.
    pub fn note_software(&self, node: &Node, software: Option<Dialect>) {
        if !node.software.set(software) {
            return;
        }
        // Two nodes' loops may get here at once: each stores what it derived, then derives
        // again, so the last store always reflects every node's latest software.
        loop {
            let network = software::network_dialect(self.nodes.iter().map(|n| n.software.get()));
            if self.dialect.set(Some(network)) {
                tracing::info!(node = %node.name, dialect = network.as_str(), "the network now speaks {}", network.as_str());
            }
            if software::network_dialect(self.nodes.iter().map(|n| n.software.get())) == network {
                break;
            }
        }
    }

    /// Takes over what `old` learnt of the nodes the two share (by URL), so a reload does not
    /// speak Klaytn to a Kaia network until the nodes are probed again.
    pub fn carry_software(&self, old: &Cluster) {
        for node in &self.nodes {
            if let Some(prev) = old.nodes.iter().find(|o| o.http == node.http) {
                self.note_software(node, prev.software.get());
            }
        }
    }
}
