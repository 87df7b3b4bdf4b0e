//! Outlier ejection: a node whose error rate or latency over a sliding window stands out from
//! the other nodes' (not only one that refuses connections, which the probes already catch) is
//! taken out of rotation for a backoff period, then let back in if its probes look like the
//! others' again — else it stays out for twice as long. Never more than a set share of the
//! nodes at once, never the last node in sync.
//!
//! Every call to a node (probes included) is counted in the node's [`Outcomes`] with a few
//! relaxed atomics; the judging runs once a second off the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::view::NodeState;
use super::Cluster;
use crate::config::EjectionConfig;

/// Seconds in the sliding window (one bucket each).
const WINDOW: usize = 10;

/// Calls, failures and latency of one node over the last [`WINDOW`] seconds.
#[derive(Debug, Default)]
pub struct Outcomes {
    buckets: [Bucket; WINDOW],
}

#[derive(Debug, Default)]
struct Bucket {
    /// Which second (since the process's first call) the counts belong to.
    second: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
    /// Sum of latencies of successful calls, µs.
    latency_us: AtomicU64,
}

/// One node's window, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Calls answered or failed (refusals of the request itself not counted).
    pub calls: u64,
    /// Failed calls (transport errors, timeouts, 5xx, bad replies).
    pub errors: u64,
    /// Mean latency of the successful ones, µs (0 without any).
    pub mean_latency_us: u64,
}

impl Sample {
    fn error_percent(&self) -> u64 {
        (self.errors * 100).checked_div(self.calls).unwrap_or(0)
    }
}

fn second(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*START.get_or_init(Instant::now)).as_secs() + 1
}

impl Outcomes {
    /// Counts one call that ended at `at`: `latency` for a success, `None` for a failure.
    pub fn record(&self, at: Instant, latency: Option<Duration>) {
        let s = second(at);
        // `s % WINDOW` is always a slot of the window.
        let Some(b) = self.buckets.get((s % WINDOW as u64) as usize) else {
            return;
        };
        if b.second.load(Ordering::Relaxed) != s {
            // A new second in this slot: the first caller resets it (a racing count may be
            // lost or land in the old second; the judging is statistical).
            if b.second.swap(s, Ordering::Relaxed) != s {
                b.calls.store(0, Ordering::Relaxed);
                b.errors.store(0, Ordering::Relaxed);
                b.latency_us.store(0, Ordering::Relaxed);
            }
        }
        b.calls.fetch_add(1, Ordering::Relaxed);
        match latency {
            Some(d) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                b.latency_us.fetch_add(us, Ordering::Relaxed);
            }
            None => {
                b.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The window ending at `now`.
    pub fn sample(&self, now: Instant) -> Sample {
        let s = second(now);
        let (mut calls, mut errors, mut latency) = (0u64, 0u64, 0u64);
        for b in &self.buckets {
            let bs = b.second.load(Ordering::Relaxed);
            if bs == 0 || bs + (WINDOW as u64) <= s {
                continue;
            }
            calls += b.calls.load(Ordering::Relaxed);
            errors += b.errors.load(Ordering::Relaxed);
            latency = latency.saturating_add(b.latency_us.load(Ordering::Relaxed));
        }
        let ok = calls.saturating_sub(errors);
        Sample {
            calls,
            errors,
            mean_latency_us: latency.checked_div(ok).unwrap_or(0),
        }
    }
}

/// Why a node stands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outlier {
    /// Its error rate.
    Errors,
    /// Its latency.
    Latency,
}

impl Outlier {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outlier::Errors => "errors",
            Outlier::Latency => "latency",
        }
    }
}

/// Whether node `i` stands out from the others (pure: samples in, verdict out). The others are
/// the nodes in `peers` with enough calls to judge by; without any, nothing stands out.
pub fn stands_out(i: usize, samples: &[Sample], peers: &[usize], cfg: &EjectionConfig) -> Option<Outlier> {
    let me = samples.get(i)?;
    if me.calls < cfg.min_calls {
        return None;
    }
    let others: Vec<&Sample> = peers
        .iter()
        .filter(|&&p| p != i)
        .filter_map(|&p| samples.get(p))
        .filter(|s| s.calls >= cfg.min_calls)
        .collect();
    if others.is_empty() {
        return None;
    }
    // `others` is not empty, so neither is a median's input.
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    };
    let their_errors = median(others.iter().map(|s| s.error_percent()).collect())?;
    if me.error_percent() >= cfg.error_percent && their_errors * 2 < me.error_percent() {
        return Some(Outlier::Errors);
    }
    let their_latency = median(others.iter().map(|s| s.mean_latency_us).collect())?;
    let floor = cfg.min_latency_ms * 1000;
    if me.mean_latency_us >= floor && me.mean_latency_us >= their_latency.saturating_mul(cfg.latency_factor) {
        return Some(Outlier::Latency);
    }
    None
}

/// One node's ejection state (kept by the ejector task).
#[derive(Debug, Clone, Copy, Default)]
struct Ejection {
    /// Out until then.
    until: Option<Instant>,
    /// Consecutive ejections (the backoff doubles with each).
    strikes: u32,
}

/// Judges the nodes once a second and ejects / readmits them through the tracker.
pub fn spawn(cluster: &Arc<Cluster>, cfg: EjectionConfig) -> Option<JoinHandle<()>> {
    if !cfg.enabled || cluster.nodes.len() < 2 {
        return None;
    }
    let cluster = cluster.clone();
    Some(tokio::spawn(async move {
        let mut state = vec![Ejection::default(); cluster.nodes.len()];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            judge(&cluster, &cfg, &mut state, Instant::now());
        }
    }))
}

