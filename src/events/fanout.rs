//! The live subscriptions of one network and the fan-out to them: the feed hands each block
//! (and the pending watcher each new pending hash) to [`Subscribers`] once, which writes every
//! matching notification straight into its connection's bounded send queue. No task per
//! subscription: one pass over the live subscriptions per event, in the feed's order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::filter::Criteria;
use super::{BlockEvent, EventCounters, Hub, Ns, Want};

/// Why a connection must be closed: a WebSocket close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    /// 1008 (policy violation): the subscriber did not keep up.
    pub code: u16,
    /// Human-readable reason, sent in the close frame.
    pub reason: String,
}

/// What a subscription delivers.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    Heads(Ns),
    Logs(Box<Criteria>),
    Pending,
    Syncing,
}

impl Kind {
    /// The demand counter it holds (what the feed must fetch for it).
    pub(super) fn want(&self) -> Want {
        match self {
            Kind::Heads(Ns::Eth) => Want::EthHeads,
            Kind::Heads(_) => Want::KlayHeads,
            Kind::Logs(_) => Want::Logs,
            Kind::Pending => Want::Pending,
            Kind::Syncing => Want::Nothing,
        }
    }
}

/// One connection's way out, shared by its subscriptions.
#[derive(Debug)]
pub(super) struct Conn {
    /// The connection's send queue (bounded: `events.send_queue`).
    pub(super) out: mpsc::Sender<Bytes>,
    /// Set when the connection must close.
    pub(super) overflow: watch::Sender<Option<Overflow>>,
}

impl Conn {
    /// Queues one message; false when the connection takes no more (full: it is told to close).
    fn send(&self, m: Vec<u8>, queue: usize, counters: &EventCounters) -> bool {
        match self.out.try_send(Bytes::from(m)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.send_if_modified(|o| {
                    if o.is_some() {
                        return false;
                    }
                    // Counted before the connection hears of it (and closes).
                    counters.slow_closes.inc();
                    *o = Some(Overflow {
                        code: 1008,
                        reason: format!("subscriber too slow: more than events.send_queue = {queue} messages queued"),
                    });
                    true
                });
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the connection was told to close (nothing more is queued for it).
    fn closing(&self) -> bool {
        self.overflow.borrow().is_some()
    }
}

/// One live subscription.
#[derive(Debug)]
pub(super) struct Sub {
    /// Its id (`0x` + 32 hex digits).
    pub(super) id: String,
    /// Its key in [`Subscribers`].
    pub(super) key: u64,
    pub(super) ns: Ns,
    pub(super) kind: Kind,
    pub(super) conn: Arc<Conn>,
    /// Set at its first block that carried its data kind (blocks decided before its demand
    /// counted lack it: they are before its start).
    started: AtomicBool,
    /// Releases its demand and owner count when the last reference goes.
    guard: Guard,
}

impl Sub {
    pub(super) fn new(hub: &Arc<Hub>, id: String, ns: Ns, kind: Kind, conn: Arc<Conn>, owner: &str) -> Sub {
        let want = kind.want();
        // Demand first: every block decided after this carries the data.
        if let Some(c) = hub.demand.counter(want) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        hub.counters.subscriptions.inc();
        Sub {
            id,
            key: hub.subscribers.next.fetch_add(1, Ordering::Relaxed),
            ns,
            kind,
            conn,
            started: AtomicBool::new(false),
            guard: Guard {
                hub: hub.clone(),
                want,
                owner: owner.to_owned(),
            },
        }
    }

    /// The hub it belongs to.
    pub(super) fn hub(&self) -> &Arc<Hub> {
        &self.guard.hub
    }
}

/// Releases a subscription's demand and its owner's count.
#[derive(Debug)]
struct Guard {
    hub: Arc<Hub>,
    want: Want,
    owner: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.hub.demand.counter(self.want) {
            c.fetch_sub(1, Ordering::SeqCst);
        }
        self.hub.release(&self.owner);
        self.hub.counters.subscriptions.dec();
    }
}

/// The live subscriptions of one network (those whose id reply is queued).
#[derive(Debug, Default)]
pub(super) struct Subscribers {
    /// A std Mutex: held for one fan-out pass (no `.await` inside), an insert or a removal.
    live: Mutex<HashMap<u64, Arc<Sub>>>,
    next: AtomicU64,
}

impl Subscribers {
    pub(super) fn add(&self, sub: Arc<Sub>) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sub.key, sub);
    }

    pub(super) fn remove(&self, key: u64) -> Option<Arc<Sub>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&key)
    }

    /// Queues block `ev`'s notifications: `newHeads` in each namespace, the matching logs.
    pub(super) fn block(&self, ev: &BlockEvent, queue: usize, counters: &EventCounters) {
        let mut sent = 0u64;
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        for sub in live.values() {
            if sub.conn.closing() {
                continue;
            }
            match &sub.kind {
                Kind::Heads(ns) => {
                    let header = if *ns == Ns::Eth {
                        &ev.eth_header
                    } else {
                        &ev.klay_header
                    };
                    let Some(h) = header else { continue };
                    if sub.conn.send(notification(sub, h), queue, counters) {
                        sent += 1;
                    }
                }
                Kind::Logs(c) => {
                    let Some(logs) = &ev.logs else {
                        if sub.started.load(Ordering::Relaxed) {
                            tracing::warn!(block = ev.number, "a block without logs reached a logs subscription");
                        }
                        continue;
                    };
                    sub.started.store(true, Ordering::Relaxed);
                    for log in logs.iter().filter(|l| c.matches(ev.number, l)) {
                        if !sub.conn.send(notification(sub, &log.raw), queue, counters) {
                            break;
                        }
                        sent += 1;
                    }
                }
                Kind::Pending | Kind::Syncing => {}
            }
        }
        counters.notifications.inc_by(sent);
    }

    /// Queues a new pending transaction hash to `newPendingTransactions` subscribers.
    pub(super) fn pending(&self, hash: &str, queue: usize, counters: &EventCounters) {
        let result = format!("\"{hash}\"");
        let mut sent = 0u64;
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        for sub in live.values() {
            if matches!(sub.kind, Kind::Pending)
                && !sub.conn.closing()
                && sub.conn.send(notification(sub, result.as_bytes()), queue, counters)
            {
                sent += 1;
            }
        }
        counters.notifications.inc_by(sent);
    }
}

