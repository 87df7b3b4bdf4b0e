//! The pipeline's domain error and its single mapping to JSON-RPC error objects.

use thiserror::Error;

use crate::cluster::UpstreamError;
use crate::jsonrpc::{codes, RpcError};
use crate::routing::RouteError;

/// Why kengate itself answered a call with an error (node errors pass through verbatim
/// and never become a `ProxyError`).
#[derive(Debug, Error)]
pub enum ProxyError {
    /// Not a method kengate knows.
    #[error("the method {0} does not exist/is not available")]
    MethodNotFound(String),
    /// Known, but denied by policy.
    #[error("the method {0} is not allowed through this gateway (allow it under [methods] in proxy.toml)")]
    MethodDenied(String),
    /// Subscriptions need WebSocket session support, which is not served yet.
    #[error("the method {0} (subscriptions) is not supported by this gateway yet; poll instead")]
    SubscriptionsUnsupported(String),
    /// Params routing must read are malformed, or no served head exists yet.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// No node is eligible for the call.
    #[error("no upstream node is available for this call")]
    NoUpstream,
    /// The filter id is not known (expired, uninstalled, or its node is gone).
    #[error("filter not found")]
    FilterNotFound,
    /// kengate's own store failed.
    #[error("kengate store error: {0}")]
    Store(String),
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
            ProxyError::MethodNotFound(_) | ProxyError::MethodDenied(_) | ProxyError::SubscriptionsUnsupported(_) => {
                codes::METHOD_NOT_FOUND
            }
            ProxyError::Route(RouteError::InvalidParams(_)) => codes::INVALID_PARAMS,
            ProxyError::Route(RouteError::NotReady) | ProxyError::NoUpstream => codes::NO_UPSTREAM,
            ProxyError::FilterNotFound => codes::SERVER_ERROR,
            ProxyError::Upstream(_) => codes::UPSTREAM_FAILED,
            ProxyError::Store(_) => codes::INTERNAL_ERROR,
            ProxyError::Shared(e) => return e.clone(),
            ProxyError::RateLimited(_) => codes::LIMIT_EXCEEDED,
            ProxyError::NotPermitted(_) => codes::METHOD_NOT_FOUND,
        };
        RpcError::new(code, self.to_string())
    }
}
