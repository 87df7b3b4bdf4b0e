//! Builds response bytes: kengate's own answers and errors, and batch arrays of upstream
//! replies passed through verbatim. Also reads an upstream reply just enough to route on it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{RawJson, RpcError};

/// `{"jsonrpc":"2.0","id":<id>,"error":{...}}`; a missing id is answered as `null`.
pub fn error_response(id: Option<RawJson<'_>>, err: &RpcError) -> Bytes {
    // Serializing an i64, a string and optional JSON cannot fail.
    let error = serde_json::to_vec(err).unwrap_or_default();
    member_response(id, "error", &error)
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}` where `result` is already JSON.
pub fn result_response(id: Option<RawJson<'_>>, result_json: &str) -> Bytes {
    let id = id.map_or("null", |v| v.get());
    let mut out = BytesMut::with_capacity(36 + id.len() + result_json.len());
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(id.as_bytes());
    out.put_slice(b",\"result\":");
    out.put_slice(result_json.as_bytes());
    out.put_u8(b'}');
    out.freeze()
}

/// `{"jsonrpc":"2.0","id":<id>,"<member>":<json>}` where `json` is a result or an error
/// object, already JSON (a cached or shared answer, given the caller's id).
pub fn member_response(id: Option<RawJson<'_>>, member: &str, json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(member_len(id, member, json));
    put_member(&mut out, id, member, json);
    out.freeze()
}

/// The length of [`put_member`]'s object.
fn member_len(id: Option<RawJson<'_>>, member: &str, json: &[u8]) -> usize {
    30 + id.map_or(4, |v| v.get().len()) + member.len() + json.len()
}

/// Writes `{"jsonrpc":"2.0","id":<id>,"<member>":<json>}` (a missing id as `null`).
fn put_member(out: &mut BytesMut, id: Option<RawJson<'_>>, member: &str, json: &[u8]) {
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(id.map_or("null", |v| v.get()).as_bytes());
    out.put_slice(b",\"");
    out.put_slice(member.as_bytes());
    out.put_slice(b"\":");
    out.put_slice(json);
    out.put_u8(b'}');
}

/// One element of a batch reply as it is held until the batch is written: a whole reply
/// object, or a `result` / `error` member's JSON still to be wrapped with the call's id (an
/// answer from the node's batch reply or the cache, written once, into the batch).
#[derive(Debug, Clone)]
pub enum Part {
    /// A reply object, passed through unchanged.
    Whole(Bytes),
    /// `"result"` or `"error"`, and its JSON.
    Member(&'static str, Bytes),
}

/// Joins per-call replies into a batch array, each passed through unchanged.
pub fn batch_response(parts: &[Bytes]) -> Bytes {
    let parts: Vec<(Option<RawJson<'_>>, Part)> = parts.iter().map(|p| (None, Part::Whole(p.clone()))).collect();
    batch_of(&parts)
}

/// A batch array of the parts, in order, each a member object for its id or passed through.
pub fn batch_of(parts: &[(Option<RawJson<'_>>, Part)]) -> Bytes {
    let len: usize = parts
        .iter()
        .map(|(id, p)| match p {
            Part::Whole(b) => b.len() + 1,
            Part::Member(m, json) => member_len(*id, m, json) + 1,
        })
        .sum();
    let mut out = BytesMut::with_capacity(len + 2);
    out.put_u8(b'[');
    for (i, (id, p)) in parts.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        match p {
            Part::Whole(b) => out.put_slice(b.trim_ascii()),
            Part::Member(m, json) => put_member(&mut out, *id, m, json),
        }
    }
    out.put_u8(b']');
    out.freeze()
}

/// What kengate needs to know of an upstream reply: its result or error, borrowed.
#[derive(Debug, Deserialize)]
pub struct UpstreamReply<'a> {
    /// The result, verbatim (`Some("null")` for a null result).
    #[serde(borrow, default, deserialize_with = "super::present")]
    pub result: Option<&'a RawValue>,
    /// The node's error object, verbatim.
    #[serde(borrow, default, deserialize_with = "super::present")]
    pub error: Option<&'a RawValue>,
}

/// An upstream reply that is not a JSON-RPC response object.
#[derive(Debug, thiserror::Error)]
#[error("upstream reply is not a JSON-RPC response: {0}")]
pub struct UpstreamReplyError(String);

impl<'a> UpstreamReply<'a> {
    /// Reads a single (non-batch) upstream reply.
    pub fn parse(body: &'a [u8]) -> Result<Self, UpstreamReplyError> {
        let r: UpstreamReply<'a> = read(body)?;
        r.checked()
            .ok_or_else(|| UpstreamReplyError("neither result nor error".into()))
    }

    /// Reads an upstream batch reply in one pass: each element's id, when it is a number (the
    /// position kengate gave the call), with what [`Self::parse`] reads of it. Elements with
    /// another id, or neither a result nor an error, are left out.
    pub fn parse_batch(body: &'a [u8]) -> Result<Vec<(usize, Self)>, UpstreamReplyError> {
        #[derive(Deserialize)]
        struct Element<'a> {
            #[serde(borrow, default)]
            id: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "super::present")]
            result: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "super::present")]
            error: Option<&'a RawValue>,
        }
        let elements: Vec<Element<'a>> = read(body)?;
        Ok(elements
            .into_iter()
            .filter_map(|e| {
                let id = e.id?.get().parse::<usize>().ok()?;
                let reply = UpstreamReply {
                    result: e.result,
                    error: e.error,
                }
                .checked()?;
                Some((id, reply))
            })
            .collect())
    }

    /// `error: null` read as no error; `None` when neither a result nor an error is left.
    fn checked(mut self) -> Option<Self> {
        if self.error.is_some_and(|e| e.get() == "null") {
            self.error = None;
        }
        (self.result.is_some() || self.error.is_some()).then_some(self)
    }

    /// True when the call succeeded with a `null` result (e.g. "receipt not found").
    pub fn is_null_result(&self) -> bool {
        self.error.is_none() && self.result.is_none_or(|r| r.get() == "null")
    }
}

/// Reads a reply. A UTF-8 body (every reply a node sends) is read as text, its UTF-8 checked
/// once: from bytes, serde_json checks each string and borrowed raw value again. Anything else
/// is read from bytes as before, so that what is accepted (a stray byte in a member kengate
/// skips) and what serde says is wrong are unchanged.
fn read<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, UpstreamReplyError> {
    let r = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    r.map_err(|e| UpstreamReplyError(e.to_string()))
}

/// Whether the first bytes of a reply begin a successful JSON-RPC response: an object whose
/// members before `"result"` are only `"jsonrpc"` and `"id"` (a string, number or `null`).
/// Only a `true` lets a large reply be passed on before it has all arrived; anything else —
/// an error, another member first, a prefix too short to tell — answers `false`, and the
/// reply is read whole.
pub fn result_follows(head: &[u8]) -> bool {
    Prefix { b: head, at: 0 }.past_result_key()
}

/// Whether a whole reply may be passed on without reading it: it begins as [`result_follows`]
/// says and its result is not `null` (which a read may retry on another node). What follows
/// the result's first byte is not looked at, as with a streamed reply: the bytes reach the
/// client as the node sent them.
pub fn unread_result(reply: &[u8]) -> bool {
    let mut p = Prefix { b: reply, at: 0 };
    p.past_result_key() && p.plain_value_next()
}

/// The results of a batch reply whose every element is a plain result (as [`unread_result`]
/// judges one, so never `null`) with a numeric id: each element's id and its result's bytes,
/// found by their brackets and quotes without reading them (as a single reply is passed on
/// unread). `None` for anything else — an error, a `null`, another member, an id kengate did
/// not give, bytes that do not frame as an array of objects — which is then read whole
/// ([`UpstreamReply::parse_batch`]); where both answer, they agree.
pub fn unread_batch(body: &[u8]) -> Option<Vec<(usize, &[u8])>> {
    let mut p = Prefix { b: body, at: 0 };
    if !p.eat(b'[') {
        return None;
    }
    let mut out = Vec::with_capacity(16);
    loop {
        let id = p.envelope()??;
        let id = std::str::from_utf8(id).ok()?.parse::<usize>().ok()?;
        if !p.plain_value_next() {
            return None;
        }
        let start = p.at;
        if !p.skip_value() {
            return None;
        }
        out.push((id, body.get(start..p.at)?));
        if !p.eat(b'}') {
            return None;
        }
        if p.eat(b']') {
            return p.peek().is_none().then_some(out);
        }
        if !p.eat(b',') {
            return None;
        }
    }
}

/// A cursor over the start of a reply for [`result_follows`].
struct Prefix<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Prefix<'a> {
    /// Moves past `{`, `"jsonrpc"` and `"id"` members and `"result":`; whether it got there.
    fn past_result_key(&mut self) -> bool {
        self.envelope().is_some()
    }

    /// [`Self::past_result_key`], with the id's text when there was one.
    fn envelope(&mut self) -> Option<Option<&'a [u8]>> {
        // What nodes send, byte for byte, read without the general walk below.
        const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
        const RESULT: &[u8] = br#","result":"#;
        if self.peek().is_some() && self.b.get(self.at..).is_some_and(|r| r.starts_with(HEAD)) {
            let digits_at = self.at + HEAD.len();
            let rest = self.b.get(digits_at..)?;
            let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 && rest.get(digits..).is_some_and(|r| r.starts_with(RESULT)) {
                self.at = digits_at + digits + RESULT.len();
                return Some(rest.get(..digits));
            }
        }
        if !self.eat(b'{') {
            return None;
        }
        let mut id = None;
        loop {
            let key = self.key()?;
            let start = self.peek().map(|_| self.at);
            match key {
                b"result" => return Some(id),
                b"jsonrpc" if self.skip_scalar() => {}
                b"id" if self.skip_scalar() => id = start.and_then(|s| self.b.get(s..self.at)),
                _ => return None,
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Moves past one value, by its extent only: a string to its closing quote, an array or
    /// object to its closing bracket (strings inside skipped whole), anything else to the next
    /// comma, bracket, quote or whitespace. Whether a whole value was there.
    fn skip_value(&mut self) -> bool {
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek() else { return false };
            match c {
                b'"' => {
                    if !self.skip_string() {
                        return false;
                    }
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                    continue;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.at += 1;
                }
                b',' | b':' if depth > 0 => {
                    self.at += 1;
                    continue;
                }
                b'}' | b']' | b',' | b':' => return false,
                _ => {
                    let start = self.at;
                    while self.b.get(self.at).is_some_and(|c| {
                        !matches!(
                            c,
                            b',' | b':' | b'{' | b'}' | b'[' | b']' | b'"' | b' ' | b'\t' | b'\n' | b'\r'
                        )
                    }) {
                        self.at += 1;
                    }
                    if self.at == start {
                        return false;
                    }
                }
            }
            if depth == 0 {
                return true;
            }
        }
    }

    /// Whether a value that is neither `null` nor malformed at its first byte comes next.
    fn plain_value_next(&mut self) -> bool {
        matches!(self.peek(), Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f'))
    }

    /// Moves past the string whose opening quote is next (escapes allowed); whether it ended.
    fn skip_string(&mut self) -> bool {
        loop {
            self.at += 1;
            let Some(n) = self.b.get(self.at..).and_then(|r| memchr::memchr2(b'"', b'\\', r)) else {
                return false;
            };
            self.at += n;
            if self.b.get(self.at) == Some(&b'"') {
                self.at += 1;
                return true;
            }
            // A backslash: the byte it escapes is skipped with it.
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.at) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.at += 1;
        }
        None
    }

    /// Consumes `c` (after whitespace) if it is next.
    fn eat(&mut self, c: u8) -> bool {
        let next = self.peek() == Some(c);
        if next {
            self.at += 1;
        }
        next
    }

    /// A member name and its colon; `None` for anything else, or a name with escapes.
    fn key(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let rest = self.b.get(self.at..)?;
        let len = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at += len + 1;
        self.eat(b':').then(|| rest.get(..len)).flatten()
    }

    /// A string (escapes allowed), a number or `null`; whether one was complete.
    fn skip_scalar(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'n') => {
                let null = self.b.get(self.at..self.at + 4) == Some(b"null");
                self.at += 4;
                null
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                while self
                    .b
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    self.at += 1;
                }
                // A number running to the end of the prefix may not be complete.
                self.at > start && self.at < self.b.len()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::codes;

    #[test]
    fn only_a_plain_result_that_is_not_null_goes_unread() {
        for (reply, unread) in [
            (&br#"{"jsonrpc":"2.0","id":1,"result":{"hash":"0x1"}}"#[..], true),
            (br#"{"jsonrpc":"2.0","id":"a","result":["0x1"]}"#, true),
            (br#"{"id":1,"jsonrpc":"2.0","result": "0x1"}"#, true),
            (br#"{"jsonrpc":"2.0","id":1,"result":false}"#, true),
            (br#"{"jsonrpc":"2.0","id":1,"result":-1}"#, true),
            // Read: a null to retry, an error, another member first, not JSON-RPC at all.
            (br#"{"jsonrpc":"2.0","id":1,"result":null}"#, false),
            (br#"{"jsonrpc":"2.0","id":1,"result": null}"#, false),
            (br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000}}"#, false),
            (br#"{"error":null,"result":"0x1"}"#, false),
            (br#"{"jsonrpc":"2.0","id":1,"result":"#, false),
            (b"<html>", false),
            (b"", false),
        ] {
            assert_eq!(unread_result(reply), unread, "{}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn a_batch_of_plain_results_goes_unread_and_agrees_with_the_read() {
        let body = br#" [{"jsonrpc":"2.0","id":1,"result":"0x1"} , {"id":0,"jsonrpc":"2.0","result": {"a":[1,"]}\"",{}],"b":null}},
            {"jsonrpc":"2.0","id":2,"result":[]},{"id":3,"result":-1.5e3},{"id":4,"result":true}]"#;
        let unread = unread_batch(body).unwrap();
        let read = UpstreamReply::parse_batch(body).unwrap();
        assert_eq!(unread.len(), read.len());
        for ((id, bytes), (rid, reply)) in unread.iter().zip(&read) {
            assert_eq!((*id, *bytes), (*rid, reply.result.unwrap().get().as_bytes()));
        }
        assert_eq!(unread[1].1, br#"{"a":[1,"]}\"",{}],"b":null}"#);
        // Read whole: a null, an error, another member, an id kengate did not give, no array.
        for body in [
            &br#"[{"jsonrpc":"2.0","id":1,"result":null}]"#[..],
            br#"[{"jsonrpc":"2.0","id":1,"result":"0x1"},{"jsonrpc":"2.0","id":2,"error":{"code":1}}]"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":"0x1","error":null}]"#,
            br#"[{"jsonrpc":"2.0","id":"a","result":"0x1"}]"#,
            br#"[{"jsonrpc":"2.0","id":-1,"result":"0x1"}]"#,
            br#"[{"jsonrpc":"2.0","result":"0x1"}]"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":"0x1}]"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":["0x1"}]"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":"0x1"}"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":"0x1"}] x"#,
            br#"[]"#,
            br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#,
            b"",
        ] {
            assert_eq!(unread_batch(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn result_follows_reads_only_the_envelope() {
        assert!(result_follows(br#"{"jsonrpc":"2.0","id":1,"result":[{"#));
        assert!(result_follows(br#" { "id" : "a\"b" , "jsonrpc":"2.0", "result":"#));
        assert!(result_follows(br#"{"jsonrpc":"2.0","id":null,"result":null}"#));
        assert!(result_follows(br#"{"result":["#));
        assert!(result_follows(br#"{"id":-1.5e3,"result":1"#));
        // An error, another member first, or too short to tell: read whole.
        assert!(!result_follows(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000"#));
        assert!(!result_follows(br#"{"jsonrpc":"2.0","id":1,"extra":0,"result":[]}"#));
        assert!(!result_follows(br#"{"jsonrpc":"2.0","id":{"a":1},"result":[]}"#));
        assert!(!result_follows(br#"{"jsonrpc":"2.0","id":12"#));
        assert!(!result_follows(br#"{"jsonrpc":"2.0","id":"ab"#));
        assert!(!result_follows(br#"{"re\u0073ult":[]}"#));
        assert!(!result_follows(br#"[{"jsonrpc":"2.0","id":1,"result":[]}]"#));
        assert!(!result_follows(br#"{"jsonrpc":"2.0","id":nul"#));
        assert!(!result_follows(b""));
        assert!(!result_follows(b"<html>"));
    }

    #[test]
    fn error_objects() {
        let id = RawValue::from_string("\"abc\"".into()).unwrap();
        let e = RpcError::new(codes::METHOD_NOT_FOUND, "nope \"quoted\"");
        let b = error_response(Some((&*id).into()), &e);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["error"]["code"], -32601);
        assert_eq!(v["error"]["message"], "nope \"quoted\"");
        let b = error_response(None, &e);
        assert!(std::str::from_utf8(&b).unwrap().contains("\"id\":null"));
    }

    #[test]
    fn results_and_batches() {
        let id = RawValue::from_string("1".into()).unwrap();
        let r = result_response(Some((&*id).into()), "\"0x10\"");
        assert_eq!(&r[..], br#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"#);
        let b = batch_response(&[r.clone(), Bytes::from_static(b"{\"a\":1}\n")]);
        assert_eq!(&b[..], br#"[{"jsonrpc":"2.0","id":1,"result":"0x10"},{"a":1}]"#);
    }

    #[test]
    fn batch_replies_are_read_in_one_pass() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"result":"0x1"},{"id":0,"error":{"code":-1}},
            {"id":"x","result":1},{"id":2},{"id":3,"result":null,"error":null},{"id":4,"error":null}]"#;
        let got = UpstreamReply::parse_batch(body).unwrap();
        let ids: Vec<usize> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 0, 3]);
        assert_eq!(got[0].1.result.unwrap().get(), "\"0x1\"");
        assert!(got[1].1.error.is_some());
        assert!(got[2].1.is_null_result());
        assert!(UpstreamReply::parse_batch(b"{}").is_err());
    }

    #[test]
    fn replies_read_the_same_as_text_and_as_bytes() {
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"a":"\u00e9t\u00e9","b":"é"}}"#.as_bytes();
        let r = UpstreamReply::parse(ok).unwrap();
        assert_eq!(r.result.unwrap().get(), r#"{"a":"\u00e9t\u00e9","b":"é"}"#);
        // A stray byte in a member kengate skips was read before, and still is.
        let stray = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"x\":\"\xff\",\"result\":\"0x1\"}";
        assert_eq!(UpstreamReply::parse(stray).unwrap().result.unwrap().get(), "\"0x1\"");
        // One in the result is refused, as before.
        assert!(UpstreamReply::parse(b"{\"id\":1,\"result\":\"\xff\"}").is_err());
        let batch = br#"[{"jsonrpc":"2.0","id":1,"result":"0x2"},{"jsonrpc":"2.0","id":0,"error":{"code":1}}]"#;
        let b = UpstreamReply::parse_batch(batch).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].0, b[0].1.result.unwrap().get()), (1, "\"0x2\""));
        assert_eq!((b[1].0, b[1].1.error.unwrap().get()), (0, "{\"code\":1}"));
    }

    #[test]
    fn upstream_reply_null_detection() {
        let r = UpstreamReply::parse(br#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap();
        assert!(r.is_null_result());
        let r = UpstreamReply::parse(br#"{"jsonrpc":"2.0","id":1,"result":{"a":null}}"#).unwrap();
        assert!(!r.is_null_result());
        let r = UpstreamReply::parse(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}"#).unwrap();
        assert!(!r.is_null_result());
        assert!(UpstreamReply::parse(b"<html>").is_err());
        assert!(UpstreamReply::parse(b"{}").is_err());
    }
}