/// `{"jsonrpc":"2.0","method":"<ns>_subscription","params":{"subscription":"<id>","result":…}}`,
/// in the field order a node uses.
fn notification(sub: &Sub, result: &[u8]) -> Vec<u8> {
    let method: &[u8] = match sub.ns {
        Ns::Klay => b"klay_subscription",
        Ns::Kaia => b"kaia_subscription",
        Ns::Eth => b"eth_subscription",
    };
    let mut m = Vec::with_capacity(80 + method.len() + sub.id.len() + result.len());
    m.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"");
    m.extend_from_slice(method);
    m.extend_from_slice(b"\",\"params\":{\"subscription\":\"");
    m.extend_from_slice(sub.id.as_bytes());
    m.extend_from_slice(b"\",\"result\":");
    m.extend_from_slice(result);
    m.extend_from_slice(b"}}");
    m
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use prometheus_client::registry::Registry;
    use serde_json::Value;

    use super::*;
    use crate::config::EventsConfig;
    use crate::events::{Fetch, Session};

    struct NoFetch;

    impl Fetch for NoFetch {
        fn call(&self, _: &'static str, _: String) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + '_>> {
            Box::pin(async { Err("no node in a unit test".to_owned()) })
        }
        fn served(&self) -> watch::Receiver<u64> {
            watch::channel(0).1
        }
        fn dialect(&self) -> crate::methods::Dialect {
            crate::methods::Dialect::Klaytn
        }
    }

    fn hub() -> Arc<Hub> {
        Hub::new(
            EventsConfig::default(),
            Arc::new(NoFetch),
            Vec::new(),
            &mut Registry::default(),
        )
    }

    fn block(n: u64) -> BlockEvent {
        BlockEvent {
            number: n,
            hash: None,
            klay_header: Some(Bytes::from(format!("{{\"number\":\"{n:#x}\"}}"))),
            eth_header: None,
            logs: None,
        }
    }

    fn subscribe(hub: &Arc<Hub>, s: &Session) -> String {
        let id = s.subscribe(hub, Ns::Kaia, &["\"newHeads\""], "").unwrap();
        serde_json::from_str(&id).unwrap()
    }

    #[test]
    fn a_subscription_hears_of_blocks_after_its_id_reply_until_it_unsubscribes() {
        let hub = hub();
        let (tx, mut rx) = mpsc::channel(8);
        let (s, _) = Session::new(tx, 10);
        let id = subscribe(&hub, &s);
        assert!(
            hub.demand.wants(Want::KlayHeads),
            "demand counts from the subscribe call"
        );
        hub.subscribers.block(&block(1), 8, &hub.counters);
        assert!(rx.try_recv().is_err(), "nothing before the id reply is queued");
        s.replies_sent();
        hub.subscribers.block(&block(2), 8, &hub.counters);
        let m: Value = serde_json::from_slice(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            m,
            serde_json::json!({"jsonrpc": "2.0", "method": "kaia_subscription",
                "params": {"subscription": id, "result": {"number": "0x2"}}})
        );
        assert!(s.unsubscribe(&id));
        assert!(!s.unsubscribe(&id));
        hub.subscribers.block(&block(3), 8, &hub.counters);
        assert!(rx.try_recv().is_err(), "nothing after unsubscribe");
        assert!(!hub.demand.wants(Want::KlayHeads), "demand released");
    }

    #[test]
    fn a_subscription_removed_before_its_reply_never_joins_and_a_session_takes_its_own_along() {
        let hub = hub();
        let (tx, mut rx) = mpsc::channel(8);
        let (s, _) = Session::new(tx, 10);
        let gone = subscribe(&hub, &s);
        let _kept = subscribe(&hub, &s);
        assert!(s.unsubscribe(&gone));
        s.replies_sent();
        hub.subscribers.block(&block(1), 8, &hub.counters);
        assert!(rx.try_recv().is_ok());
        assert!(
            rx.try_recv().is_err(),
            "one notification: the unsubscribed one never joined"
        );
        drop(s);
        assert!(hub.subscribers.live.lock().unwrap().is_empty());
        assert!(!hub.demand.wants(Want::KlayHeads));
    }

    #[test]
    fn a_full_queue_closes_its_connection_once_and_others_keep_receiving() {
        let hub = hub();
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let (slow, overflow) = Session::new(slow_tx, 10);
        let (tx, mut rx) = mpsc::channel(8);
        let (fast, _) = Session::new(tx, 10);
        subscribe(&hub, &slow);
        subscribe(&hub, &fast);
        slow.replies_sent();
        fast.replies_sent();
        for n in 1..=3 {
            hub.subscribers.block(&block(n), 1, &hub.counters);
            assert!(rx.try_recv().is_ok(), "block {n} reached the fast subscriber");
        }
        let o = overflow.borrow().clone().expect("told to close");
        assert_eq!(o.code, 1008);
        assert!(o.reason.contains("events.send_queue = 1"), "{}", o.reason);
        assert_eq!(hub.counters.slow_closes.get(), 1);
    }
}