fn judge(cluster: &Cluster, cfg: &EjectionConfig, state: &mut [Ejection], now: Instant) {
    let samples: Vec<Sample> = cluster.nodes.iter().map(|n| n.outcomes.sample(now)).collect();
    let view = cluster.view();
    let serving = |id: usize| view.nodes.get(id).is_some_and(|n| n.is_up());
    let peers: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| serving(i)).collect();
    let max_out = (cluster.nodes.len() * usize::from(cfg.max_ejected_percent) / 100).max(1);
    // Readmission first: a node whose backoff is over comes back unless its probes still
    // stand out (then it stays out, twice as long).
    for (id, (e, node)) in state.iter_mut().zip(&cluster.nodes).enumerate() {
        let Some(until) = e.until else { continue };
        if now < until {
            continue;
        }
        let name = &node.name;
        match stands_out(id, &samples, &peers, cfg) {
            Some(why) => {
                e.strikes = e.strikes.saturating_add(1);
                let off = backoff(cfg, e.strikes);
                e.until = Some(now + off);
                tracing::warn!(node = %name, reason = why.as_str(), out_for_ms = off.as_millis() as u64, "node still stands out; kept out of rotation");
            }
            None => {
                e.until = None;
                cluster.tracker.set_ejected(id, false);
                tracing::info!(node = %name, "node no longer stands out; back in rotation");
            }
        }
    }
    // Nodes out of rotation, kept current as this pass ejects more.
    let mut out = state.iter().filter(|e| e.until.is_some()).count();
    for (id, ((e, node), s)) in state.iter_mut().zip(&cluster.nodes).zip(&samples).enumerate() {
        if e.until.is_some() || !serving(id) {
            // A node that just came back keeps its strikes until it has a clean window.
            if e.until.is_none() && s.calls >= cfg.min_calls {
                e.strikes = 0;
            }
            continue;
        }
        let Some(why) = stands_out(id, &samples, &peers, cfg) else {
            if s.calls >= cfg.min_calls {
                e.strikes = 0;
            }
            continue;
        };
        let view = cluster.view();
        let others_in_sync = view
            .nodes
            .iter()
            .enumerate()
            .any(|(i, n)| i != id && n.state == NodeState::InSync);
        if out >= max_out || !others_in_sync {
            tracing::debug!(node = %node.name, reason = why.as_str(), "node stands out but may not be ejected now (cluster.ejection.max_ejected_percent, or no other node in sync)");
            continue;
        }
        e.strikes = e.strikes.saturating_add(1);
        let off = backoff(cfg, e.strikes);
        e.until = Some(now + off);
        out += 1;
        cluster.tracker.set_ejected(id, true);
        cluster.tracker.faults.ejected(&node.name, why.as_str());
        tracing::warn!(
            node = %node.name, reason = why.as_str(), calls = s.calls, errors = s.errors,
            latency_ms = s.mean_latency_us / 1000, out_for_ms = off.as_millis() as u64,
            "node stands out from the others: out of rotation"
        );
    }
}

fn backoff(cfg: &EjectionConfig, strikes: u32) -> Duration {
    let base = cfg.base_ms.saturating_mul(1u64 << strikes.saturating_sub(1).min(16));
    Duration::from_millis(base.min(cfg.max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EjectionConfig {
        EjectionConfig::default()
    }

    fn s(calls: u64, errors: u64, ms: u64) -> Sample {
        Sample {
            calls,
            errors,
            mean_latency_us: ms * 1000,
        }
    }

    #[test]
    fn errors_and_latency_stand_out_only_against_the_others() {
        let all = [0, 1, 2];
        let samples = [s(100, 60, 2), s(100, 1, 2), s(100, 0, 3)];
        assert_eq!(stands_out(0, &samples, &all, &cfg()), Some(Outlier::Errors));
        assert_eq!(stands_out(1, &samples, &all, &cfg()), None);
        // Everyone failing alike: nothing stands out (the cluster, not a node, is sick).
        let samples = [s(100, 60, 2), s(100, 55, 2), s(100, 70, 3)];
        assert_eq!(stands_out(0, &samples, &all, &cfg()), None);
        // Slow: many times the others' latency and above the floor.
        let samples = [s(40, 0, 400), s(100, 0, 2), s(100, 0, 3)];
        assert_eq!(stands_out(0, &samples, &all, &cfg()), Some(Outlier::Latency));
        // Slower, but fast in absolute terms: not an outlier.
        let samples = [s(40, 0, 20), s(100, 0, 1), s(100, 0, 1)];
        assert_eq!(stands_out(0, &samples, &all, &cfg()), None);
        // Too few calls to judge, or no peer to compare with.
        let samples = [s(5, 5, 2), s(100, 0, 2)];
        assert_eq!(stands_out(0, &samples, &[0, 1], &cfg()), None);
        let samples = [s(100, 90, 2), s(100, 0, 2)];
        assert_eq!(stands_out(0, &samples, &[0], &cfg()), None);
    }

    #[test]
    fn the_window_slides() {
        let o = Outcomes::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            o.record(t0, Some(Duration::from_millis(4)));
        }
        o.record(t0, None);
        let now = o.sample(t0);
        assert_eq!((now.calls, now.errors, now.mean_latency_us), (11, 1, 4000));
        assert_eq!(o.sample(t0 + Duration::from_secs(WINDOW as u64 + 1)), Sample::default());
        o.record(t0 + Duration::from_secs(WINDOW as u64 + 1), None);
        assert_eq!(o.sample(t0 + Duration::from_secs(WINDOW as u64 + 1)).calls, 1);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = cfg();
        assert_eq!(backoff(&c, 1), Duration::from_millis(c.base_ms));
        assert_eq!(backoff(&c, 2), Duration::from_millis(c.base_ms * 2));
        assert_eq!(backoff(&c, 40), Duration::from_millis(c.max_ms));
    }
}
