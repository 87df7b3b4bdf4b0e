//! HTTP/1.1 replies from a node, without IO: the response head read from the first bytes and
//! the body's framing (a length, chunks, or until the node closes) decoded from whatever has
//! arrived, in any split. The relay ([`super::relay`]) feeds it; a fuzz target
//! (`fuzz/fuzz_targets/upstream_http.rs`) holds it to "same bytes, any split, same result".

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Most bytes a response head (with any interim 1xx heads before it) may take.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in one head.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (with its extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most bytes of trailer lines after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// A node's reply that is not HTTP/1 as kengate reads it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum H1Error {
    /// The head does not parse.
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    /// The head runs past [`MAX_HEAD`].
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// A status kengate never asks for (101: it never asks to switch protocols).
    #[error("unexpected status {0}")]
    Status(u16),
    /// A `Content-Length` that is not one decimal number.
    #[error("invalid or conflicting Content-Length")]
    Length,
    /// A chunk-size line that does not parse or runs past [`MAX_CHUNK_LINE`].
    #[error("malformed chunk size")]
    ChunkSize,
    /// A chunk's data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// Trailer lines past [`MAX_TRAILERS`].
    #[error("trailers over {MAX_TRAILERS} bytes")]
    Trailers,
    /// The connection ended before the body did.
    #[error("the node closed the connection {0} bytes short of the body's end")]
    Truncated(u64),
    /// The connection ended in the middle of a chunked body.
    #[error("the node closed the connection in the middle of a chunked body")]
    TruncatedChunks,
}

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// After this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: after the last (empty) chunk and its trailers.
    Chunked,
    /// When the node closes the connection.
    UntilClose,
}

/// What a response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is framed.
    pub framing: Framing,
    /// The `Content-Length` the node declared, when the body is framed by it.
    pub declared: Option<u64>,
    /// Whether the connection may carry another request after this reply.
    pub keep_alive: bool,
}

/// Reads a response head from the start of `buf`, skipping interim 1xx heads before it.
/// `Ok(None)`: more bytes are needed; `Ok(Some((head, n)))`: the head took `n` bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, H1Error> {
    let mut offset = 0;
    loop {
        let rest = buf.get(offset..).unwrap_or_default();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(rest).map_err(H1Error::Head)? {
            httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(H1Error::HeadTooLarge),
            httparse::Status::Partial => return Ok(None),
            httparse::Status::Complete(n) => n,
        };
        offset += n;
        if offset > MAX_HEAD {
            return Err(H1Error::HeadTooLarge);
        }
        let status = resp.code.unwrap_or_default();
        match status {
            101 => return Err(H1Error::Status(status)),
            100..=199 => continue,
            _ => {}
        }
        return Ok(Some((head_of(status, resp.version, resp.headers)?, offset)));
    }
}

/// The framing and persistence rules of RFC 9112 (§6.3, §9.3) for a reply to a POST.
fn head_of(status: u16, version: Option<u8>, headers: &[httparse::Header<'_>]) -> Result<Head, H1Error> {
    let (mut chunked, mut encoded, mut close) = (false, false, version != Some(1));
    let mut length: Option<u64> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Chunked counts only as the last coding applied.
            chunked = tokens(h.value)
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            if tokens(h.value).next().is_none() {
                return Err(H1Error::Length);
            }
            for t in tokens(h.value) {
                let n = decimal(t).ok_or(H1Error::Length)?;
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Length);
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
            if version == Some(0) && tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"keep-alive")) {
                close = false;
            }
        }
    }
    let (framing, declared) = if status == 204 || status == 304 {
        (Framing::Length(0), None)
    } else if encoded {
        // A length beside a transfer coding is ignored, and the connection not reused (§6.3).
        close |= length.is_some() || !chunked;
        (if chunked { Framing::Chunked } else { Framing::UntilClose }, None)
    } else if let Some(n) = length {
        (Framing::Length(n), Some(n))
    } else {
        close = true;
        (Framing::UntilClose, None)
    };
    Ok(Head {
        status,
        framing,
        declared,
        keep_alive: !close,
    })
}

