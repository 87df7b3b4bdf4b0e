//! Picks the node for one attempt: filter the snapshot by the plan's target and the nodes
//! already tried, then take the less loaded of two random candidates (power of two choices);
//! the one passed over is told so ([`Load::passed_over`]), so a node's stale estimate cannot
//! keep it out for good.

use super::plan::Target;
use crate::cluster::{ClusterView, NodeId, NodeState};

/// A set of node ids (kengate fronts at most [`crate::config::MAX_NODES`] per network;
/// config validation enforces it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeSet(u64);

// The set is one `u64` bitmap.
const _: () = assert!(NodeSet::CAPACITY <= u64::BITS as usize);

impl NodeSet {
    /// Maximum number of nodes a set can hold.
    pub const CAPACITY: usize = crate::config::MAX_NODES;

    /// Adds a node.
    pub fn insert(&mut self, id: NodeId) {
        if id < Self::CAPACITY {
            self.0 |= 1 << id;
        }
    }

    /// Whether the node is in the set.
    pub fn contains(&self, id: NodeId) -> bool {
        id < Self::CAPACITY && self.0 & (1 << id) != 0
    }
}

/// What the selector knows of the nodes' load.
pub trait Load {
    /// A node's load now (lower is better).
    fn score(&self, id: NodeId) -> u64;
    /// The node lost a comparison to a less loaded one.
    fn passed_over(&self, _id: NodeId) {}
}

/// A bare score (tests): nothing to tell a node passed over.
impl<F: Fn(NodeId) -> u64> Load for F {
    fn score(&self, id: NodeId) -> u64 {
        self(id)
    }
}

/// The cluster's nodes: the score is latency × calls in flight; a node passed over has its
/// latency estimate decay a little ([`Node::passed_over`](crate::cluster::Node::passed_over)).
/// Only an answer raises the estimate, so without the decay a node whose last answers were
/// slow (or that has not answered yet) would lose every comparison on a lightly loaded cluster
/// and never be asked again, however fast it has become.
impl Load for [std::sync::Arc<crate::cluster::Node>] {
    fn score(&self, id: NodeId) -> u64 {
        self.get(id).map_or(u64::MAX, |n| n.load_score())
    }
    fn passed_over(&self, id: NodeId) {
        if let Some(n) = self.get(id) {
            n.passed_over();
        }
    }
}

/// Chooses a node for `target`, skipping `tried`. `load` scores the candidates (and hears
/// which one lost); `rng` picks them. `filter_owner` is already resolved by the caller into
/// [`Target::Node`], and so is `SenderHome`.
pub fn choose(
    view: &ClusterView,
    target: &Target,
    tried: NodeSet,
    load: &(impl Load + ?Sized),
    rng: &mut fastrand::Rng,
) -> Option<NodeId> {
    let fresh = |&(id, _): &(NodeId, &crate::cluster::NodeView)| !tried.contains(id);
    let nodes = || view.nodes.iter().enumerate().filter(fresh);
    match *target {
        Target::InSync => pick(nodes().filter(|(_, n)| n.state == NodeState::InSync), load, rng),
        // A block no node has yet: the highest node's answer is the truthful "not yet". A
        // block at or below the served head that no untried up node has: nobody, for now.
        Target::AtLeast(b) => pick(nodes().filter(|(_, n)| n.is_up() && n.head >= b), load, rng)
            .or_else(|| highest(view, tried).filter(|_| b > view.served_head)),
        Target::Highest => highest(view, tried),
        Target::Primary => nodes()
            .find(|(_, n)| n.state == NodeState::InSync)
            .map(|(id, _)| id)
            .or_else(|| highest(view, tried)),
        Target::Node(id) => view
            .nodes
            .get(id)
            .filter(|n| n.is_up() && !tried.contains(id))
            .map(|_| id),
        // Resolved by the caller (rendezvous hashing) into `Target::Node`.
        Target::SenderHome(_) => None,
    }
}

/// After `answered_head`'s node said `null`: the highest untried up node above it, if any.
pub fn higher_node(view: &ClusterView, answered_head: u64, tried: NodeSet) -> Option<NodeId> {
    highest(view, tried).filter(|&id| view.nodes.get(id).is_some_and(|n| n.head > answered_head))
}

/// The up node with the highest head, skipping `tried` (ties: the lowest id).
pub fn highest(view: &ClusterView, tried: NodeSet) -> Option<NodeId> {
    view.nodes
        .iter()
        .enumerate()
        .filter(|&(id, n)| n.is_up() && !tried.contains(id))
        .max_by_key(|&(id, n)| (n.head, std::cmp::Reverse(id)))
        .map(|(id, _)| id)
}

