//! The served-head rules as one pure function: node observations in, an immutable
//! [`ClusterView`] out. No IO, no clocks, no locks.

/// What the tracker knows of one node when the view is recomputed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeObservation {
    /// Last head the node reported; `None` before its first answer.
    pub head: Option<u64>,
    /// The node failed its last probe (or a request could not connect) and has not answered since.
    pub down: bool,
    /// Out of rotation: it stands out from the others (see `outliers`).
    pub ejected: bool,
}

/// A node's routing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Has the served head and is within `max_lag` of the highest node: serves everything.
    InSync,
    /// Answers, but is behind: gets only explicit-block reads it can answer.
    Lagging,
    /// Not answering (or never answered).
    Down,
    /// Answers, but its errors or latency stand out from the other nodes': out of rotation
    /// for a backoff period (probes go on).
    Ejected,
}

impl NodeState {
    /// Lower-case name used in `/status` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::InSync => "in_sync",
            NodeState::Lagging => "lagging",
            NodeState::Down => "down",
            NodeState::Ejected => "ejected",
        }
    }
}

/// One node in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeView {
    /// Last known head (0 when never seen).
    pub head: u64,
    /// Routing state.
    pub state: NodeState,
}

impl NodeView {
    /// Up (in sync or lagging): may receive requests it can answer.
    pub fn is_up(&self) -> bool {
        matches!(self.state, NodeState::InSync | NodeState::Lagging)
    }
}

/// An immutable snapshot of the cluster; the request path reads one per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// Per node, indexed like the node list.
    pub nodes: Vec<NodeView>,
    /// The highest block every in-sync node has. Never decreases. 0 = nothing served yet.
    pub served_head: u64,
    /// The highest head of any up node.
    pub highest: u64,
}

impl ClusterView {
    /// The view before any node has answered.
    pub fn empty(n: usize) -> Self {
        Self {
            nodes: vec![
                NodeView {
                    head: 0,
                    state: NodeState::Down
                };
                n
            ],
            served_head: 0,
            highest: 0,
        }
    }

    /// Whether any node is in sync (the readiness condition).
    pub fn any_in_sync(&self) -> bool {
        self.nodes.iter().any(|n| n.state == NodeState::InSync)
    }
}

