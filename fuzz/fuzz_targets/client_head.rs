//! Fuzz target: arbitrary bytes as a client's HTTP/1.1 request through the plain front's reader
//! (`server/front.rs`): which requests it serves and where their head and body lie. Owns the
//! invariants "never panics", "a served head lies within the limits and its own bytes", "a head
//! is found in exactly its own bytes (every shorter prefix is still partial, the head alone gives
//! the same verdict)" and "a served head's path and headers are read back".
#![no_main]

use kengate::server::{front_classify, front_owned_head, FrontHead, FrontVerdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, buf)) = data.split_first() else { return };
    let buf = &buf[..buf.len().min(4096)];
    // Small limits so the fuzzer reaches them.
    let max_head = 64 + usize::from(knobs & 0x0f) * 128;
    let max_body = usize::from(knobs >> 4) * 64;
    let verdict = front_classify(buf, max_head, max_body);
    let FrontVerdict::Serve(FrontHead { len, body }) = verdict else {
        if verdict == FrontVerdict::Partial {
            assert!(buf.len() < max_head, "partial past the head limit");
        }
        return;
    };
    assert!(len > 0 && len <= buf.len() && len <= max_head, "head {len} of {}", buf.len());
    assert!(body <= max_body, "body {body} over {max_body}");
    assert!(buf[..len].ends_with(b"\n"), "a head ends with a line end");
    assert_eq!(
        front_classify(&buf[..len], max_head, max_body),
        FrontVerdict::Serve(FrontHead { len, body }),
        "the head alone reads differently"
    );
    for k in 0..len {
        assert_eq!(
            front_classify(&buf[..k], max_head, max_body),
            FrontVerdict::Partial,
            "a prefix of {k} bytes of a served head is not partial"
        );
    }
    if let Some((path, _headers)) = front_owned_head(&buf[..len]) {
        assert!(path.starts_with('/'), "{path:?}");
        assert!(!path.contains('?'), "{path:?}");
    }
});