fn pick<'a>(
    candidates: impl Iterator<Item = (NodeId, &'a crate::cluster::NodeView)>,
    load: &(impl Load + ?Sized),
    rng: &mut fastrand::Rng,
) -> Option<NodeId> {
    // A view has at most `NodeSet::CAPACITY` nodes (`MAX_NODES`).
    let mut ids = [0usize; NodeSet::CAPACITY];
    let mut n = 0;
    for (slot, (id, _)) in ids.iter_mut().zip(candidates) {
        *slot = id;
        n += 1;
    }
    let ids = ids.get(..n)?;
    match ids {
        [] => None,
        [only] => Some(*only),
        [.., last] => {
            let a = *ids.get(rng.usize(0..n))?;
            let mut b = *ids.get(rng.usize(0..n - 1))?;
            if b == a {
                b = *last;
            }
            let (won, lost) = match load.score(b) < load.score(a) {
                true => (b, a),
                false => (a, b),
            };
            load.passed_over(lost);
            Some(won)
        }
    }
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

    fn all(view: &ClusterView, target: Target, tried: NodeSet) -> Vec<NodeId> {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut seen: Vec<NodeId> = (0..200)
            .filter_map(|i| choose(view, &target, tried, &|id| (id as u64 + i) % 3, &mut rng))
            .collect();
        seen.sort();
        seen.dedup();
        seen
    }

    #[test]
    fn a_lagging_node_never_gets_a_served_head_read() {
        // node 0 lags (96 < 104-3), nodes 1,2 in sync, served = 104
        let v = view(0, &[(96, false), (104, false), (105, false)]);
        assert_eq!(v.served_head, 104);
        assert_eq!(all(&v, Target::AtLeast(104), NodeSet::default()), vec![1, 2]);
        assert_eq!(all(&v, Target::InSync, NodeSet::default()), vec![1, 2]);
        // ...but can serve an explicit old block it has.
        assert_eq!(all(&v, Target::AtLeast(90), NodeSet::default()), vec![0, 1, 2]);
    }

    #[test]
    fn beyond_every_head_goes_to_the_highest() {
        let v = view(0, &[(100, false), (102, false), (101, false)]);
        assert_eq!(all(&v, Target::AtLeast(500), NodeSet::default()), vec![1]);
        assert_eq!(all(&v, Target::Highest, NodeSet::default()), vec![1]);
    }

    #[test]
    fn a_served_block_no_up_node_has_goes_nowhere() {
        // Served head 104; the in-sync nodes are down and the lagging one lacks the block:
        // nobody can answer truthfully now, so the caller waits instead of asking node 0.
        let v = view(104, &[(96, false), (104, true), (105, true)]);
        assert_eq!(all(&v, Target::AtLeast(104), NodeSet::default()), Vec::<NodeId>::new());
        assert_eq!(all(&v, Target::InSync, NodeSet::default()), Vec::<NodeId>::new());
        assert_eq!(all(&v, Target::AtLeast(90), NodeSet::default()), vec![0]);
        assert_eq!(all(&v, Target::AtLeast(200), NodeSet::default()), vec![0]);
    }

    #[test]
    fn tried_and_down_nodes_are_skipped() {
        let v = view(0, &[(100, false), (100, true), (100, false)]);
        let mut tried = NodeSet::default();
        tried.insert(0);
        assert_eq!(all(&v, Target::InSync, tried), vec![2]);
        tried.insert(2);
        assert_eq!(all(&v, Target::InSync, tried), Vec::<NodeId>::new());
        assert_eq!(all(&v, Target::Node(1), NodeSet::default()), Vec::<NodeId>::new());
        assert_eq!(all(&v, Target::Node(7), NodeSet::default()), Vec::<NodeId>::new());
    }

    #[test]
    fn primary_is_stable() {
        let v = view(0, &[(100, true), (100, false), (100, false)]);
        assert_eq!(all(&v, Target::Primary, NodeSet::default()), vec![1]);
    }

    #[test]
    fn null_retry_goes_higher_only() {
        let v = view(0, &[(100, false), (102, false), (101, false)]);
        let mut tried = NodeSet::default();
        tried.insert(0);
        assert_eq!(higher_node(&v, 100, tried), Some(1));
        tried.insert(1);
        assert_eq!(higher_node(&v, 100, tried), Some(2));
        assert_eq!(higher_node(&v, 101, tried), None);
    }

    #[test]
    fn prefers_the_less_loaded_of_two() {
        let v = view(0, &[(100, false), (100, false)]);
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..50 {
            let got = choose(
                &v,
                &Target::InSync,
                NodeSet::default(),
                &|id| if id == 1 { 1 } else { 10 },
                &mut rng,
            );
            assert_eq!(got, Some(1));
        }
    }

    /// Nodes whose latency estimate moves as the cluster's does: a call answered sets the
    /// node's estimate to its real latency, a comparison lost decays it as `Node::passed_over`
    /// does when `decay`.
    struct Stale {
        estimate: [std::cell::Cell<u64>; 3],
        decay: bool,
    }

    impl Load for Stale {
        fn score(&self, id: NodeId) -> u64 {
            self.estimate.get(id).map_or(u64::MAX, std::cell::Cell::get)
        }
        fn passed_over(&self, id: NodeId) {
            if let (Some(e), true) = (self.estimate.get(id), self.decay) {
                e.set(crate::cluster::Node::decayed(e.get()));
            }
        }
    }

    #[test]
    fn a_node_passed_over_is_asked_again() {
        // Node 0's last answers were slow (1,000 µs); it is as fast as the others (100 µs) now.
        let v = view(0, &[(100, false), (100, false), (100, false)]);
        let asked = |decay: bool| {
            let load = Stale {
                estimate: [1_000, 100, 100].map(std::cell::Cell::new),
                decay,
            };
            let mut rng = fastrand::Rng::with_seed(5);
            let mut asked = [0u32; 3];
            for _ in 0..2_000 {
                let id = choose(&v, &Target::InSync, NodeSet::default(), &load, &mut rng).unwrap_or(9);
                if let (Some(n), Some(e)) = (asked.get_mut(id), load.estimate.get(id)) {
                    *n += 1;
                    e.set(100);
                }
            }
            asked
        };
        // Without the decay it loses every comparison and is never measured again.
        assert_eq!(asked(false)[0], 0);
        // With it, it is asked again (after ~300 losses, ~450 calls), then takes its share.
        let shares = asked(true);
        assert!(shares[0] >= 300, "node 0 got {shares:?}");
    }
}
