//! The upstream cluster: node clients, head tracking and health, published as an immutable
//! [`ClusterView`] snapshot that the request path borrows without a lock.
//!
//! Architecture invariant: only the [`tracker::Tracker`] writes the view; everything else
//! reads snapshots.

mod heads;
mod health;
mod node;
mod outliers;
mod redact;
mod tls;
mod tracker;
mod view;

pub use heads::spawn_head_watchers;
pub use health::{describe, FaultCounters};
pub use node::{Node, NodeId, UpstreamClient, UpstreamError, UpstreamErrorKind};
pub use outliers::{spawn as spawn_ejector, stands_out, Outcomes, Outlier, Sample};
pub use redact::shown as shown_url;
pub use tls::{
    client_config, connect_ws, error_chain, provider as tls_provider, read_certs, read_key, TlsError, WsStream,
};
pub use tracker::{HeadSource, HeadTimings, Tracker};
pub use view::{compute_view, ClusterView, NodeObservation, NodeState, NodeView};

use std::sync::Arc;

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
}

impl Cluster {
    /// The current snapshot.
    pub fn view(&self) -> Arc<ClusterView> {
        self.tracker.view()
    }
}