/// Recomputes the view.
///
/// Rules:
/// - `highest` = max head over up nodes.
/// - A node is in sync when it is up, has the previous served head, and is no more than
///   `max_lag` blocks behind `highest`. (So a lagging node re-enters only once it has the
///   served head, and a stalled node stops holding the served head back after `max_lag`.)
/// - `served_head` = the minimum head over in-sync nodes, and never less than before.
///   With no in-sync node it stays where it was.
/// - Until every node has answered or failed its first probe, the served head does not
///   move: otherwise the first node to answer would set it, and slightly lower in-sync
///   nodes would start out excluded.
pub fn compute_view(prev_served: u64, obs: &[NodeObservation], max_lag: u64) -> ClusterView {
    let up = |o: &NodeObservation| !o.down && !o.ejected && o.head.is_some();
    let highest = obs.iter().filter(|o| up(o)).filter_map(|o| o.head).max().unwrap_or(0);
    let floor = prev_served.max(highest.saturating_sub(max_lag));
    let nodes: Vec<NodeView> = obs
        .iter()
        .map(|o| {
            let head = o.head.unwrap_or(0);
            let state = if o.ejected && !o.down && o.head.is_some() {
                NodeState::Ejected
            } else if !up(o) {
                NodeState::Down
            } else if head >= floor {
                NodeState::InSync
            } else {
                NodeState::Lagging
            };
            NodeView { head, state }
        })
        .collect();
    let warming_up = obs.iter().any(|o| o.head.is_none() && !o.down);
    let served_head = nodes
        .iter()
        .filter(|_| !warming_up)
        .filter(|n| n.state == NodeState::InSync)
        .map(|n| n.head)
        .min()
        .map_or(prev_served, |m| m.max(prev_served));
    ClusterView {
        nodes,
        served_head,
        highest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeState::*;

    fn up(h: u64) -> NodeObservation {
        NodeObservation {
            head: Some(h),
            down: false,
            ejected: false,
        }
    }
    fn down(h: u64) -> NodeObservation {
        NodeObservation {
            head: Some(h),
            down: true,
            ejected: false,
        }
    }
    const NEW: NodeObservation = NodeObservation {
        head: None,
        down: false,
        ejected: false,
    };

    fn check(prev: u64, obs: &[NodeObservation], served: u64, states: &[NodeState]) {
        let v = compute_view(prev, obs, 3);
        assert_eq!(v.served_head, served, "served head for {obs:?} (prev {prev})");
        let got: Vec<NodeState> = v.nodes.iter().map(|n| n.state).collect();
        assert_eq!(got, states, "states for {obs:?} (prev {prev})");
    }

    #[test]
    fn served_head_is_the_minimum_of_in_sync_nodes() {
        check(0, &[up(100), up(101), up(102)], 100, &[InSync, InSync, InSync]);
        check(100, &[up(101), up(101), up(102)], 101, &[InSync, InSync, InSync]);
    }

    #[test]
    fn a_stalled_node_holds_back_only_up_to_max_lag() {
        check(100, &[up(100), up(103), up(103)], 100, &[InSync, InSync, InSync]);
        check(100, &[up(100), up(104), up(104)], 104, &[Lagging, InSync, InSync]);
    }

    #[test]
    fn never_decreases_and_reentry_needs_the_served_head() {
        // Node 0 is back within max_lag but below the served head: still lagging.
        check(104, &[up(102), up(104), up(105)], 104, &[Lagging, InSync, InSync]);
        check(104, &[up(104), up(104), up(105)], 104, &[InSync, InSync, InSync]);
        // Every in-sync node gone: the served head stays.
        check(104, &[up(50), down(104), down(105)], 104, &[Lagging, Down, Down]);
        // A node rewound below the served head (debug_setHead) does not pull it back.
        check(104, &[up(90), up(104), up(104)], 104, &[Lagging, InSync, InSync]);
    }

    #[test]
    fn down_and_unknown_nodes_do_not_count() {
        check(0, &[NEW, up(10), down(50)], 0, &[Down, InSync, Down]);
        check(0, &[down(0), up(10), down(50)], 10, &[Down, InSync, Down]);
        check(0, &[NEW, NEW], 0, &[Down, Down]);
        let v = compute_view(0, &[down(50), up(10)], 3);
        assert_eq!(v.highest, 10);
        assert!(v.any_in_sync());
        assert!(!compute_view(7, &[down(50)], 3).any_in_sync());
    }

    #[test]
    fn an_ejected_node_serves_nothing_and_holds_nothing_back() {
        let ejected = NodeObservation {
            ejected: true,
            ..up(90)
        };
        check(100, &[ejected, up(101), up(101)], 101, &[Ejected, InSync, InSync]);
        let v = compute_view(100, &[ejected, up(101)], 3);
        assert!(!v.nodes[0].is_up());
        // Down wins over ejected.
        let both = NodeObservation { down: true, ..ejected };
        check(100, &[both, up(101)], 101, &[Down, InSync]);
    }

    #[test]
    fn the_served_head_waits_for_every_node_first_probe() {
        check(0, &[up(105), NEW, NEW], 0, &[InSync, Down, Down]);
        check(0, &[up(105), NEW, up(102)], 0, &[InSync, Down, InSync]);
        check(0, &[up(105), up(100), up(102)], 102, &[InSync, Lagging, InSync]);
        // A node that fails its first probe does not hold the start back.
        check(0, &[up(105), down(0), up(104)], 104, &[InSync, Down, InSync]);
    }

    #[test]
    fn monotonic_under_random_walks() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut heads = [100u64; 4];
        let mut downs = [false; 4];
        let mut served = 0;
        for _ in 0..10_000 {
            let i = rng.usize(0..4);
            match rng.u8(0..10) {
                0 => downs[i] = !downs[i],
                1 => heads[i] = heads[i].saturating_sub(rng.u64(0..5)),
                _ => heads[i] += rng.u64(0..3),
            }
            let obs: Vec<_> = (0..4)
                .map(|k| NodeObservation {
                    head: Some(heads[k]),
                    down: downs[k],
                    ejected: false,
                })
                .collect();
            let v = compute_view(served, &obs, 3);
            assert!(v.served_head >= served);
            for n in v.nodes.iter().filter(|n| n.state == InSync) {
                assert!(n.head >= v.served_head, "in-sync node below served head");
            }
            served = v.served_head;
        }
    }
}
