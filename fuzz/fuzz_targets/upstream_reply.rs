//! Fuzz target: arbitrary upstream reply bodies through `UpstreamReply::parse`, the null-result
//! rule, the streaming decision on a reply's first bytes (`result_follows`), the decision to
//! pass a whole reply on unread (`unread_result`: never a null result), the batch reply passed
//! on unread (`unread_batch`: never a null, the same elements as its read), and the
//! batch/result builders that pass replies through. Owns the invariants "never panics",
//! "passing valid JSON through a batch keeps it valid JSON" and "a prefix judged a result
//! stays one as more of the reply arrives".
#![no_main]

use bytes::Bytes;
use kengate::jsonrpc::{self, UpstreamReply};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A reply kengate itself would put next to an upstream one in a batch.
const LOCAL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":"0x64"}"#;

/// Parses `bytes` as JSON without serde_json's nesting limit: a part that is valid at the
/// limit is one level deeper inside a batch, which is still valid JSON. Checks use `&RawValue`,
/// which also requires UTF-8 (`IgnoredAny` skips string contents unchecked).
fn unbounded<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = T::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Joins `parts` and, when every part is valid JSON, checks the batch is a JSON array of as
/// many elements.
fn check_batch(parts: &[Bytes]) {
    let batch = jsonrpc::batch_response(parts);
    let all_valid = parts.iter().all(|p| unbounded::<&RawValue>(p).is_ok());
    if all_valid {
        match unbounded::<Vec<&RawValue>>(&batch) {
            Ok(v) => assert_eq!(v.len(), parts.len(), "batch length"),
            Err(e) => panic!(
                "batch of valid parts is not valid JSON ({e}): {:?}",
                String::from_utf8_lossy(&batch)
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let cut = data.get(..data.len() / 2).unwrap_or_default();
    if jsonrpc::result_follows(cut) {
        assert!(
            jsonrpc::result_follows(data),
            "more bytes changed the streaming decision"
        );
    }
    let unread = jsonrpc::unread_result(data);
    assert!(!unread || jsonrpc::result_follows(data), "passed on unread without a result first");
    if let Ok(reply) = UpstreamReply::parse(data) {
        assert!(!(unread && reply.is_null_result()), "a null result passed on unread");
        let null = reply.is_null_result();
        assert!(
            reply.result.is_some() || reply.error.is_some(),
            "accepted a reply with neither"
        );
        assert!(
            reply.error.is_none_or(|e| e.get() != "null"),
            "error: null kept as an error"
        );
        assert!(
            !(null && reply.error.is_some()),
            "an error reply counted as a null result"
        );
        if let Some(r) = reply.result {
            let id = RawValue::from_string("1".to_owned()).ok();
            let bytes = jsonrpc::result_response(id.as_deref().map(Into::into), r.get());
            if let Err(e) = unbounded::<&RawValue>(&bytes) {
                panic!(
                    "result passthrough is not valid JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
    // A batch reply passed on unread: never a null result, and where it is also read, the
    // same ids and the same result bytes.
    if let Some(unread) = jsonrpc::unread_batch(data) {
        assert!(unread.iter().all(|(_, r)| !r.starts_with(b"null")), "a null result passed on unread");
        if let Ok(read) = UpstreamReply::parse_batch(data) {
            let read: Vec<(usize, &[u8])> = read
                .iter()
                .map(|(id, r)| (*id, r.result.map_or(&b""[..], |r| r.get().as_bytes())))
                .collect();
            assert_eq!(unread, read, "a batch passed on unread differs from its read");
        }
    }
    let part = Bytes::copy_from_slice(data);
    check_batch(&[]);
    check_batch(std::slice::from_ref(&part));
    check_batch(&[part.clone(), Bytes::from_static(LOCAL), part]);
});
