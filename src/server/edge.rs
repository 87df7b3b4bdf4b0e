//! What one client can hold of kengate before a request is handled: connections (a global cap
//! and one per client address), and request bodies (read within a total and an idle deadline,
//! their bytes drawn from one shared budget). A refused connection gets a 503 and is closed; a
//! body that stalls gets 408, one that would overflow the budget 503, and the connection closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::EdgeCounters;

/// The edge limits (`[limits]`).
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Most client connections from one address (the TCP peer: behind a load balancer, the
    /// balancer's address; size it for that).
    pub max_connections_per_ip: usize,
    /// A request body must arrive whole within this.
    pub body_timeout: Duration,
    /// ... and never pause longer than this between two reads.
    pub body_idle_timeout: Duration,
    /// Bytes of request bodies being read or handled, all connections together.
    pub max_buffered_body_bytes: usize,
}

/// The shared state behind [`EdgeLimits`].
#[derive(Debug)]
pub(super) struct Edge {
    limits: EdgeLimits,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    budget: Arc<Semaphore>,
    counters: Arc<EdgeCounters>,
}

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyError {
    /// Over the body size limit.
    TooLarge,
    /// Not whole within the total deadline, or paused past the idle one.
    TimedOut,
    /// The shared budget of buffered bytes is spent (other clients' bodies hold it).
    Busy,
    /// The connection broke while the body was read.
    Broken,
}

/// A request body and its share of the budget (released when dropped).
#[derive(Debug)]
pub(super) struct Body {
    pub(super) bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(super) struct ConnGuard {
    edge: Arc<Edge>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.edge.open.fetch_sub(1, Ordering::SeqCst);
        self.edge.counters.open_connections.dec();
        let mut m = self.edge.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// What a refused connection is told before it is closed.
pub(super) const REFUSED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 29\r\n\r\ntoo many connections; retry\r\n";

impl Edge {
    pub(super) fn new(limits: EdgeLimits, counters: Arc<EdgeCounters>) -> Arc<Edge> {
        let permits = limits.max_buffered_body_bytes.min(Semaphore::MAX_PERMITS);
        Arc::new(Edge {
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            budget: Arc::new(Semaphore::new(permits)),
            counters,
        })
    }

    /// A place for a new connection from `ip`, or `None` (counted) when a cap is reached.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.limits.max_connections {
            self.open.fetch_sub(1, Ordering::SeqCst);
            self.counters.refused_connection("global");
            return None;
        }
        {
            let mut m = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let n = m.entry(ip).or_insert(0);
            if *n >= self.limits.max_connections_per_ip {
                drop(m);
                self.open.fetch_sub(1, Ordering::SeqCst);
                self.counters.refused_connection("per_ip");
                return None;
            }
            *n += 1;
        }
        self.counters.open_connections.inc();
        Some(ConnGuard { edge: self.clone(), ip })
    }

    /// Reads a request body of at most `max` bytes within the deadlines, drawing its bytes
    /// from the shared budget. A body in one frame (the usual case) is not copied.
    pub(super) async fn read_body(&self, mut body: Incoming, max: usize) -> Result<Body, BodyError> {
        let deadline = tokio::time::Instant::now() + self.limits.body_timeout;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut len = 0usize;
        let mut held: Option<OwnedSemaphorePermit> = None;
        loop {
            let wait = (tokio::time::Instant::now() + self.limits.body_idle_timeout).min(deadline);
            let frame = match tokio::time::timeout_at(wait, body.frame()).await {
                Err(_) => {
                    self.counters.refused_body("body_timeout");
                    return Err(BodyError::TimedOut);
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err(BodyError::Broken),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else { continue };
            if data.is_empty() {
                continue;
            }
            len += data.len();
            if len > max {
                return Err(BodyError::TooLarge);
            }
            let share = u32::try_from(data.len())
                .ok()
                .and_then(|n| self.budget.clone().try_acquire_many_owned(n).ok());
            let Some(share) = share else {
                self.counters.refused_body("buffer_full");
                return Err(BodyError::Busy);
            };
            match &mut held {
                Some(h) => h.merge(share),
                None => held = Some(share),
            }
            chunks.push(data);
        }
        let bytes = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(len);
                for c in chunks {
                    all.extend_from_slice(&c);
                }
                all.freeze()
            }
        };
        Ok(Body { bytes, _budget: held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(per_ip: usize, global: usize) -> Arc<Edge> {
        Edge::new(
            EdgeLimits {
                max_connections: global,
                max_connections_per_ip: per_ip,
                body_timeout: Duration::from_secs(1),
                body_idle_timeout: Duration::from_secs(1),
                max_buffered_body_bytes: 1024,
            },
            Arc::new(EdgeCounters::default()),
        )
    }

    #[test]
    fn caps_hold_per_address_and_overall_and_free_on_drop() {
        let e = edge(2, 3);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = e.admit(a).unwrap();
        let _a2 = e.admit(a).unwrap();
        assert!(e.admit(a).is_none(), "a third from one address");
        let _b1 = e.admit(b).unwrap();
        assert!(e.admit(b).is_none(), "a fourth overall");
        drop(a1);
        assert!(e.admit(b).is_some(), "a place freed");
        assert_eq!(e.counters.open_connections.get(), 2);
        assert!(e.per_ip.lock().unwrap().len() == 2);
    }
}
