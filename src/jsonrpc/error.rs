//! The JSON-RPC error object and the codes kengate uses. Mapping from domain errors to
//! these lives with the domain error (`proxy::ProxyError`), in one place.

use serde::Serialize;

/// Error codes: the JSON-RPC 2.0 reserved ones plus kengate's own in the server range.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object (or an empty / oversized batch).
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available through this gateway.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Geth's generic server error, used where kengate mimics a node answer (unknown filter).
    pub const SERVER_ERROR: i64 = -32000;
    /// No upstream node can serve the call right now.
    pub const NO_UPSTREAM: i64 = -32010;
    /// Every upstream attempt failed at the transport level.
    pub const UPSTREAM_FAILED: i64 = -32011;
    /// The request carries no valid access key, or the key may not be used here.
    pub const UNAUTHORIZED: i64 = -32001;
    /// A limit was exceeded (the code Ethereum gateways use for rate limits too).
    pub const LIMIT_EXCEEDED: i64 = -32005;
}

/// A JSON-RPC error object, serialized as `{"code":..,"message":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcError {
    /// One of [`codes`] (or any code for errors passed through).
    pub code: i64,
    /// Human-readable message; clients display it.
    pub message: String,
}

impl RpcError {
    /// Builds an error object.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Most bytes of a client's input (a method name) quoted back in an error message.
const QUOTE_MAX: usize = 256;

/// A client-supplied string as quoted in an error: at most [`QUOTE_MAX`] bytes, cut at a
/// character boundary and marked when cut.
pub fn clip(s: &str) -> String {
    if s.len() <= QUOTE_MAX {
        return s.to_owned();
    }
    let mut end = QUOTE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
