//! One WebSocket connection's subscriptions: a task per subscription turns feed events into
//! notifications on the connection's bounded send queue. A subscriber that lets the queue
//! fill is disconnected (the connection is told why), so memory never grows with a slow
//! reader and other subscribers never wait for it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::filter::Criteria;
use super::{invalid, new_id, BlockEvent, Hub, Ns, Want};
use crate::jsonrpc::{codes, RpcError};

/// Why a connection must be closed: a WebSocket close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    /// 1008 (policy violation): the subscriber did not keep up.
    pub code: u16,
    /// Human-readable reason, sent in the close frame.
    pub reason: String,
}

/// The subscriptions of one connection.
#[derive(Debug)]
pub struct Session {
    /// The connection's send queue (bounded: `events.send_queue`).
    out: mpsc::Sender<Bytes>,
    /// Subscription id → its task. A std Mutex: never held across `.await`.
    subs: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Subscriptions whose id reply has not been queued yet: they hold their first
    /// notification until it is (see [`Session::replies_sent`]).
    unannounced: Mutex<Vec<oneshot::Sender<()>>>,
    /// Set when the connection must close.
    overflow: watch::Sender<Option<Overflow>>,
    max_subscriptions: usize,
}

/// What a subscription delivers.
#[derive(Debug, Clone)]
enum Kind {
    Heads(Ns),
    Logs(Box<Criteria>),
    Pending,
    Syncing,
}

impl Session {
    /// A session sending on `out`; the receiver tells the connection when to close.
    pub fn new(out: mpsc::Sender<Bytes>, max_subscriptions: usize) -> (Session, watch::Receiver<Option<Overflow>>) {
        let (overflow, rx) = watch::channel(None);
        (
            Session {
                out,
                subs: Mutex::new(HashMap::new()),
                unannounced: Mutex::new(Vec::new()),
                overflow,
                max_subscriptions,
            },
            rx,
        )
    }

    /// The connection queued replies: subscriptions created by them may start notifying
    /// (their id reached the client first).
    pub fn replies_sent(&self) {
        let waiting: Vec<_> = std::mem::take(&mut *self.unannounced.lock().unwrap_or_else(PoisonError::into_inner));
        for w in waiting {
            let _ = w.send(());
        }
    }

    /// Live subscriptions.
    pub fn len(&self) -> usize {
        self.subs.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn subscribe(
        &self,
        hub: &Arc<Hub>,
        ns: Ns,
        args: &[&RawValue],
        owner: &str,
    ) -> Result<String, RpcError> {
        let name = args
            .first()
            .and_then(|a| serde_json::from_str::<String>(a.get()).ok())
            .ok_or_else(|| invalid("expected subscription name as first argument"))?;
        let kind = match name.as_str() {
            "newHeads" => Kind::Heads(ns),
            "logs" => Kind::Logs(Box::new(match args.get(1) {
                Some(c) => Criteria::parse(c.get()).map_err(|e| invalid(&format!("invalid argument 1: {e}")))?,
                None => Criteria::default(),
            })),
            "newPendingTransactions" => Kind::Pending,
            "syncing" => Kind::Syncing,
            other => {
                return Err(RpcError::new(
                    codes::METHOD_NOT_FOUND,
                    format!(
                        "no {:?} subscription in {} namespace",
                        crate::jsonrpc::clip(other),
                        ns.prefix()
                    ),
                ))
            }
        };
        if self.len() >= self.max_subscriptions {
            return Err(RpcError::new(
                codes::LIMIT_EXCEEDED,
                format!(
                    "too many subscriptions on this connection (events.max_subscriptions_per_connection = {})",
                    self.max_subscriptions
                ),
            ));
        }
        hub.reserve(owner)?;
        let want = match &kind {
            Kind::Heads(Ns::Eth) => Want::EthHeads,
            Kind::Heads(_) => Want::KlayHeads,
            Kind::Logs(_) => Want::Logs,
            Kind::Pending => Want::Pending,
            Kind::Syncing => Want::Nothing,
        };
        // Demand first, then the receiver: every block decided after this carries the data.
        if let Some(c) = hub.demand.counter(want) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        let guard = Guard {
            hub: hub.clone(),
            want,
            owner: owner.to_owned(),
        };
        hub.counters.subscriptions.inc();
        let id = new_id();
        let (go, start) = oneshot::channel();
        self.unannounced.lock().unwrap_or_else(PoisonError::into_inner).push(go);
        let sub = Sub {
            id: id.clone(),
            method: format!("{}_subscription", ns.prefix()),
            out: self.out.clone(),
            overflow: self.overflow.clone(),
            hub: hub.clone(),
        };
        let blocks = hub.blocks.subscribe();
        let pending = hub.pending.subscribe();
        let task = tokio::spawn(async move {
            let _guard = guard;
            // The id reply goes first (the receivers above already hold every later event).
            let _ = start.await;
            match kind {
                Kind::Pending => sub.pending(pending).await,
                Kind::Syncing => std::future::pending().await,
                kind => sub.blocks(blocks, kind).await,
            }
        });
        self.subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), task);
        Ok(format!("\"{id}\""))
    }

    pub(super) fn unsubscribe(&self, id: &str) -> bool {
        match self.subs.lock().unwrap_or_else(PoisonError::into_inner).remove(id) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (_, task) in self.subs.lock().unwrap_or_else(PoisonError::into_inner).drain() {
            task.abort();
        }
    }
}

