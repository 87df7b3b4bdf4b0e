//! Parses a client body into borrowed calls: ids, methods and params stay slices of the
//! original bytes ([`RawJson`]), so forwarding an untouched param costs no copy.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::{codes, scan, RpcError};

/// A JSON value's text exactly as it was sent, without the whitespace around it, and known to
/// be valid JSON: it only comes from text serde read as a value ([`RawValue`]) or that the
/// request scanner validated, so it can be written into a reply as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// The value's JSON text.
    pub fn get(&self) -> &'a str {
        self.0
    }

    /// Text the request scanner validated as one JSON value.
    pub(super) fn scanned(text: &'a str) -> Self {
        RawJson(text)
    }
}

impl<'a> From<&'a RawValue> for RawJson<'a> {
    fn from(v: &'a RawValue) -> Self {
        RawJson(v.get())
    }
}

/// One JSON-RPC call, borrowed from the request body.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The client's id exactly as sent; `None` for a notification (no `id` member).
    pub id: Option<RawJson<'a>>,
    /// The method name (owned only if the client escaped characters in it).
    pub method: Cow<'a, str>,
    /// The params exactly as sent, if any.
    pub params: Option<RawJson<'a>>,
}

/// A parsed body: one call or a batch. A batch element that is not a valid call keeps its
/// place as an error so the response array lines up with what the client sent.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A single request object.
    Single(Result<Call<'a>, RpcError>),
    /// A non-empty batch.
    Batch(Vec<Result<Call<'a>, RpcError>>),
}

/// Why a whole body was refused (answered with one error object, id null).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes are not JSON.
    #[error("parse error: {0}")]
    Json(String),
    /// JSON, but neither a request object nor an array.
    #[error("invalid request: {0}")]
    NotARequest(String),
    /// `[]`.
    #[error("invalid request: empty batch")]
    EmptyBatch,
    /// More elements than `limits.max_batch`.
    #[error("invalid request: batch of {len} calls exceeds the limit of {max}")]
    BatchTooLarge {
        /// Elements sent.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

impl ParseError {
    /// The error object the client receives.
    pub fn to_rpc(&self) -> RpcError {
        let code = match self {
            ParseError::Json(_) => codes::PARSE_ERROR,
            _ => codes::INVALID_REQUEST,
        };
        RpcError::new(code, self.to_string())
    }
}

/// A call's members as read, before they are checked against JSON-RPC 2.0 ([`checked_call`]).
pub(super) struct Members<'a> {
    /// `jsonrpc`, present (even `null`) or not.
    pub jsonrpc: Option<RawJson<'a>>,
    /// `id`, present (even `null`) or not.
    pub id: Option<RawJson<'a>>,
    /// `method` when it is a string.
    pub method: Option<Cow<'a, str>>,
    /// `params` unless absent or `null`.
    pub params: Option<RawJson<'a>>,
}

/// The members as serde reads them.
#[derive(Deserialize)]
struct RawCall<'a> {
    #[serde(borrow, default, deserialize_with = "super::present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "super::present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "cow_str")]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

impl<'a> From<RawCall<'a>> for Members<'a> {
    fn from(rc: RawCall<'a>) -> Self {
        Members {
            jsonrpc: rc.jsonrpc.map(RawJson::from),
            id: rc.id.map(RawJson::from),
            method: rc.method,
            params: rc.params.map(RawJson::from),
        }
    }
}

/// Deserializes a string borrowed from the input when it has no escapes (serde's
/// `#[serde(borrow)]` does not reach inside an `Option<Cow>`).
fn cow_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_str(V).map(Some)
}

/// Parses a request body. Whitespace around the JSON is allowed.
///
/// The common shape — calls whose keys and strings have no escapes, every call valid — is
/// read by [`scan`] in one pass without serde; else one pass of serde where the body is well
/// formed: a single call is read straight into its fields, a batch straight into its calls'
/// fields. Anything else — a syntax error, an element that is not a valid call, a batch over
/// the limit — goes to [`parse_body_checked`], which validates the whole body first and reads
/// each element on its own (so one bad element keeps its place as an error); the three agree
/// on every input (`fuzz/fuzz_targets/jsonrpc_body.rs` checks it).
pub fn parse_body(body: &[u8], max_batch: usize) -> Result<Incoming<'_>, ParseError> {
    if let Some(incoming) = scanned(body, max_batch) {
        return Ok(incoming);
    }
    parse_body_serde(body, max_batch)
}

