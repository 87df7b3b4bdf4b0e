//! Where the small types of the rest of kengate meet HTTP: access reads a request's headers
//! through [`Headers`], implemented here for `HeaderMap` (the plain front has its own, the
//! headers it picked out of a head); access's and networks' refusals get their HTTP status
//! here, the one mapping.

use http::header::{AUTHORIZATION, FORWARDED};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::access::{AccessError, DenialKind, Denied, Headers};
use crate::networks::NetworkError;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

impl Headers for HeaderMap {
    fn authorization(&self) -> impl Iterator<Item = Option<&str>> {
        self.get_all(AUTHORIZATION).iter().map(|v| v.to_str().ok())
    }

    fn x_forwarded_for(&self) -> impl Iterator<Item = Option<&str>> {
        self.get_all(X_FORWARDED_FOR).iter().map(|v| v.to_str().ok())
    }

    fn forwarded(&self) -> impl Iterator<Item = Option<&str>> {
        self.get_all(FORWARDED).iter().map(|v| v.to_str().ok())
    }
}

/// What admission reads of a request's headers: access's [`Headers`], and `X-Chain-Id`.
pub(super) trait AdmitHeaders: Headers {
    /// The first `X-Chain-Id` value.
    fn x_chain_id(&self) -> Option<&[u8]>;
}

impl AdmitHeaders for HeaderMap {
    fn x_chain_id(&self) -> Option<&[u8]> {
        self.get("x-chain-id").map(HeaderValue::as_bytes)
    }
}

/// 401 when the credential is missing or not (or no longer) valid; 403 when a valid key is
/// not allowed (disabled, network, IP); 429 when over a rate.
pub(crate) fn denied_status(d: &Denied) -> StatusCode {
    match d.kind() {
        DenialKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        DenialKind::Forbidden => StatusCode::FORBIDDEN,
        DenialKind::OverRate => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// The admin API's status for a key-management error.
pub(crate) fn access_error_status(e: &AccessError) -> StatusCode {
    match e {
        AccessError::Invalid { .. } => StatusCode::BAD_REQUEST,
        AccessError::NotFound(_) => StatusCode::NOT_FOUND,
        AccessError::ConfigKey(_) | AccessError::Revoked(_) => StatusCode::CONFLICT,
        AccessError::Store(_) | AccessError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// 404 for a network that does not exist (by name or chain id); 400 for the rest.
pub(crate) fn network_status(e: &NetworkError) -> StatusCode {
    match e {
        NetworkError::UnknownName(_) | NetworkError::UnknownChainId(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_401_403_429() {
        let check = |d: Denied, status: u16| assert_eq!(denied_status(&d).as_u16(), status, "{d:?}");
        check(Denied::MissingCredential, 401);
        check(Denied::MalformedCredential("x"), 401);
        check(Denied::UnknownKey, 401);
        check(Denied::WrongSecret, 401);
        check(Denied::Revoked, 401);
        check(Denied::Expired, 401);
        check(Denied::Disabled, 403);
        check(Denied::NetworkNotAllowed, 403);
        check(Denied::IpNotAllowed, 403);
        check(Denied::RateLimited { retry_after_secs: 3 }, 429);
        check(Denied::LockedOut { retry_after_secs: 3 }, 429);
    }

    #[test]
    fn headers_are_read_as_text_or_not_at_all() {
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, http::HeaderValue::from_static("Bearer a"));
        h.append(AUTHORIZATION, http::HeaderValue::from_bytes(b"\xff").unwrap());
        h.append(X_FORWARDED_FOR, http::HeaderValue::from_static("1.2.3.4"));
        assert_eq!(h.authorization().collect::<Vec<_>>(), [Some("Bearer a"), None]);
        assert_eq!(h.x_forwarded_for().collect::<Vec<_>>(), [Some("1.2.3.4")]);
        assert_eq!(h.forwarded().count(), 0);
    }
}
