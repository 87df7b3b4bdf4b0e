//! Fuzz target: arbitrary bytes as a node's HTTP/1.1 reply through the relay's reader
//! (`cluster::h1`): the response head and the body's framing (length, chunked, until close).
//! Owns the invariants "never panics", "a head is found in exactly its own bytes" and "the
//! same bytes give the same body, or the same error, however they are split on arrival".
#![no_main]

use bytes::BytesMut;
use kengate::cluster::h1::{self, BodyDecoder, Decoded, Framing, H1Error};
use libfuzzer_sys::fuzz_target;

/// Decodes `body` arriving `step` bytes at a time; at its end the connection closes. The
/// body's bytes and what was left after it.
fn decode(framing: Framing, body: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), H1Error> {
    let mut d = BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in body.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => {
                    assert!(!b.is_empty(), "empty data");
                    out.extend_from_slice(&b);
                }
                Decoded::More => break,
                Decoded::Done => {
                    assert!(d.is_done());
                    break;
                }
            }
        }
    }
    if !d.is_done() {
        d.eof()?;
    }
    assert_eq!(d.remaining().unwrap_or(0), 0, "done with bytes to come");
    Ok((out, buf.to_vec()))
}

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let step = step.max(1);
    let steps = usize::from(step);
    let Ok(Some((head, n))) = h1::parse_head(data) else {
        // Not a head (yet): a body after an arbitrary head, to reach the decoder anyway.
        for framing in [
            Framing::Chunked,
            Framing::Length(u64::from(step) * 3),
            Framing::UntilClose,
        ] {
            assert_eq!(decode(framing, data, data.len()), decode(framing, data, steps));
        }
        return;
    };
    assert!(n <= data.len() && n <= h1::MAX_HEAD);
    assert_eq!(h1::parse_head(data.get(..n).unwrap_or_default()), Ok(Some((head, n))));
    assert_eq!(h1::parse_head(data.get(..n - 1).unwrap_or_default()), Ok(None));
    if let Framing::Length(l) = head.framing {
        assert!(head.declared.is_none() || head.declared == Some(l));
    }
    let body = data.get(n..).unwrap_or_default();
    let whole = decode(head.framing, body, body.len());
    assert_eq!(whole, decode(head.framing, body, steps), "split every {steps} bytes");
    if let (Ok((out, _)), Framing::Length(l)) = (&whole, head.framing) {
        assert_eq!(out.len() as u64, l, "a length body is exactly its length");
    }
});
