//! Per-sender submission state: txs of one sender are forwarded one at a time in nonce
//! order (a nonce ahead of the next expected waits, bounded, for the gap to fill; different
//! senders never wait on each other); the next nonce backs read-your-writes; unmined raw txs
//! are kept so they can be re-submitted when the sender's home node fails.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};
use tokio::time::Instant;

use crate::cluster::NodeId;

/// A 20-byte account address.
pub type Addr = [u8; 20];

/// A tx kengate forwarded and has not yet seen mined.
#[derive(Debug, Clone)]
pub struct Kept {
    /// Its hash.
    pub hash: [u8; 32],
    /// The upstream request that submitted it, for re-submission as is.
    pub body: Bytes,
    /// The node that accepted it (`usize::MAX` when unknown, e.g. restored after a restart).
    pub node: NodeId,
    /// Already recorded as seen in a node's pool.
    pub pending_seen: bool,
}

/// What kengate knows of one sender, guarded by its turn.
#[derive(Debug, Default)]
pub struct SenderState {
    /// Unmined txs by nonce.
    pub unmined: BTreeMap<u64, Kept>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The turn: held while a tx of this sender is in flight (a tokio Mutex on purpose: it
    /// is held across the upstream call, which is the one-in-flight rule).
    turn: Arc<Mutex<SenderState>>,
    /// Woken when a turn ends, so a tx waiting for a nonce gap re-checks.
    moved: Notify,
    /// Highest nonce forwarded + 1; 0 = none yet. Read without the turn for read-your-writes.
    next: AtomicU64,
}

/// All senders seen.
#[derive(Debug)]
pub struct Senders {
    slots: DashMap<Addr, Arc<Slot>>,
    /// Hashes of txs forwarded and not yet seen mined → the node that accepted them, so
    /// lookups of them go there first (other nodes may not have the tx yet).
    recent: moka::sync::Cache<[u8; 32], NodeId>,
    /// How long a tx whose nonce is ahead of the next expected waits for the gap.
    gap_wait: Duration,
}

/// A sender's turn: its state, exclusively, until dropped.
#[derive(Debug)]
pub struct Turn {
    guard: OwnedMutexGuard<SenderState>,
    slot: Arc<Slot>,
}

impl Turn {
    /// Records that `nonce` was accepted by `node`.
    pub fn forwarded(&mut self, nonce: u64, kept: Kept) {
        self.slot.next.fetch_max(nonce.saturating_add(1), Ordering::Relaxed);
        self.guard.unmined.insert(nonce, kept);
    }
}

impl Deref for Turn {
    type Target = SenderState;
    fn deref(&self) -> &SenderState {
        &self.guard
    }
}

impl DerefMut for Turn {
    fn deref_mut(&mut self) -> &mut SenderState {
        &mut self.guard
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Runs before the guard is released; woken waiters then queue on the mutex.
        self.slot.moved.notify_waiters();
    }
}

impl Senders {
    /// A registry with the given gap wait.
    pub fn new(gap_wait: Duration) -> Self {
        Self {
            slots: DashMap::new(),
            recent: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            gap_wait,
        }
    }

    fn slot(&self, sender: &Addr) -> Arc<Slot> {
        self.slots.entry(*sender).or_default().clone()
    }

    /// Waits for `nonce`'s turn: immediately when no tx of this sender is in flight and the
    /// nonce is not ahead of the next expected; for a gap, until it fills or `gap_wait` passes
    /// (then the tx goes anyway and the node queues it).
    pub async fn turn(&self, sender: &Addr, nonce: u64) -> Turn {
        let slot = self.slot(sender);
        let deadline = Instant::now() + self.gap_wait;
        loop {
            let moved = slot.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let guard = slot.turn.clone().lock_owned().await;
            let next = slot.next.load(Ordering::Relaxed);
            if next == 0 || nonce <= next || Instant::now() >= deadline {
                return Turn {
                    guard,
                    slot: slot.clone(),
                };
            }
            drop(guard);
            let _ = tokio::time::timeout_at(deadline, moved).await;
        }
    }

    /// The sender's state for maintenance (re-submission, pruning), without nonce rules.
    pub async fn lock(&self, sender: &Addr) -> Turn {
        let slot = self.slot(sender);
        let guard = slot.turn.clone().lock_owned().await;
        Turn { guard, slot }
    }

    /// Remembers that `node` accepted the tx `hash`.
    pub fn remember(&self, hash: [u8; 32], node: NodeId) {
        self.recent.insert(hash, node);
    }

    /// The node that accepted a tx kengate forwarded and has not seen mined.
    pub fn sent_via(&self, hash: &[u8; 32]) -> Option<NodeId> {
        self.recent.get(hash)
    }

    /// The tx is mined: lookups may go anywhere again.
    pub fn forget(&self, hash: &[u8; 32]) {
        self.recent.invalidate(hash);
    }

    /// The next nonce implied by what kengate forwarded (highest + 1), if any.
    pub fn next_nonce(&self, sender: &Addr) -> Option<u64> {
        let n = self.slots.get(sender)?.next.load(Ordering::Relaxed);
        (n > 0).then_some(n)
    }

    /// Senders with unmined txs kept (a snapshot of keys; maintenance only).
    pub fn all(&self) -> Vec<Addr> {
        self.slots.iter().map(|e| *e.key()).collect()
    }

    /// Forgets senders with nothing unmined and no turn held (bounded memory).
    pub fn prune(&self) {
        self.slots.retain(|_, slot| match slot.turn.try_lock() {
            Ok(st) => !st.unmined.is_empty(),
            Err(_) => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> Kept {
        Kept {
            hash: [0; 32],
            body: Bytes::new(),
            node: 0,
            pending_seen: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_nonce_gap_waits_for_the_missing_tx() {
        let s = Arc::new(Senders::new(Duration::from_secs(2)));
        let a = [1u8; 20];
        let mut t = s.turn(&a, 5).await;
        t.forwarded(5, kept());
        drop(t);
        assert_eq!(s.next_nonce(&a), Some(6));

        // nonce 7 arrives before 6: it waits; 6 goes first.
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s2, o2) = (s.clone(), order.clone());
        let late = tokio::spawn(async move {
            let mut t = s2.turn(&a, 7).await;
            o2.lock().unwrap().push(7);
            t.forwarded(7, kept());
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut t = s.turn(&a, 6).await;
        order.lock().unwrap().push(6);
        t.forwarded(6, kept());
        drop(t);
        late.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![6, 7]);
        assert_eq!(s.next_nonce(&a), Some(8));
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_that_never_fills_times_out() {
        let s = Senders::new(Duration::from_secs(2));
        let a = [2u8; 20];
        s.turn(&a, 0).await.forwarded(0, kept());
        let started = Instant::now();
        let _t = s.turn(&a, 9).await;
        assert!(started.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn senders_do_not_wait_on_each_other() {
        let s = Senders::new(Duration::from_secs(60));
        let (a, b) = ([3u8; 20], [4u8; 20]);
        let _held = s.turn(&a, 0).await;
        let started = Instant::now();
        let _other = s.turn(&b, 0).await;
        assert!(started.elapsed() < Duration::from_millis(1));
        assert_eq!(s.next_nonce(&b), None);
    }

    #[tokio::test]
    async fn prune_keeps_senders_with_unmined_txs() {
        let s = Senders::new(Duration::from_secs(1));
        s.turn(&[5; 20], 0).await.forwarded(0, kept());
        drop(s.turn(&[6; 20], 0).await);
        s.prune();
        assert_eq!(s.all(), vec![[5; 20]]);
    }
}
