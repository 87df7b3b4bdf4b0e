//! Owns the per-node observations and publishes a new [`ClusterView`] on every head or
//! health event (never on a timer tick), through `arc-swap` for lock-free readers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::watch;

use super::health::{FaultCounters, Health};
use super::view::{compute_view, ClusterView, NodeObservation};
use super::NodeId;

/// Where a head observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadSource {
    /// An HTTP `klay_blockNumber` probe: authoritative for liveness and for the head.
    Poll,
    /// A WS `newHeads` notification: only moves the head forward, never revives a down node
    /// (its HTTP side, which serves requests, may still be broken).
    Subscription,
}

/// How quickly the served head follows the nodes (exported in `/metrics`).
#[derive(Debug, Clone)]
pub struct HeadTimings {
    /// From receiving the report that completes a block (the last in-sync node reaching it)
    /// to the new view being published.
    pub update: Histogram,
    /// From the first node reporting a block to the served head reaching it: the cluster's
    /// spread as clients see it.
    pub trail: Histogram,
}

impl Default for HeadTimings {
    fn default() -> Self {
        Self {
            // 1 µs … ~33 ms
            update: Histogram::new(exponential_buckets(0.000_001, 2.0, 16)),
            // 1 ms … ~33 s
            trail: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

/// Observations and when each block was first reported (pruned as the served head passes),
/// and the fault reporting that compares consecutive views.
#[derive(Debug)]
struct Observed {
    nodes: Vec<NodeObservation>,
    first_seen: BTreeMap<u64, Instant>,
    health: Health,
}

/// Head and health state of every node.
#[derive(Debug)]
pub struct Tracker {
    /// Blocks a node may trail the highest node and stay in sync.
    max_lag: u64,
    /// Observations, one per node. A std Mutex: updates are short and never await.
    obs: Mutex<Observed>,
    /// Served-head latency.
    pub timings: HeadTimings,
    /// The published snapshot.
    view: ArcSwap<ClusterView>,
    /// The served head, for waiters (tests now, `newHeads` subscriptions later).
    served: watch::Sender<u64>,
    /// Bumped on every published view: calls that found no node wait on it.
    versions: watch::Sender<u64>,
    /// Node state changes and no-node episodes (also written by calls that wait).
    pub faults: FaultCounters,
    /// The highest served head it may publish (`u64::MAX`: no cap): set when a reload hands
    /// its nodes to a new tracker, so nothing it publishes afterwards is ahead of what the new
    /// one started from.
    cap: std::sync::atomic::AtomicU64,
}

impl Tracker {
    /// A tracker for the nodes named by `labels` (in logs and metrics), none seen yet.
    pub fn new(labels: Vec<String>, max_lag: u64) -> Self {
        Self::with_counters(labels, max_lag, HeadTimings::default(), FaultCounters::default())
    }

    /// ... observing into `timings` and `faults` (those of the tracker a reload replaces, so
    /// the series go on).
    pub fn with_counters(labels: Vec<String>, max_lag: u64, timings: HeadTimings, faults: FaultCounters) -> Self {
        let n = labels.len();
        let health = Health::with_counters(labels, faults);
        Self {
            max_lag,
            faults: health.counters.clone(),
            obs: Mutex::new(Observed {
                nodes: vec![NodeObservation::default(); n],
                first_seen: BTreeMap::new(),
                health,
            }),
            timings,
            view: ArcSwap::from_pointee(ClusterView::empty(n)),
            served: watch::channel(0).0,
            versions: watch::channel(0).0,
            cap: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// Stops the served head where it is (node states still change): a reload calls it before
    /// [`Tracker::carry_from`] on the tracker replacing this one.
    pub fn freeze(&self) {
        let _guard = self.obs.lock().unwrap_or_else(PoisonError::into_inner);
        self.cap
            .store(self.view.load().served_head, std::sync::atomic::Ordering::SeqCst);
    }

    /// Follows view publications (a counter): a call that found no node waits on it.
    pub fn watch_views(&self) -> watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// The current snapshot (an `Arc` clone: no lock).
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.load_full()
    }

    /// Follows the served head.
    pub fn subscribe_served(&self) -> watch::Receiver<u64> {
        self.served.subscribe()
    }

    /// A node reported its head.
    pub fn observe_head(&self, node: NodeId, head: u64, source: HeadSource) {
        self.observe_head_at(node, head, source, Instant::now());
    }

    /// [`Tracker::observe_head`] for a report received at `received`.
    pub fn observe_head_at(&self, node: NodeId, head: u64, source: HeadSource, received: Instant) {
        self.update(node, received, Some(head), |o| match source {
            HeadSource::Poll => {
                o.head = Some(head);
                o.down = false;
            }
            HeadSource::Subscription => {
                o.head = Some(o.head.map_or(head, |h| h.max(head)));
            }
        });
    }

    /// A node failed a probe, or a request to it could not connect; `reason` is logged when
    /// this takes the node down.
    pub fn observe_down(&self, node: NodeId, reason: &str) {
        self.update_with(node, Instant::now(), None, Some(reason), |o| o.down = true);
    }

    /// Starts from what `old` knows (a reload): for each of this tracker's nodes, the
    /// observation of the node `map` names in `old` (not its ejection), and never below
    /// `old`'s served head.
    pub fn carry_from(&self, old: &Tracker, map: &[Option<NodeId>]) {
        let (old_nodes, old_served) = {
            let o = old.obs.lock().unwrap_or_else(PoisonError::into_inner);
            (o.nodes.clone(), old.view().served_head)
        };
        let mut guard = self.obs.lock().unwrap_or_else(PoisonError::into_inner);
        for (mine, theirs) in guard.nodes.iter_mut().zip(map) {
            if let Some(o) = theirs.and_then(|t| old_nodes.get(t)) {
                *mine = NodeObservation { ejected: false, ..*o };
            }
        }
        let prev = self.view.load();
        let next = compute_view(prev.served_head.max(old_served), &guard.nodes, self.max_lag);
        let served = next.served_head;
        self.view.store(Arc::new(next));
        self.versions.send_modify(|v| *v = v.wrapping_add(1));
        self.served.send_replace(served);
    }

    /// Takes a node out of rotation (outlier ejection) or lets it back in.
    pub fn set_ejected(&self, node: NodeId, ejected: bool) {
        self.update(node, Instant::now(), None, |o| o.ejected = ejected);
    }

    fn update(&self, node: NodeId, received: Instant, head: Option<u64>, f: impl FnOnce(&mut NodeObservation)) {
        self.update_with(node, received, head, None, f);
    }

    fn update_with(
        &self,
        node: NodeId,
        received: Instant,
        head: Option<u64>,
        down_reason: Option<&str>,
        f: impl FnOnce(&mut NodeObservation),
    ) {
        let mut guard = self.obs.lock().unwrap_or_else(PoisonError::into_inner);
        let obs = &mut *guard;
        let Some(o) = obs.nodes.get_mut(node) else { return };
        let before = *o;
        f(o);
        if *o == before {
            return;
        }
        let prev = self.view.load();
        if let Some(h) = head.filter(|&h| h > prev.served_head) {
            // Bounded: only blocks above the served head are remembered, at most 1024.
            if obs.first_seen.len() < 1024 {
                obs.first_seen.entry(h).or_insert(received);
            }
        }
        let mut next = compute_view(prev.served_head, &obs.nodes, self.max_lag);
        let cap = self.cap.load(std::sync::atomic::Ordering::SeqCst);
        if next.served_head > cap {
            next.served_head = cap.max(prev.served_head);
        }
        if next != **prev {
            let served = next.served_head;
            obs.health.published(&prev, &next, down_reason.map(|r| (node, r)));
            // Stored under the lock, so views are published in the order they were computed.
            self.view.store(Arc::new(next));
            self.versions.send_modify(|v| *v = v.wrapping_add(1));
            if served != prev.served_head {
                self.served.send_replace(served);
                let now = Instant::now();
                self.timings.update.observe((now - received).as_secs_f64());
                if prev.served_head > 0 {
                    // The earliest report of any block up to the new served head.
                    let first = obs.first_seen.range(..=served).map(|(_, t)| *t).min();
                    if let Some(first) = first {
                        self.timings.trail.observe((now - first).as_secs_f64());
                    }
                }
                obs.first_seen = obs.first_seen.split_off(&(served + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeState;

    #[test]
    fn publishes_on_every_event() {
        let t = Tracker::new(vec!["a".into(), "b".into()], 3);
        let rx = t.subscribe_served();
        assert!(!t.view().any_in_sync());
        t.observe_head(0, 10, HeadSource::Poll);
        assert_eq!(t.view().served_head, 0, "waits for node 1's first probe");
        t.observe_head(1, 12, HeadSource::Poll);
        assert_eq!(t.view().served_head, 10);
        t.observe_head(0, 12, HeadSource::Subscription);
        assert_eq!(t.view().served_head, 12);
        assert_eq!(*rx.borrow(), 12);
        // A subscription never moves a head back nor revives a down node.
        t.observe_head(0, 11, HeadSource::Subscription);
        assert_eq!(t.view().nodes[0].head, 12);
        t.observe_down(0, "test");
        t.observe_head(0, 13, HeadSource::Subscription);
        assert_eq!(t.view().nodes[0].state, NodeState::Down);
        t.observe_head(0, 13, HeadSource::Poll);
        assert_eq!(t.view().nodes[0].state, NodeState::InSync);
        // Out-of-range ids are ignored, not a panic.
        t.observe_down(9, "test");
    }

    #[test]
    fn a_frozen_tracker_hands_over_a_served_head_the_new_one_never_goes_below() {
        let old = Tracker::new(vec!["a".into(), "b".into()], 3);
        old.observe_head(0, 10, HeadSource::Poll);
        old.observe_head(1, 10, HeadSource::Poll);
        old.freeze();
        old.observe_head(0, 12, HeadSource::Poll);
        old.observe_head(1, 12, HeadSource::Poll);
        assert_eq!(old.view().served_head, 10, "frozen");
        // The new one keeps b (now its node 0) and adds c.
        let new = Tracker::new(vec!["b".into(), "c".into()], 3);
        new.carry_from(&old, &[Some(1), None]);
        assert_eq!(new.view().served_head, 10);
        assert_eq!(new.view().nodes[0].head, 12);
        new.observe_head(1, 9, HeadSource::Poll);
        assert!(new.view().served_head >= 10);
    }
}