/// The comma-separated tokens of a header value, trimmed; empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// `1*DIGIT` as a number (no sign, no spaces).
fn decimal(t: &[u8]) -> Option<u64> {
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// What [`BodyDecoder::decode`] took from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// Nothing more until more bytes arrive.
    More,
    /// The body is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a length-framed body.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Bytes left of a chunk's data.
    ChunkData(u64),
    /// After a chunk's data: its CRLF.
    ChunkEnd,
    /// After the last chunk: trailer bytes seen so far.
    Trailers(usize),
    /// Until the connection closes.
    UntilClose,
    /// Complete.
    Done,
}

/// Takes a body's bytes off the front of a buffer as they arrive; the data comes out as
/// slices of that buffer (no copy).
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still to come of a length-framed body (`None`: chunked or until close).
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next body bytes, or framing, off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Length(left) => {
                    let Some(data) = take(buf, left) else {
                        return Ok(Decoded::More);
                    };
                    let left = left - data.len() as u64;
                    self.state = if left == 0 { State::Done } else { State::Length(left) };
                    return Ok(Decoded::Data(data));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((n, _))) if n > MAX_CHUNK_LINE => return Err(H1Error::ChunkSize),
                    Ok(httparse::Status::Complete((n, size))) => {
                        buf.advance(n);
                        self.state = if size == 0 {
                            State::Trailers(0)
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => return Err(H1Error::ChunkSize),
                    Ok(httparse::Status::Partial) => return Ok(Decoded::More),
                    Err(_) => return Err(H1Error::ChunkSize),
                },
                State::ChunkData(left) => {
                    let Some(data) = take(buf, left) else {
                        return Ok(Decoded::More);
                    };
                    let left = left - data.len() as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::ChunkEnd => match buf.get(..2) {
                    None if buf.first().is_some_and(|&b| b != b'\r') => return Err(H1Error::ChunkEnd),
                    None => return Ok(Decoded::More),
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::ChunkSize;
                    }
                    Some(_) => return Err(H1Error::ChunkEnd),
                },
                State::Trailers(seen) => {
                    let Some(line) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if seen + buf.len() > MAX_TRAILERS {
                            return Err(H1Error::Trailers);
                        }
                        return Ok(Decoded::More);
                    };
                    let seen = seen + line + 2;
                    if seen > MAX_TRAILERS {
                        return Err(H1Error::Trailers);
                    }
                    buf.advance(line + 2);
                    self.state = if line == 0 { State::Done } else { State::Trailers(seen) };
                }
            }
        }
    }

    /// The connection ended: fine for a body that runs until then, or one already complete.
    pub fn eof(&mut self) -> Result<(), H1Error> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(left) => Err(H1Error::Truncated(left)),
            _ => Err(H1Error::TruncatedChunks),
        }
    }
}

