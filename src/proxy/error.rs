//! The pipeline's domain error and its single mapping to JSON-RPC error objects.

use thiserror::Error;

use crate::cluster::UpstreamError;
use crate::jsonrpc::{codes, RpcError};
use crate::methods::Deny;
use crate::routing::RouteError;

/// Why a denied method is denied, in the words of the refusal.
fn deny_reason(why: Deny) -> &'static str {
    match why {
        Deny::NodeKey => "it makes the node use keys it holds (accounts, signing, sending from them)",
        Deny::Operator => "it belongs to a node-operator namespace",
        Deny::Internal => "it is node-internal wiring, not a public API",
        Deny::Config => "this gateway's configuration denies it",
    }
}

/// Why kengate itself answered a call with an error (node errors pass through verbatim
/// and never become a `ProxyError`).
#[derive(Debug, Error)]
pub enum ProxyError {
    /// Not a method kengate knows.
    #[error("the method {0} does not exist/is not available")]
    MethodNotFound(String),
    /// Denied by policy, with the reason.
    #[error("the method {0} is not allowed through this gateway: {reason} (an operator can allow it under [methods] in proxy.toml)", reason = deny_reason(*.1))]
    MethodDenied(String, Deny),
    /// Params routing must read are malformed, or no served head exists yet.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// No node could take the call within `cluster.node_wait_ms`; says what the nodes were.
    #[error("no upstream node could take this call within {waited_ms} ms (served head {served_head}; {nodes})")]
    NoUpstream {
        /// How long the call waited.
        waited_ms: u64,
        /// The served head at the end of the wait.
        served_head: u64,
        /// Each node's state and head.
        nodes: String,
    },
    /// kengate's own store failed.
    #[error("kengate store error: {0}")]
    Store(String),
    /// The node refused the request itself (HTTP 4xx, e.g. 413 over its body limit): its
    /// status and text, not counted against the node.
    #[error("the node refused this request: {}", .0.detail)]
    NodeRefused(UpstreamError),
    /// Every attempt failed at the transport level.
    #[error("upstream node {} failed: {}", .0.node, .0.kind_label())]
    Upstream(UpstreamError),
    /// The error of an identical call this one was coalesced with.
    #[error("{}", .0.message)]
    Shared(RpcError),
    /// Over a rate limit (WebSocket calls; HTTP answers 429).
    #[error("{0}")]
    RateLimited(String),
    /// The caller's credential does not allow this method.
    #[error("the method {0} is not allowed for this access key")]
    NotPermitted(String),
}

impl ProxyError {
    /// The error object sent to the client.
    pub fn to_rpc(&self) -> RpcError {
        let code = match self {
            ProxyError::MethodNotFound(_) | ProxyError::MethodDenied(..) => codes::METHOD_NOT_FOUND,
            ProxyError::Route(RouteError::InvalidParams(_)) => codes::INVALID_PARAMS,
            ProxyError::Route(RouteError::NotReady) | ProxyError::NoUpstream { .. } => codes::NO_UPSTREAM,
            ProxyError::Upstream(_) => codes::UPSTREAM_FAILED,
            ProxyError::NodeRefused(_) => codes::INVALID_REQUEST,
            ProxyError::Store(_) => codes::INTERNAL_ERROR,
            ProxyError::Shared(e) => return e.clone(),
            ProxyError::RateLimited(_) => codes::LIMIT_EXCEEDED,
            ProxyError::NotPermitted(_) => codes::METHOD_NOT_FOUND,
        };
        RpcError::new(code, self.to_string())
    }
}
