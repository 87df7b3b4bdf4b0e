//! Node-local filter state: which node created which filter id, so later polls of that id
//! go back to it. Entries expire like the node's own filters (idle timeout).

use std::time::Duration;

use moka::sync::Cache;

use crate::cluster::NodeId;

/// Klaytn drops a filter not polled for 5 minutes; kengate forgets it a little later.
const IDLE: Duration = Duration::from_secs(6 * 60);

/// Filter id → owning node.
#[derive(Debug)]
pub struct FilterRegistry {
    owners: Cache<String, NodeId>,
}

impl Default for FilterRegistry {
    fn default() -> Self {
        Self {
            owners: Cache::builder().max_capacity(100_000).time_to_idle(IDLE).build(),
        }
    }
}

impl FilterRegistry {
    /// Records a filter created on `node`.
    pub fn insert(&self, id: String, node: NodeId) {
        self.owners.insert(id, node);
    }

    /// The node owning `id`, refreshing its idle timer.
    pub fn owner(&self, id: &str) -> Option<NodeId> {
        self.owners.get(id)
    }

    /// Forgets a filter.
    pub fn remove(&self, id: &str) {
        self.owners.invalidate(id);
    }
}