/// [`parse_body`] without the scanner: serde's one pass, else the checked parse.
pub fn parse_body_serde(body: &[u8], max_batch: usize) -> Result<Incoming<'_>, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let fast = match first {
        Some(b'[') => fast_batch(body, max_batch).map(Incoming::Batch),
        Some(b'{') => std::str::from_utf8(body)
            .ok()
            .and_then(|s| parse_call_str(s).ok())
            .map(|c| Incoming::Single(Ok(c))),
        _ => None,
    };
    match fast {
        Some(incoming) => Ok(incoming),
        None => parse_body_checked(body, max_batch),
    }
}

/// The body as [`scan`] reads it, when it has the common shape and every call is valid.
fn scanned(body: &[u8], max_batch: usize) -> Option<Incoming<'_>> {
    // UTF-8 checked over the whole body, as serde's parse does.
    let text = std::str::from_utf8(body).ok()?;
    match scan::body(text, max_batch)? {
        scan::Body::Single(m) => checked_call(m).ok().map(|c| Incoming::Single(Ok(c))),
        scan::Body::Batch(ms) => ms
            .into_iter()
            .map(|m| checked_call(m).ok().map(Ok))
            .collect::<Option<Vec<_>>>()
            .map(Incoming::Batch),
    }
}

/// A batch that is well formed JSON, within the size limit, and whose elements are all valid
/// calls, read in one pass (serde reads each element's fields as it meets them); `None` for
/// anything else.
fn fast_batch(body: &[u8], max_batch: usize) -> Option<Vec<Result<Call<'_>, RpcError>>> {
    // UTF-8 checked over the whole body first, as the checked parse does: serde skips the
    // members a call does not have without checking their bytes.
    let text = std::str::from_utf8(body).ok()?;
    let calls: Vec<RawCall<'_>> = serde_json::from_str(text).ok()?;
    if calls.is_empty() || calls.len() > max_batch {
        return None;
    }
    calls
        .into_iter()
        .map(|rc| checked_call(rc.into()).ok().map(Ok))
        .collect()
}

/// The elements of a JSON array that is already known to be valid JSON (a param list read
/// from a request), found by their brackets, strings and commas without reading them again:
/// `None` when the text is not an array.
fn split_array(text: &str) -> Option<Vec<&str>> {
    let body = text.as_bytes();
    let mut i = body.iter().position(|b| !is_json_ws(*b))?;
    if body.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    let mut elems = Vec::with_capacity(4);
    let mut depth = 1usize;
    let mut start = i;
    loop {
        // The next structural byte; everything between is a scalar's or whitespace.
        i += body.get(i..)?.iter().position(|&b| is_structural(b))?;
        let b = *body.get(i)?;
        i += 1;
        match b {
            b'"' => loop {
                // The string's end: the next quote not escaped by a backslash.
                i += memchr::memchr2(b'"', b'\\', body.get(i..)?)?;
                let quote = *body.get(i)? == b'"';
                i += if quote { 1 } else { 2 };
                if quote {
                    break;
                }
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 1 => depth -= 1,
            b',' | b']' if depth == 1 => {
                // Structural bytes are ASCII, so these are char boundaries.
                let elem = text.get(start..i - 1)?.trim_matches(JSON_WS);
                match (elem.is_empty(), b) {
                    // `[]` (and `[ ]`): no elements.
                    (true, b']') if elems.is_empty() => {}
                    (true, _) => return None,
                    (false, _) => elems.push(elem),
                }
                if b == b']' {
                    return body.get(i..)?.iter().all(|b| is_json_ws(*b)).then_some(elems);
                }
                start = i;
            }
            // `}` closing the array, or `,` inside an element.
            _ if b == b',' => {}
            _ => return None,
        }
    }
}

/// The bytes [`split_array`] stops at: quotes, brackets and commas.
fn is_structural(b: u8) -> bool {
    matches!(b, b'"' | b'{' | b'}' | b'[' | b']' | b',')
}

/// JSON's whitespace (not `is_ascii_whitespace`, which takes form feed too).
const JSON_WS: [char; 4] = [' ', '\t', '\n', '\r'];

/// A byte of [`JSON_WS`].
fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// [`parse_body`]'s reference: the whole body is validated as JSON first, then each call read.
pub fn parse_body_checked(body: &[u8], max_batch: usize) -> Result<Incoming<'_>, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => {
            let elems: Vec<&RawValue> = serde_json::from_slice(body).map_err(classify)?;
            if elems.is_empty() {
                return Err(ParseError::EmptyBatch);
            }
            if elems.len() > max_batch {
                return Err(ParseError::BatchTooLarge {
                    len: elems.len(),
                    max: max_batch,
                });
            }
            Ok(Incoming::Batch(
                elems.into_iter().map(|e| parse_call_str(e.get())).collect(),
            ))
        }
        Some(b'{') => {
            let raw: &RawValue = serde_json::from_slice(body).map_err(classify)?;
            Ok(Incoming::Single(parse_call_str(raw.get())))
        }
        None => Err(ParseError::Json("empty body".into())),
        Some(_) => {
            // Valid JSON of another type is an invalid request; anything else a parse error.
            serde_json::from_slice::<&RawValue>(body).map_err(classify)?;
            Err(ParseError::NotARequest(
                "expected a request object or a batch array".into(),
            ))
        }
    }
}

