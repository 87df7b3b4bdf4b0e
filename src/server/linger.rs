//! Lingering close, as nginx does it: when kengate closes a connection the client is still
//! sending on (a 413 for a body over the limit, a 431, a 401 before the body was read), the
//! socket's write side is shut (the answer and a FIN go out) and what the client still sends
//! is read and discarded for a bounded time before the socket is closed. Closing at once would
//! make the kernel answer the unread bytes with a reset, and clients that are still writing
//! (Node's `fetch`, Python `requests`) report `EPIPE` / `ECONNRESET` instead of the status.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Conn;

/// Most bytes discarded after the close (a client sending more gets the reset).
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Longest linger in all.
const MAX_TIME: Duration = Duration::from_secs(10);
/// Longest pause of the client while lingering.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// A client connection that, dropped after kengate answered on it and before the client ended
/// its side, shuts its write side and lingers — unless the connection was marked
/// [`Conn::cut`](super::Conn) (a client too slow to wait for). A connection never answered (a
/// stalled or trickled first head) closes at once. `hold` (the connection's place under the caps) is kept until the linger ends.
#[derive(Debug)]
pub(super) struct Lingering {
    io: Option<TcpStream>,
    /// The client ended its side: nothing can be unread.
    eof: bool,
    /// kengate has written on it (an answer).
    answered: bool,
    conn: Option<Arc<Conn>>,
}

impl Lingering {
    pub(super) fn new(io: TcpStream, conn: Arc<Conn>) -> Self {
        Self {
            io: Some(io),
            eof: false,
            answered: false,
            conn: Some(conn),
        }
    }

    /// The socket, for reads outside `AsyncRead` (the plain front waits on readiness with no
    /// buffer held).
    pub(super) fn tcp(&self) -> io::Result<&TcpStream> {
        self.io
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// The client ended its side (a read outside `AsyncRead` saw it).
    pub(super) fn saw_eof(&mut self) {
        self.eof = true;
    }

    fn io(&mut self) -> io::Result<&mut TcpStream> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut io), Some(conn)) = (self.io.take(), self.conn.take()) else {
            return;
        };
        if self.eof || !self.answered || conn.cut.load(Ordering::Relaxed) {
            return;
        }
        // Outside a runtime (never in kengate) the socket just closes.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // The FIN (hyper has usually sent it already; again is harmless).
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
            // Small: many connections may linger at once (10,000 keep-alive clients closed by a
            // drain), and what is read is thrown away.
            let mut scratch = [0u8; 2048];
            let mut left = MAX_BYTES;
            let _ = tokio::time::timeout(MAX_TIME, async {
                while left > 0 {
                    match tokio::time::timeout(MAX_IDLE, io.read(&mut scratch)).await {
                        Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                        _ => break,
                    }
                }
            })
            .await;
            drop(io);
            drop(conn);
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let res = Pin::new(this.io()?).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if buf.filled().len() == before && buf.remaining() > 0 {
                this.eof = true;
            }
        }
        res
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(this.io()?).poll_write(cx, buf);
        this.answered |= matches!(res, Poll::Ready(Ok(n)) if n > 0);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(this.io()?).poll_write_vectored(cx, bufs);
        this.answered |= matches!(res, Poll::Ready(Ok(n)) if n > 0);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}
