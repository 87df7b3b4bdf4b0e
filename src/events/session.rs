//! One WebSocket connection's subscriptions: creates them, joins each to its network's
//! [`Subscribers`](super::fanout::Subscribers) once its id reply is queued, and takes them out
//! on `unsubscribe` or when the connection ends. Notifications go to the connection's bounded
//! send queue; a subscriber that lets it fill is disconnected (the connection is told why), so
//! memory never grows with a slow reader and other subscribers never wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::fanout::{Conn, Kind, Overflow, Sub};
use super::filter::Criteria;
use super::{invalid, new_id, Hub, Ns};
use crate::jsonrpc::{codes, RpcError};

/// The subscriptions of one connection.
#[derive(Debug)]
pub struct Session {
    conn: Arc<Conn>,
    /// Subscription id → subscription. A std Mutex: never held across `.await`; taken before
    /// the network's subscriber lock, never inside it.
    subs: Mutex<HashMap<String, Arc<Sub>>>,
    /// Subscriptions whose id reply has not been queued yet: they join the fan-out once it is
    /// (see [`Session::replies_sent`]), so a client always has the id before a notification.
    unannounced: Mutex<Vec<Arc<Sub>>>,
    max_subscriptions: usize,
}

impl Session {
    /// A session sending on `out`; the receiver tells the connection when to close.
    pub fn new(out: mpsc::Sender<Bytes>, max_subscriptions: usize) -> (Session, watch::Receiver<Option<Overflow>>) {
        let (overflow, rx) = watch::channel(None);
        (
            Session {
                conn: Arc::new(Conn { out, overflow }),
                subs: Mutex::new(HashMap::new()),
                unannounced: Mutex::new(Vec::new()),
                max_subscriptions,
            },
            rx,
        )
    }

    /// The connection queued replies: subscriptions created by them join the fan-out now
    /// (their id reached the queue first). One unsubscribed meanwhile does not.
    pub fn replies_sent(&self) {
        let waiting = std::mem::take(&mut *self.unannounced.lock().unwrap_or_else(PoisonError::into_inner));
        if waiting.is_empty() {
            return;
        }
        let subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        for sub in waiting {
            if subs.contains_key(&sub.id) {
                sub.hub().subscribers.add(sub.clone());
            }
        }
    }

    /// The connection must close with `code` and `reason` (unless it already must).
    pub fn close_with(&self, code: u16, reason: String) {
        self.conn.overflow.send_if_modified(|o| {
            if o.is_some() {
                return false;
            }
            *o = Some(Overflow { code, reason });
            true
        });
    }

    /// Live subscriptions.
    pub fn len(&self) -> usize {
        self.subs.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn subscribe(&self, hub: &Arc<Hub>, ns: Ns, args: &[&str], owner: &str) -> Result<String, RpcError> {
        let name = args
            .first()
            .and_then(|a| serde_json::from_str::<String>(a).ok())
            .ok_or_else(|| invalid("expected subscription name as first argument"))?;
        let kind = match name.as_str() {
            "newHeads" => Kind::Heads(ns),
            "logs" => Kind::Logs(Box::new(match args.get(1) {
                Some(c) => {
                    let crit = Criteria::parse(c).map_err(|e| invalid(&format!("invalid argument 1: {e}")))?;
                    crit.check(hub.dialect())
                        .map_err(|e| RpcError::new(codes::SERVER_ERROR, e))?;
                    crit
                }
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
        let id = new_id();
        let sub = Arc::new(Sub::new(hub, id.clone(), ns, kind, self.conn.clone(), owner));
        self.subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), sub.clone());
        self.unannounced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sub);
        Ok(format!("\"{id}\""))
    }

    pub(super) fn unsubscribe(&self, id: &str) -> bool {
        let removed = self.subs.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        match removed {
            Some(sub) => {
                sub.hub().subscribers.remove(sub.key);
                true
            }
            None => false,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let subs = std::mem::take(&mut *self.subs.lock().unwrap_or_else(PoisonError::into_inner));
        for sub in subs.into_values() {
            sub.hub().subscribers.remove(sub.key);
        }
    }
}
