//! The two error types of access control: [`Denied`] (a request refused: small, `Copy`, on the
//! hot path, with its kind, metric label and client message) and [`AccessError`]
//! (configuration and key management, cold path). `server` maps both to HTTP statuses.

use thiserror::Error;

use crate::store::StoreError;

/// Why a request is refused. Messages never echo a secret, and an unknown id reads the same as
/// a wrong secret so that ids cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Denied {
    /// Auth is on and the request carries no credential.
    #[error("an access key is required (Authorization: Bearer <id>.<secret>)")]
    MissingCredential,
    /// A credential is there but cannot be parsed; says what is wrong with it.
    #[error("malformed credential: {0}")]
    MalformedCredential(&'static str),
    /// No key with that id.
    #[error("invalid access key id or secret")]
    UnknownKey,
    /// The id exists, the secret does not match.
    #[error("invalid access key id or secret")]
    WrongSecret,
    /// The key was revoked (only said after the secret matched).
    #[error("this access key has been revoked")]
    Revoked,
    /// The key is disabled.
    #[error("this access key is disabled")]
    Disabled,
    /// The key's `expires_at` has passed.
    #[error("this access key has expired")]
    Expired,
    /// The key is not allowed on the requested network.
    #[error("this access key may not be used on this network")]
    NetworkNotAllowed,
    /// The client IP is outside the key's `ip_allow`.
    #[error("this access key may not be used from this IP address")]
    IpNotAllowed,
    /// A token bucket is empty.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the request would be admitted (≥ 1): the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// Too many failed authentications from this address: every request is refused until
    /// `throttle.auth_failures_per_ip` refills.
    #[error("too many failed authentications from this address; retry after {retry_after_secs} s")]
    LockedOut {
        /// Seconds until the address may try again (≥ 1): the `Retry-After` header.
        retry_after_secs: u64,
    },
}

/// What kind of refusal a [`Denied`] is (`server` answers 401, 403 and 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    /// The credential is missing or not (or no longer) valid.
    Unauthenticated,
    /// A valid key is not allowed (disabled, network, IP).
    Forbidden,
    /// Over a rate, or locked out after failed authentications.
    OverRate,
}

impl Denied {
    /// Unauthenticated when the credential is missing or not (or no longer) valid; Forbidden
    /// when a valid key is not allowed (disabled, network, IP); OverRate when over a rate.
    pub fn kind(&self) -> DenialKind {
        match self {
            Denied::MissingCredential
            | Denied::MalformedCredential(_)
            | Denied::UnknownKey
            | Denied::WrongSecret
            | Denied::Revoked
            | Denied::Expired => DenialKind::Unauthenticated,
            Denied::Disabled | Denied::NetworkNotAllowed | Denied::IpNotAllowed => DenialKind::Forbidden,
            Denied::RateLimited { .. } | Denied::LockedOut { .. } => DenialKind::OverRate,
        }
    }

    /// Metric label. An unknown key id and a wrong secret share one (`bad_credentials`), as
    /// they share one 401: `/metrics` must not tell a guesser which ids exist. The operator's
    /// log has the difference ([`Denied::detail`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::MissingCredential => "missing_credential",
            Denied::MalformedCredential(_) => "malformed_credential",
            Denied::UnknownKey | Denied::WrongSecret => "bad_credentials",
            Denied::Revoked => "revoked",
            Denied::Disabled => "disabled",
            Denied::Expired => "expired",
            Denied::NetworkNotAllowed => "network",
            Denied::IpNotAllowed => "ip",
            Denied::RateLimited { .. } => "rate",
            Denied::LockedOut { .. } => "auth_lockout",
        }
    }

    /// The reason for the operator's log (tells an unknown id from a wrong secret).
    pub fn detail(&self) -> &'static str {
        match self {
            Denied::UnknownKey => "unknown_key",
            Denied::WrongSecret => "wrong_secret",
            other => other.reason(),
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The `WWW-Authenticate` header value that goes with a 401.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        (self.kind() == DenialKind::Unauthenticated).then_some("Bearer realm=\"kengate\"")
    }

    /// `Retry-After` seconds of a 429.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Denied::RateLimited { retry_after_secs } | Denied::LockedOut { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}

/// A configuration or key-management failure.
#[derive(Debug, Error)]
pub enum AccessError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value is invalid; `field` names it (`networks`, `auth.keys[2].ip_allow` ...).
    #[error("{field}: {reason}")]
    Invalid {
        /// Which field.
        field: String,
        /// Why.
        reason: String,
    },
    /// No key with this id.
    #[error("no access key {0:?}")]
    NotFound(String),
    /// The key is declared in the config file, which the key commands do not edit.
    #[error("access key {0:?} is declared in the config file (auth.keys); change it there")]
    ConfigKey(String),
    /// The key is revoked (a revoked key cannot be rotated).
    #[error("access key {0:?} is revoked")]
    Revoked(String),
    /// The OS random number generator failed.
    #[error("cannot generate a secret: {0}")]
    Random(String),
}

impl AccessError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AccessError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_labels() {
        use DenialKind::{Forbidden, OverRate, Unauthenticated};
        let check = |d: Denied, kind: DenialKind, reason: &str| {
            assert_eq!(d.kind(), kind, "{d:?}");
            assert_eq!(d.reason(), reason, "{d:?}");
            assert!(!d.message().is_empty());
        };
        check(Denied::MissingCredential, Unauthenticated, "missing_credential");
        check(
            Denied::MalformedCredential("x"),
            Unauthenticated,
            "malformed_credential",
        );
        // Unknown id and wrong secret share a metric label; only the log tells them apart.
        check(Denied::UnknownKey, Unauthenticated, "bad_credentials");
        check(Denied::WrongSecret, Unauthenticated, "bad_credentials");
        assert_eq!(
            (Denied::UnknownKey.detail(), Denied::WrongSecret.detail()),
            ("unknown_key", "wrong_secret")
        );
        check(Denied::Revoked, Unauthenticated, "revoked");
        check(Denied::Expired, Unauthenticated, "expired");
        check(Denied::Disabled, Forbidden, "disabled");
        check(Denied::NetworkNotAllowed, Forbidden, "network");
        check(Denied::IpNotAllowed, Forbidden, "ip");
        check(Denied::RateLimited { retry_after_secs: 3 }, OverRate, "rate");
        // Unknown id and wrong secret look the same to the client.
        assert_eq!(Denied::UnknownKey.message(), Denied::WrongSecret.message());
        assert_eq!(Denied::RateLimited { retry_after_secs: 3 }.retry_after_secs(), Some(3));
        assert!(Denied::WrongSecret.www_authenticate().is_some());
        assert!(Denied::IpNotAllowed.www_authenticate().is_none());
    }
}