fn classify(e: serde_json::Error) -> ParseError {
    if e.is_data() {
        ParseError::NotARequest(e.to_string())
    } else {
        ParseError::Json(e.to_string())
    }
}

/// One call from its JSON text.
fn parse_call_str(raw: &str) -> Result<Call<'_>, RpcError> {
    let rc: RawCall<'_> = serde_json::from_str(raw)
        .map_err(|e| RpcError::new(codes::INVALID_REQUEST, format!("invalid request: {e}")))?;
    checked_call(rc.into())
}

/// A call's fields as read, checked against JSON-RPC 2.0.
fn checked_call(rc: Members<'_>) -> Result<Call<'_>, RpcError> {
    let invalid = |msg: String| RpcError::new(codes::INVALID_REQUEST, msg);
    if rc.jsonrpc.map(|v| v.get()) != Some("\"2.0\"") {
        return Err(invalid("invalid request: jsonrpc must be \"2.0\"".into()));
    }
    if let Some(id) = rc.id {
        if matches!(id.get().as_bytes().first(), Some(b'{' | b'[' | b't' | b'f')) {
            return Err(invalid("invalid request: id must be a string, number or null".into()));
        }
    }
    let method = match rc.method {
        Some(m) if !m.is_empty() => m,
        _ => return Err(invalid("invalid request: missing method".into())),
    };
    if let Some(p) = rc.params {
        if !matches!(p.get().as_bytes().first(), Some(b'[' | b'{' | b'n')) {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                "invalid params: params must be an array or an object",
            ));
        }
    }
    Ok(Call {
        id: rc.id,
        method,
        params: rc.params.filter(|p| p.get() != "null"),
    })
}

/// Splits positional params into the JSON text of each element, borrowed (the params were
/// read as valid JSON with the call, so they are split without being read again). Empty when
/// params are absent or `null`; an error when they are an object (Klaytn only takes
/// positional params).
pub fn split_params(params: Option<RawJson<'_>>) -> Result<Vec<&str>, RpcError> {
    match params {
        // `"params": null` is read as no params by the node too.
        None => Ok(Vec::new()),
        Some(p) if p.get() == "null" => Ok(Vec::new()),
        Some(p) => split_array(p.get()).ok_or_else(|| {
            RpcError::new(
                codes::INVALID_PARAMS,
                "invalid params: expected a positional params array",
            )
        }),
    }
}

