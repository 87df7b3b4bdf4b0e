//! The body of every response kengate sends: whole bytes, or a node's large reply passed on
//! as it arrives.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::cluster::{Streamed, UpstreamError};

/// A response body.
#[derive(Debug)]
pub(super) enum ReplyBody {
    /// All of it, in hand.
    Whole(Option<Bytes>),
    /// A node's reply still arriving.
    Streamed(Box<Streamed>),
}

impl Default for ReplyBody {
    fn default() -> Self {
        Self::Whole(None)
    }
}

impl ReplyBody {
    pub(super) fn whole(b: Bytes) -> Self {
        Self::Whole((!b.is_empty()).then_some(b))
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            Self::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Self::Streamed(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole(b) => b.is_none(),
            Self::Streamed(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Streamed(s) => s.size_hint(),
        }
    }
}
