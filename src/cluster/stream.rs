//! A node's large reply passed on while it arrives: the part read before kengate decided to
//! stream, then the rest of the node's body frame by frame, each frame bounded in time. The
//! call counts as in flight on its node until the last byte.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{NodeId, UpstreamError, UpstreamErrorKind};

/// What a node sent back: the whole body, or — once it ran past the caller's threshold —
/// the part read so far and the rest still arriving.
#[derive(Debug)]
pub enum Fetched {
    /// The reply, complete.
    Whole(Bytes),
    /// A reply too large to hold: passed on as it arrives.
    Streaming(Streamed),
}

/// The rest of a node's reply, as an HTTP body: `head` first, then the node's frames. A gap
/// longer than the node's upstream timeout between two frames ends it with an error (the
/// client's connection is closed: the reply cannot be completed any more).
#[derive(Debug)]
pub struct Streamed {
    node: NodeId,
    head: Option<Bytes>,
    rest: Incoming,
    idle: Duration,
    gap: Pin<Box<Sleep>>,
    _in_flight: Holding,
}

impl Streamed {
    pub(super) fn new(node: NodeId, head: Bytes, rest: Incoming, idle: Duration, in_flight: &Arc<AtomicU32>) -> Self {
        Self {
            node,
            head: Some(head),
            rest,
            idle,
            gap: Box::pin(tokio::time::sleep(idle)),
            _in_flight: Holding::enter(in_flight),
        }
    }

    /// The first bytes (what decided that the reply could be streamed), while not yet sent.
    pub fn head(&self) -> &[u8] {
        self.head.as_deref().unwrap_or_default()
    }

    /// Reads the rest and returns the whole reply (a caller that cannot stream).
    pub async fn collect(self) -> Result<Bytes, UpstreamError> {
        BodyExt::collect(self).await.map(|c| c.to_bytes())
    }

    fn fail(&self, kind: UpstreamErrorKind, detail: String) -> UpstreamError {
        tracing::warn!(node = self.node, error = %detail, "a streamed reply broke off");
        UpstreamError {
            node: self.node,
            kind,
            detail,
        }
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        match Pin::new(&mut this.rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + this.idle;
                this.gap.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(this.fail(UpstreamErrorKind::Io, e.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.gap.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let detail = format!("no data for {:?} in the middle of a reply", this.idle);
                    Poll::Ready(Some(Err(this.fail(UpstreamErrorKind::Timeout, detail))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(head));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(head));
        }
        hint
    }
}

/// One call in flight on a node for as long as it lives.
#[derive(Debug)]
struct Holding(Arc<AtomicU32>);

impl Holding {
    fn enter(c: &Arc<AtomicU32>) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Self(c.clone())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