/// The text of a JSON string value that has no escapes — a param or a result as parsed, so
/// already valid JSON — as `serde_json` would borrow it, without a serde round trip; `None`
/// for anything else, escaped strings included, which serde's borrowed `&str` refuses too.
pub fn json_str(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse_body` and its reference agree (compared through `Debug`: `RawValue` has no `Eq`).
    fn agree(body: &str, max: usize) {
        assert_eq!(
            format!("{:?}", parse_body(body.as_bytes(), max)),
            format!("{:?}", parse_body_checked(body.as_bytes(), max)),
            "{body}"
        );
    }

    #[test]
    fn json_strings_read_as_serde_borrows_them() {
        for text in [
            "\"latest\"",
            "\"\"",
            "\"0x10\"",
            "\"a\\\"b\"",
            "\"\\u0041\"",
            "5",
            "null",
            "[\"x\"]",
            "{}",
        ] {
            assert_eq!(json_str(text), serde_json::from_str::<&str>(text).ok(), "{text}");
        }
    }

    #[test]
    fn the_one_pass_parse_agrees_with_the_checked_one() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"klay_getBalance","params":["0x01","latest"]}"#;
        for body in [
            call.to_owned(),
            format!(" \n{call}\t"),
            format!("[{call}]"),
            format!("[ {call} , {call},{call} ]\n"),
            format!(r#"[{call}, 1, "x", {{"id":2}}, null, [], {{"jsonrpc":"1.0","method":"m"}}]"#),
            format!(r#"[{call}, {{"method":"a\"],}}{{[","jsonrpc":"2.0","id":"\\"}}]"#),
            format!("[{call},]"),
            format!("[,{call}]"),
            format!("[{call} {call}]"),
            format!("[{call}] x"),
            format!("[{call}"),
            format!("[{call}}}]"),
            format!(r#"[{call}, {{"id":1, "x": tru}}]"#),
            format!(r#"[{{"method": 1, "x": tru}}, {call}]"#),
            r#"[{"method":"m","params":[1}]}]"#.to_owned(),
            "[]".to_owned(),
            " [ ] ".to_owned(),
            "[1,2,3,4,5,6,7,8,9,10,11]".to_owned(),
            "[1,2,3,4,5,6,7,8,9,10,11".to_owned(),
            r#"{"jsonrpc":"2.0","method":"m","method":"n"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"m"} {"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"\u0041"}"#.to_owned(),
            "\"str\"".to_owned(),
            "".to_owned(),
            "[\"\\\"]\"]".to_owned(),
        ] {
            agree(&body, 10);
        }
        agree("[\u{ff}]", 10);
        // Bytes that are not UTF-8 in a member no call has.
        let stray = include_bytes!("../../fuzz/corpus/jsonrpc_body/batch_stray_bytes_in_unknown_member.json");
        assert_eq!(
            format!("{:?}", parse_body(stray, 10)),
            format!("{:?}", parse_body_checked(stray, 10))
        );
        agree(&format!("[{call}]\x0c"), 10);
        agree(&format!("[\x0c{call}]"), 10);
        agree(&format!("\x0c[{call}]"), 10);
        let deep = format!("[{}{}]", "[".repeat(300), "]".repeat(300));
        agree(&deep, 10);
    }

    #[test]
    fn a_batch_is_split_at_its_own_commas_only() {
        let elems = split_array(r#" [ {"a":[1,2],"b":"x,]\"}"} ,2, "y" ]  "#).unwrap();
        assert_eq!(elems, vec![r#"{"a":[1,2],"b":"x,]\"}"}"#, "2", r#""y""#]);
        assert_eq!(split_array("[]"), Some(vec![]));
        assert_eq!(split_array("[ ]"), Some(vec![]));
        for bad in ["[1,]", "[,1]", "[1", "[1] 2", "[}", "{}", "[\"]"] {
            assert_eq!(split_array(bad), None, "{bad}");
        }
    }

    #[test]
    fn params_split_into_the_elements_serde_reads() {
        for params in [
            r#"["0x01","latest"]"#,
            r#" [ "a\"],[" , {"b":[1,{"c":"]"}]} , null,true , -1.5e3 ] "#,
            "[[]]",
            "[{}]",
            r#"["\\"]"#,
            "[]",
        ] {
            let raw: &RawValue = serde_json::from_str(params).unwrap();
            let read: Vec<&RawValue> = serde_json::from_str(params).unwrap();
            let read: Vec<&str> = read.iter().map(|r| r.get()).collect();
            assert_eq!(split_params(Some(raw.into())).unwrap(), read, "{params}");
        }
        let object: &RawValue = serde_json::from_str(r#"{"a":[1]}"#).unwrap();
        assert_eq!(
            split_params(Some(object.into())).unwrap_err().code,
            codes::INVALID_PARAMS
        );
    }

    fn single(body: &str) -> Result<Call<'_>, RpcError> {
        match parse_body(body.as_bytes(), 10) {
            Ok(Incoming::Single(c)) => c,
            other => panic!("expected single, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_call_borrowing_params() {
        let c = single(r#"{"jsonrpc":"2.0","id":7,"method":"klay_getBalance","params":["0x01","latest"]}"#).unwrap();
        assert_eq!(c.id.unwrap().get(), "7");
        assert_eq!(c.method, "klay_getBalance");
        assert!(matches!(c.method, Cow::Borrowed(_)));
        assert_eq!(c.params.unwrap().get(), r#"["0x01","latest"]"#);
        let ps = split_params(c.params).unwrap();
        assert_eq!(ps[1], r#""latest""#);
    }

    #[test]
    fn whole_body_errors() {
        let check = |body: &str, want: ParseError| {
            assert_eq!(parse_body(body.as_bytes(), 2).unwrap_err(), want, "{body}");
        };
        check("[]", ParseError::EmptyBatch);
        check(" [1,2,3]", ParseError::BatchTooLarge { len: 3, max: 2 });
        assert!(matches!(parse_body(b"{", 2), Err(ParseError::Json(_))));
        assert!(matches!(parse_body(b"", 2), Err(ParseError::Json(_))));
        assert!(matches!(parse_body(b"nul", 2), Err(ParseError::Json(_))));
        assert!(matches!(parse_body(b"42", 2), Err(ParseError::NotARequest(_))));
        assert!(matches!(parse_body(b"\"x\"", 2), Err(ParseError::NotARequest(_))));
        assert_eq!(ParseError::EmptyBatch.to_rpc().code, codes::INVALID_REQUEST);
        assert_eq!(ParseError::Json("x".into()).to_rpc().code, codes::PARSE_ERROR);
    }

    #[test]
    fn invalid_calls_are_per_element() {
        let body = r#"[1, {"jsonrpc":"2.0","id":1,"method":"eth_chainId"}, {"jsonrpc":"1.0","id":2,"method":"x"}, {"jsonrpc":"2.0","id":{},"method":"x"}, {"jsonrpc":"2.0","id":3}]"#;
        let Ok(Incoming::Batch(calls)) = parse_body(body.as_bytes(), 10) else {
            panic!("batch expected");
        };
        let codes: Vec<i64> = calls
            .iter()
            .map(|c| c.as_ref().map(|_| 0).unwrap_or_else(|e| e.code))
            .collect();
        assert_eq!(codes, vec![-32600, 0, -32600, -32600, -32600]);
    }

    #[test]
    fn params_shape() {
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":1,"method":"m","params":5}"#)
                .unwrap_err()
                .code,
            codes::INVALID_PARAMS
        );
        let c = single(r#"{"jsonrpc":"2.0","id":1,"method":"m","params":null}"#).unwrap();
        assert!(c.params.is_none());
        let c = single(r#"{"jsonrpc":"2.0","method":"m"}"#).unwrap();
        assert!(c.id.is_none());
        let c = single(r#"{"jsonrpc":"2.0","id":"a","method":"m","params":{"a":1}}"#).unwrap();
        assert!(split_params(c.params).is_err());
    }

    #[test]
    fn escaped_method_names_are_owned() {
        let c = single(r#"{"jsonrpc":"2.0","id":1,"method":"klay\u005fchainID"}"#).unwrap();
        assert_eq!(c.method, "klay_chainID");
    }
}
