//! Request coalescing: identical reads in flight at the same time go upstream once. The
//! first caller (the leader) forwards; later ones wait for its outcome and answer from it.
//!
//! A leader that fails hands its error to every waiter. A leader that is cancelled (its
//! client went away) hands over nothing: its waiters are told so at once and forward on
//! their own — nobody hangs.

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::watch;

use super::cache::ReadKey;
use crate::jsonrpc::RpcError;

/// What a node answered, as JSON: a `result`, or the node's `error` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The `result` JSON.
    Result(Bytes),
    /// The node's `error` object JSON.
    Error(Bytes),
}

/// The outcome a leader shares: the node's answer, or kengate's error.
pub type Outcome = Result<Answer, RpcError>;

type Slot = watch::Receiver<Option<Outcome>>;

/// aHash: keys are client-chosen, so the hasher must resist collision flooding (random keys)
/// while costing far less than SipHash on the hot path.
type Flights = DashMap<ReadKey, Slot, ahash::RandomState>;

/// Reads in flight, by key.
#[derive(Debug, Default)]
pub struct Coalescer {
    flights: Flights,
}

/// A caller's part in a flight.
pub enum Role<'a> {
    /// Forward, then [`Leader::finish`].
    Leader(Leader<'a>),
    /// Wait for the leader with [`Waiter::wait`].
    Waiter(Waiter),
}

/// The caller that forwards. Dropping it unfinished releases its waiters.
pub struct Leader<'a> {
    key: ReadKey,
    tx: Option<watch::Sender<Option<Outcome>>>,
    flights: &'a Flights,
}

/// A caller waiting for a leader.
pub struct Waiter {
    rx: Slot,
}

impl Coalescer {
    /// Joins the flight for `key`, or starts it.
    pub fn join(&self, key: ReadKey) -> Role<'_> {
        match self.flights.entry(key.clone()) {
            Entry::Occupied(e) => Role::Waiter(Waiter { rx: e.get().clone() }),
            Entry::Vacant(e) => {
                let (tx, rx) = watch::channel(None);
                e.insert(rx);
                Role::Leader(Leader {
                    key,
                    tx: Some(tx),
                    flights: &self.flights,
                })
            }
        }
    }

    /// Flights in progress.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }
}

impl Leader<'_> {
    /// Shares the outcome with every waiter and ends the flight.
    pub fn finish(mut self, outcome: Outcome) {
        // Removed first: a caller arriving from now on starts a new flight (or hits the cache).
        self.flights.remove(&self.key);
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome));
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // Cancelled before finishing: end the flight; dropping the sender wakes the waiters.
            self.flights.remove(&self.key);
        }
    }
}

impl Waiter {
    /// The leader's outcome, or `None` when the leader was cancelled (forward yourself).
    pub async fn wait(mut self) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.rx.borrow_and_update().as_ref() {
                return Some(outcome.clone());
            }
            if self.rx.changed().await.is_err() {
                return self.rx.borrow().clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::cache::read_key;

    fn leader(r: Role<'_>) -> Leader<'_> {
        match r {
            Role::Leader(l) => l,
            Role::Waiter(_) => panic!("expected to lead"),
        }
    }

    fn waiter(r: Role<'_>) -> Waiter {
        match r {
            Role::Waiter(w) => w,
            Role::Leader(_) => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn waiters_share_the_leaders_answer() {
        let c = Coalescer::default();
        let k = read_key("klay_getBalance", "[\"0x1\",\"0x5\"]");
        let l = leader(c.join(k.clone()));
        let ws: Vec<_> = (0..3).map(|_| waiter(c.join(k.clone()))).collect();
        let tasks: Vec<_> = ws.into_iter().map(|w| tokio::spawn(w.wait())).collect();
        l.finish(Ok(Answer::Result(Bytes::from_static(b"\"0x10\""))));
        for t in tasks {
            assert_eq!(
                t.await.unwrap(),
                Some(Ok(Answer::Result(Bytes::from_static(b"\"0x10\""))))
            );
        }
        assert_eq!(c.in_flight(), 0);
        // The next caller starts a new flight.
        assert!(matches!(c.join(k), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_failing_leader_gives_every_waiter_the_error() {
        let c = Coalescer::default();
        let k = read_key("m", "[]");
        let l = leader(c.join(k.clone()));
        let w1 = tokio::spawn(waiter(c.join(k.clone())).wait());
        let w2 = tokio::spawn(waiter(c.join(k.clone())).wait());
        tokio::task::yield_now().await;
        l.finish(Err(RpcError::new(-32011, "upstream node 0 failed: timeout")));
        for w in [w1, w2] {
            let got = tokio::time::timeout(std::time::Duration::from_secs(1), w).await;
            assert_eq!(got.unwrap().unwrap().unwrap().unwrap_err().code, -32011);
        }
    }

    #[tokio::test]
    async fn a_cancelled_leader_releases_its_waiters() {
        let c = Coalescer::default();
        let k = read_key("m", "[]");
        let l = leader(c.join(k.clone()));
        let w = tokio::spawn(waiter(c.join(k.clone())).wait());
        tokio::task::yield_now().await;
        drop(l);
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), w).await;
        assert_eq!(got.unwrap().unwrap(), None);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_waiter_arriving_after_the_answer_still_gets_it() {
        let c = Coalescer::default();
        let k = read_key("m", "[]");
        let l = leader(c.join(k.clone()));
        let w = waiter(c.join(k.clone()));
        l.finish(Ok(Answer::Error(Bytes::from_static(b"{\"code\":-32000}"))));
        assert_eq!(
            w.wait().await,
            Some(Ok(Answer::Error(Bytes::from_static(b"{\"code\":-32000}"))))
        );
    }
}
