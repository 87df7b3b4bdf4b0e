//! kengate-owned polling filters (`newFilter`, `newBlockFilter`,
//! `newPendingTransactionFilter`): their unread changes are buffered from the served-head
//! feed, so they survive any node and agree with `blockNumber`. Ids are random and scoped to
//! their owner; filters not polled for the idle timeout are removed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::filter::Criteria;
use super::{new_id, BlockEvent, Demand, Want};

/// What a filter collects.
#[derive(Debug)]
pub enum Kind {
    /// Hashes of new blocks.
    Blocks,
    /// Logs matching the criteria (the raw criteria kept for `getFilterLogs`).
    Logs(Box<Criteria>, String),
    /// Hashes of pending transactions.
    Pending,
}

impl Kind {
    pub(super) fn want(&self) -> Want {
        match self {
            Kind::Blocks => Want::Hashes,
            Kind::Logs(..) => Want::Logs,
            Kind::Pending => Want::Pending,
        }
    }
}

#[derive(Debug)]
struct Filter {
    owner: String,
    kind: Kind,
    /// Unread changes, JSON values.
    changes: VecDeque<Bytes>,
    last_poll: Instant,
}

/// The filters of one network. A std Mutex: every operation is short and never awaits.
#[derive(Debug, Default)]
pub struct Filters {
    map: Mutex<HashMap<String, Filter>>,
}

impl Filters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Filter>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of live filters.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// A new filter; returns its id. Its data kind's demand is raised first, so no block
    /// announced after this returns lacks what it needs.
    pub fn create(&self, kind: Kind, owner: &str, demand: &Demand, want: Want) -> String {
        if let Some(c) = demand.counter(want) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        let id = new_id();
        self.lock().insert(
            id.clone(),
            Filter {
                owner: owner.to_owned(),
                kind,
                changes: VecDeque::new(),
                last_poll: Instant::now(),
            },
        );
        id
    }

    /// Unread changes as a JSON array (emptied), if `id` is `owner`'s filter.
    pub fn changes(&self, id: &str, owner: &str) -> Option<String> {
        let mut m = self.lock();
        let f = m.get_mut(id).filter(|f| f.owner == owner)?;
        f.last_poll = Instant::now();
        let mut out = String::from("[");
        for (i, c) in f.changes.drain(..).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&String::from_utf8_lossy(&c));
        }
        out.push(']');
        Some(out)
    }

    /// A log filter's criteria, for `getFilterLogs`.
    pub fn criteria(&self, id: &str, owner: &str) -> Option<String> {
        let mut m = self.lock();
        let f = m.get_mut(id).filter(|f| f.owner == owner)?;
        f.last_poll = Instant::now();
        match &f.kind {
            Kind::Logs(_, raw) => Some(raw.clone()),
            // The node answers getFilterLogs of a block filter with "filter not found".
            _ => None,
        }
    }

    /// Removes `owner`'s filter; its data kind if it existed.
    pub fn remove(&self, id: &str, owner: &str) -> Option<Want> {
        let mut m = self.lock();
        match m.get(id) {
            Some(f) if f.owner == owner => m.remove(id).map(|f| f.kind.want()),
            _ => None,
        }
    }

    /// Buffers a block's changes into every filter (at most `max` unread per filter).
    pub fn ingest(&self, ev: &BlockEvent, max: usize) {
        let mut m = self.lock();
        for f in m.values_mut() {
            match &f.kind {
                Kind::Blocks => {
                    if let Some(h) = &ev.hash {
                        push(&mut f.changes, Bytes::from(format!("\"{h}\"")), max);
                    }
                }
                Kind::Logs(c, _) => {
                    for log in ev.logs.iter().flat_map(|l| l.iter()) {
                        if c.matches(ev.number, log) {
                            push(&mut f.changes, log.raw.clone(), max);
                        }
                    }
                }
                Kind::Pending => {}
            }
        }
    }

    /// Buffers a pending tx hash into every pending filter.
    pub fn ingest_pending(&self, hash: &str, max: usize) {
        let mut m = self.lock();
        for f in m.values_mut().filter(|f| matches!(f.kind, Kind::Pending)) {
            push(&mut f.changes, Bytes::from(format!("\"{hash}\"")), max);
        }
    }

    /// Removes filters idle for longer than `idle`; returns their owners and data kinds.
    pub fn sweep(&self, idle: Duration) -> Vec<(String, Want)> {
        let mut m = self.lock();
        let now = Instant::now();
        let dead: Vec<String> = m
            .iter()
            .filter(|(_, f)| now.duration_since(f.last_poll) > idle)
            .map(|(id, _)| id.clone())
            .collect();
        dead.iter()
            .filter_map(|id| m.remove(id))
            .map(|f| (f.owner, f.kind.want()))
            .collect()
    }
}

fn push(q: &mut VecDeque<Bytes>, v: Bytes, max: usize) {
    if q.len() >= max {
        q.pop_front();
    }
    q.push_back(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u64) -> BlockEvent {
        BlockEvent {
            number: n,
            hash: Some(format!("0x{n:064x}")),
            klay_header: None,
            eth_header: None,
            logs: None,
        }
    }

    #[test]
    fn changes_are_scoped_buffered_bounded_and_swept() {
        let f = Filters::default();
        let d = Demand::default();
        let id = f.create(Kind::Blocks, "k1", &d, Want::Hashes);
        assert_eq!(d.hashes.load(Ordering::SeqCst), 1);
        assert!(id.starts_with("0x") && id.len() == 34);
        for n in 1..=4 {
            f.ingest(&block(n), 3);
        }
        assert_eq!(f.changes(&id, "k2"), None, "another owner's filter is not found");
        let c = f.changes(&id, "k1").unwrap();
        assert_eq!(c.matches("0x").count(), 3, "bounded to the newest 3: {c}");
        assert!(c.contains(&format!("{:064x}", 4)));
        assert_eq!(f.changes(&id, "k1").unwrap(), "[]");
        assert_eq!(f.remove(&id, "k2"), None);
        assert_eq!(f.remove(&id, "k1"), Some(Want::Hashes));
        assert_eq!(f.remove(&id, "k1"), None);
        let id = f.create(Kind::Pending, "", &d, Want::Pending);
        f.ingest_pending("0xab", 10);
        assert_eq!(f.changes(&id, "").unwrap(), "[\"0xab\"]");
        assert!(f.sweep(Duration::from_secs(60)).is_empty());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(f.sweep(Duration::from_millis(1)), vec![(String::new(), Want::Pending)]);
        assert_eq!(f.len(), 0);
    }
}
