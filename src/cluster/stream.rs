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

use super::relay;
use super::{NodeId, UpstreamError, UpstreamErrorKind};

/// What a node sent back: the whole body, or — once it ran past the caller's threshold —
/// the part read so far and the rest still arriving.
#[derive(Debug)]
pub enum Fetched {
    /// The reply, complete.
    Whole(Bytes),
    /// A reply too large to hold: passed on as it arrives.
    Streaming(Box<Streamed>),
}

/// The rest of a node's reply, as an HTTP body: `head` first, then the node's frames. Waiting
/// longer than the node's upstream timeout for its next frame ends it with an error (the
/// client's connection is closed: the reply cannot be completed any more); time the client
/// takes to read does not count.
#[derive(Debug)]
pub struct Streamed {
    node: NodeId,
    head: Option<Bytes>,
    rest: Source,
    idle: Duration,
    /// When the node has been silent too long; set when waiting for it starts.
    gap: Pin<Box<Sleep>>,
    waiting: bool,
    /// Most bytes [`Self::collect`] reads.
    max: usize,
    _in_flight: Holding,
}

impl Streamed {
    /// `head` and the `rest` of node `node`'s reply; `idle`: the longest wait for a frame;
    /// `max`: the most a caller that reads it whole may get.
    pub(super) fn new(
        node: NodeId,
        (head, rest): (Bytes, Source),
        (idle, max): (Duration, usize),
        in_flight: &Arc<AtomicU32>,
    ) -> Self {
        Self {
            node,
            head: Some(head),
            rest,
            idle,
            gap: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            max,
            _in_flight: Holding::enter(in_flight),
        }
    }

    /// The first bytes (what decided that the reply could be streamed), while not yet sent.
    pub fn head(&self) -> &[u8] {
        self.head.as_deref().unwrap_or_default()
    }

    /// Reads the rest and returns the whole reply (a caller that cannot stream); past the
    /// largest reply kengate reads whole, an error.
    pub async fn collect(mut self) -> Result<Bytes, UpstreamError> {
        let max = self.max;
        let mut all = bytes::BytesMut::new();
        while let Some(frame) = self.frame().await {
            if let Ok(data) = frame?.into_data() {
                if all.len() + data.len() > max {
                    return Err(self.fail(UpstreamErrorKind::Io, format!("reply over {max} bytes")));
                }
                all.extend_from_slice(&data);
            }
        }
        Ok(all.freeze())
    }

    /// Pending until the node has been silent for `idle`, then the error that ends the reply.
    fn poll_gap(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.gap.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let detail = format!("no data for {:?} in the middle of a reply", self.idle);
                Poll::Ready(Some(Err(self.fail(UpstreamErrorKind::Timeout, detail))))
            }
            Poll::Pending => Poll::Pending,
        }
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
        match this.rest.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(this.fail(UpstreamErrorKind::Io, e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !this.waiting {
                    // The node's silence counts from now: the client may have been slow to ask.
                    this.waiting = true;
                    let until = Instant::now() + this.idle;
                    this.gap.as_mut().reset(until);
                }
                this.poll_gap(cx)
            }
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

/// Where a node's body comes from: kengate's own client ([`relay`], `http://` nodes) or
/// hyper's (`https://` nodes).
#[derive(Debug)]
pub(super) enum Source {
    Relay(relay::Body),
    Hyper(Incoming),
}

impl Source {
    /// The next bytes of the body; `None` at its end.
    pub(super) async fn data(&mut self) -> Option<Result<Bytes, String>> {
        std::future::poll_fn(|cx| self.poll_data(cx)).await
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        match self {
            Self::Relay(body) => body.poll_next(cx),
            Self::Hyper(body) => loop {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        // Trailers: nothing to pass on.
                        Err(_) => continue,
                    },
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string()))),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            },
        }
    }

    /// Whether the body has ended.
    pub(super) fn is_end_stream(&self) -> bool {
        match self {
            Self::Relay(body) => body.is_end(),
            Self::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Relay(body) => match body.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            Self::Hyper(body) => body.size_hint(),
        }
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