/// Up to `left` bytes off the front of `buf` (`None` when it is empty).
fn take(buf: &mut BytesMut, left: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
    Some(buf.split_to(n).freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Option<(Head, usize)>, H1Error> {
        parse_head(s.as_bytes())
    }

    /// Decodes `body` fed `step` bytes at a time: the data, and whether it ended cleanly at
    /// the end of the input (after `eof` when it is still open).
    fn decode(framing: Framing, body: &[u8], step: usize) -> Result<Vec<u8>, H1Error> {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in body.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Decoded::Data(b) = d.decode(&mut buf)? {
                out.extend_from_slice(&b);
            }
        }
        if !d.is_done() {
            d.eof()?;
        }
        Ok(out)
    }

    #[test]
    fn a_plain_reply_has_its_length_and_keeps_the_connection() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello";
        let (h, n) = head(text).unwrap().unwrap();
        assert_eq!(n, text.len() - 5);
        assert_eq!(
            h,
            Head {
                status: 200,
                framing: Framing::Length(5),
                declared: Some(5),
                keep_alive: true
            }
        );
    }

    #[test]
    fn a_head_split_anywhere_needs_more_bytes() {
        let full = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        for i in 0..full.len() {
            assert_eq!(head(full.get(..i).unwrap()), Ok(None), "at {i}");
        }
    }

    #[test]
    fn interim_heads_are_skipped_and_101_refused() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let (h, n) = head(text).unwrap().unwrap();
        assert_eq!((h.status, h.framing, n), (200, Framing::Length(0), text.len()));
        assert_eq!(
            head("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Err(H1Error::Status(101))
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |s: &str| head(s).unwrap().map(|(h, _)| (h.framing, h.keep_alive));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some((Framing::Chunked, true))
        );
        // A length beside chunked is ignored and the connection not reused.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some((Framing::Chunked, false))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Some((Framing::UntilClose, false))
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), Some((Framing::UntilClose, false)));
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            Some((Framing::Length(0), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, Close\r\n\r\n"),
            Some((Framing::Length(2), false))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"),
            Some((Framing::Length(2), false))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"),
            Some((Framing::Length(2), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n"),
            Some((Framing::Length(7), true))
        );
    }

    #[test]
    fn bad_lengths_and_heads_are_errors() {
        for s in [
            "HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +7\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        ] {
            assert_eq!(head(s), Err(H1Error::Length), "{s:?}");
        }
        assert!(matches!(head("HTTP/1.1 2x0 OK\r\n\r\n"), Err(H1Error::Head(_))));
        assert!(matches!(head("SMTP ready\r\n\r\n"), Err(H1Error::Head(_))));
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(head(&long), Err(H1Error::HeadTooLarge));
    }

    #[test]
    fn a_length_body_in_any_split() {
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(decode(Framing::Length(5), b"hello", step), Ok(b"hello".to_vec()));
            assert_eq!(decode(Framing::Length(6), b"hello", step), Err(H1Error::Truncated(1)));
        }
        assert_eq!(decode(Framing::Length(0), b"", 1), Ok(Vec::new()));
    }

    #[test]
    fn a_length_body_is_handed_out_without_a_copy_when_it_is_all_there() {
        let mut buf = BytesMut::from(&b"hello, trailing"[..]);
        let at = buf.as_ptr();
        let mut d = BodyDecoder::new(Framing::Length(5));
        let Ok(Decoded::Data(b)) = d.decode(&mut buf) else {
            panic!("no data");
        };
        assert_eq!((&b[..], b.as_ptr()), (&b"hello"[..], at));
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Done));
        assert_eq!(&buf[..], b", trailing");
    }

    #[test]
    fn a_chunked_body_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in 1..body.len() {
            assert_eq!(
                decode(Framing::Chunked, body, step),
                Ok(b"hello, world".to_vec()),
                "step {step}"
            );
        }
        assert_eq!(decode(Framing::Chunked, b"0\r\n\r\n", 1), Ok(Vec::new()));
        assert_eq!(
            decode(Framing::Chunked, b"5\r\nhello\r\n", 3),
            Err(H1Error::TruncatedChunks)
        );
        assert_eq!(decode(Framing::Chunked, b"5\r\nhelloXX", 3), Err(H1Error::ChunkEnd));
        assert_eq!(decode(Framing::Chunked, b"5\r\nhelloX", 1), Err(H1Error::ChunkEnd));
        assert_eq!(decode(Framing::Chunked, b"zz\r\n", 1), Err(H1Error::ChunkSize));
        let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert_eq!(decode(Framing::Chunked, long.as_bytes(), 7), Err(H1Error::ChunkSize));
        assert_eq!(
            decode(Framing::Chunked, long.as_bytes(), long.len()),
            Err(H1Error::ChunkSize)
        );
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
        assert_eq!(decode(Framing::Chunked, trailers.as_bytes(), 5), Err(H1Error::Trailers));
    }

    #[test]
    fn a_body_until_close_ends_with_the_connection() {
        assert_eq!(decode(Framing::UntilClose, b"all of it", 4), Ok(b"all of it".to_vec()));
    }

    #[test]
    fn bytes_after_the_body_stay_in_the_buffer() {
        let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nHTTP/1.1"[..]);
        let mut d = BodyDecoder::new(Framing::Chunked);
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Data(Bytes::from_static(b"a"))));
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Done));
        assert_eq!(&buf[..], b"HTTP/1.1");
    }
}