/// Releases a subscription's demand and its owner's count when its task ends.
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

/// One subscription's delivery loop.
struct Sub {
    id: String,
    method: String,
    out: mpsc::Sender<Bytes>,
    overflow: watch::Sender<Option<Overflow>>,
    hub: Arc<Hub>,
}

impl Sub {
    /// Queues one notification; false when the connection must stop receiving.
    fn notify(&self, result: &[u8]) -> bool {
        let mut m = Vec::with_capacity(80 + self.method.len() + self.id.len() + result.len());
        m.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"");
        m.extend_from_slice(self.method.as_bytes());
        m.extend_from_slice(b"\",\"params\":{\"subscription\":\"");
        m.extend_from_slice(self.id.as_bytes());
        m.extend_from_slice(b"\",\"result\":");
        m.extend_from_slice(result);
        m.extend_from_slice(b"}}");
        match self.out.try_send(Bytes::from(m)) {
            Ok(()) => {
                self.hub.counters.notifications.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.too_slow();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn too_slow(&self) {
        let first = self.overflow.send_if_modified(|o| {
            if o.is_some() {
                return false;
            }
            *o = Some(Overflow {
                code: 1008,
                reason: format!(
                    "subscriber too slow: more than events.send_queue = {} messages queued",
                    self.hub.cfg.send_queue
                ),
            });
            true
        });
        if first {
            self.hub.counters.slow_closes.inc();
        }
    }

    async fn blocks(&self, mut rx: tokio::sync::broadcast::Receiver<Arc<BlockEvent>>, kind: Kind) {
        // Blocks decided before this subscription's demand counted lack its data: they are
        // before its start. From its first complete block on, every block has it.
        let mut started = false;
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => return self.too_slow(),
                Err(RecvError::Closed) => return,
            };
            match &kind {
                Kind::Heads(ns) => {
                    let header = if *ns == Ns::Eth {
                        &ev.eth_header
                    } else {
                        &ev.klay_header
                    };
                    let Some(h) = header else { continue };
                    started = true;
                    if !self.notify(h) {
                        return;
                    }
                }
                Kind::Logs(c) => {
                    let Some(logs) = &ev.logs else {
                        if started {
                            tracing::warn!(block = ev.number, "a block without logs reached a logs subscription");
                        }
                        continue;
                    };
                    started = true;
                    for log in logs.iter().filter(|l| c.matches(ev.number, l)) {
                        if !self.notify(&log.raw) {
                            return;
                        }
                    }
                }
                Kind::Pending | Kind::Syncing => return,
            }
        }
    }

    async fn pending(&self, mut rx: tokio::sync::broadcast::Receiver<Arc<str>>) {
        loop {
            match rx.recv().await {
                Ok(hash) => {
                    if !self.notify(format!("\"{hash}\"").as_bytes()) {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => return self.too_slow(),
                Err(RecvError::Closed) => return,
            }
        }
    }
}
