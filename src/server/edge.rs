//! What one client can hold of kengate before a request is handled: connections (a global cap
//! and one per client address), and request bodies and WebSocket messages (read within a total
//! and an idle deadline, their bytes drawn from one shared budget). A refused connection gets a
//! 503 and is closed; a body that stalls gets 408, one that would overflow the budget 503, and
//! the connection closes; a WebSocket message that stalls or overflows ends its connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

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
    /// The server's settings, replaced by a reload.
    live: Arc<arc_swap::ArcSwap<super::ServerSettings>>,
    /// Permits the budget is sized for (a reload adds or forgets the difference) ...
    budget_size: AtomicUsize,
    /// ... and the lock of a resize (counts them).
    resize: Mutex<u64>,
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
    pub(super) fn new(live: Arc<arc_swap::ArcSwap<super::ServerSettings>>, counters: Arc<EdgeCounters>) -> Arc<Edge> {
        let permits = live.load().edge.max_buffered_body_bytes.min(Semaphore::MAX_PERMITS);
        Arc::new(Edge {
            live,
            budget_size: AtomicUsize::new(permits),
            resize: Mutex::new(0),
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            budget: Arc::new(Semaphore::new(permits)),
            counters,
        })
    }

    /// The limits as of now (a reload replaces them); the byte budget is resized to match.
    fn limits(&self) -> EdgeLimits {
        let limits = self.live.load().edge.clone();
        let want = limits.max_buffered_body_bytes.min(Semaphore::MAX_PERMITS);
        if self.budget_size.load(Ordering::Relaxed) != want {
            let mut size = self.resize.lock().unwrap_or_else(PoisonError::into_inner);
            let have = self.budget_size.load(Ordering::Relaxed);
            if want > have {
                self.budget.add_permits(want - have);
            } else {
                // What is lent out stays lent; the idle part is forgotten at once.
                self.budget.forget_permits(have - want);
            }
            self.budget_size.store(want, Ordering::Relaxed);
            *size += 1;
        }
        limits
    }

    /// Client connections open now.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place for a new connection from `ip`, or `None` (counted) when a cap is reached.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let limits = self.limits();
        if self.open.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            self.open.fetch_sub(1, Ordering::SeqCst);
            self.counters.refused_connection("global");
            return None;
        }
        {
            let mut m = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let n = m.entry(ip).or_insert(0);
            if *n >= limits.max_connections_per_ip {
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

    /// The body deadlines as of now: (whole body, longest pause between two reads).
    pub(super) fn body_deadlines(&self) -> (Duration, Duration) {
        let limits = self.limits();
        (limits.body_timeout, limits.body_idle_timeout)
    }

    /// Draws `n` bytes of a body read outside [`Edge::read_body`] (the plain front) from the
    /// shared budget: the share to hold while the body is read and handled, or `Busy`
    /// (counted).
    pub(super) fn charge(&self, n: usize) -> Result<Option<OwnedSemaphorePermit>, BodyError> {
        if n == 0 {
            return Ok(None);
        }
        self.limits();
        match u32::try_from(n)
            .ok()
            .and_then(|n| self.budget.clone().try_acquire_many_owned(n).ok())
        {
            Some(share) => Ok(Some(share)),
            None => {
                self.counters.refused_body("buffer_full");
                Err(BodyError::Busy)
            }
        }
    }

    /// Counts a body that did not arrive within its deadlines (read outside [`Edge::read_body`]).
    pub(super) fn body_timed_out(&self) {
        self.counters.refused_body("body_timeout");
    }

    /// Reads a request body of at most `max` bytes within the deadlines, drawing its bytes
    /// from the shared budget. A body in one frame (the usual case) is not copied.
    pub(super) async fn read_body(&self, mut body: Incoming, max: usize) -> Result<Body, BodyError> {
        let limits = self.limits();
        let deadline = tokio::time::Instant::now() + limits.body_timeout;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut len = 0usize;
        let mut held: Option<OwnedSemaphorePermit> = None;
        loop {
            let wait = (tokio::time::Instant::now() + limits.body_idle_timeout).min(deadline);
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

/// Why [`Metered`] ended a WebSocket read: the error inside the `io::Error` it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum MessageRefused {
    /// Not whole within the total deadline, or paused past the idle one.
    #[error("message did not arrive in time")]
    Stalled,
    /// The shared budget of buffered bytes is spent.
    #[error("too many request bytes in flight")]
    OverBudget,
}

impl MessageRefused {
    /// The refusal an `io::Error` from [`Metered`] carries, if it is one.
    pub(super) fn of(e: &io::Error) -> Option<MessageRefused> {
        e.get_ref()?.downcast_ref::<MessageRefused>().copied()
    }
}

/// A WebSocket connection's socket, read under the same rules as a request body: bytes of a
/// message not yet complete are drawn from the shared budget, and a message must arrive whole
/// within the total deadline without pausing past the idle one. The session calls
/// [`Metered::done`] (through its [`MessageDone`] handle) at each complete message. Bytes of
/// the next message that arrived in the same read as the end of one are not charged (at most
/// one read, a few KiB).
pub(super) struct Metered<T> {
    inner: T,
    edge: Arc<Edge>,
    state: Arc<Mutex<Partial>>,
    timer: Option<Pin<Box<Sleep>>>,
}

/// The message being read: since when, the last read, its share of the budget.
#[derive(Debug, Default)]
struct Partial {
    since: Option<Instant>,
    last: Option<Instant>,
    held: Option<OwnedSemaphorePermit>,
}

/// Tells a [`Metered`] socket that a whole message was read.
#[derive(Debug, Clone)]
pub(super) struct MessageDone(Arc<Mutex<Partial>>);

impl MessageDone {
    /// The message is complete: its bytes leave the budget and its deadlines end.
    pub(super) fn done(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Partial::default();
    }
}

impl<T> Metered<T> {
    pub(super) fn new(inner: T, edge: Arc<Edge>) -> (Metered<T>, MessageDone) {
        let state = Arc::new(Mutex::new(Partial::default()));
        (
            Metered {
                inner,
                edge,
                state: state.clone(),
                timer: None,
            },
            MessageDone(state),
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n == 0 {
                    return Poll::Ready(Ok(()));
                }
                let share = u32::try_from(n)
                    .ok()
                    .and_then(|n| this.edge.budget.clone().try_acquire_many_owned(n).ok());
                let mut st = this.state.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(share) = share else {
                    this.edge.counters.refused_body("buffer_full");
                    return Poll::Ready(Err(io::Error::other(MessageRefused::OverBudget)));
                };
                match &mut st.held {
                    Some(h) => h.merge(share),
                    None => st.held = Some(share),
                }
                let now = Instant::now();
                st.since.get_or_insert(now);
                st.last = Some(now);
                this.timer = None;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let (since, last) = {
                    let st = this.state.lock().unwrap_or_else(PoisonError::into_inner);
                    (st.since, st.last)
                };
                let (Some(since), Some(last)) = (since, last) else {
                    this.timer = None;
                    return Poll::Pending;
                };
                let limits = this.edge.limits();
                let deadline = (since + limits.body_timeout).min(last + limits.body_idle_timeout);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    this.edge.counters.refused_body("body_timeout");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, MessageRefused::Stalled)));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_ip: usize, global: usize, budget: usize) -> super::super::ServerSettings {
        let mut s = crate::server_settings(&crate::config::Config::default());
        s.edge = EdgeLimits {
            max_connections: global,
            max_connections_per_ip: per_ip,
            body_timeout: Duration::from_secs(1),
            body_idle_timeout: Duration::from_secs(1),
            max_buffered_body_bytes: budget,
        };
        s
    }

    fn edge(per_ip: usize, global: usize) -> Arc<Edge> {
        let live = Arc::new(arc_swap::ArcSwap::from_pointee(settings(per_ip, global, 1024)));
        Edge::new(live, Arc::new(EdgeCounters::default()))
    }

    #[test]
    fn reloaded_limits_apply_to_the_next_connection_and_resize_the_budget() {
        let e = edge(1, 10);
        let ip = "10.0.0.9".parse().unwrap();
        let _first = e.admit(ip).unwrap();
        assert!(e.admit(ip).is_none());
        e.live.store(Arc::new(settings(2, 10, 4096)));
        let _second = e.admit(ip).expect("the new per-address cap");
        assert_eq!(e.budget.available_permits(), 4096);
        e.live.store(Arc::new(settings(2, 10, 512)));
        let _ = e.limits();
        assert_eq!(e.budget.available_permits(), 512);
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
