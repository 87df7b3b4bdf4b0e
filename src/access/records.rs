//! Key management types: what is created ([`NewKey`], validated into a store record), shown
//! once ([`CreatedKey`]), listed ([`KeyInfo`], never a secret or hash), and declared in
//! `proxy.toml` (hashed at load). No IO.

use serde::{Deserialize, Serialize};

use super::client_ip::parse_net;
use super::credential::{from_hex32, hash_secret, to_hex};
use super::error::AccessError;
use super::keys::KeySource;
use crate::config::{valid_key_id, KeyConfig, KeyScope};
use crate::store::KeyRecord;

/// A key as listed: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub id: String,
    /// `config` or `store`.
    pub source: KeySource,
    /// `active`, `disabled`, `expired` or `revoked`.
    pub status: &'static str,
    /// What it may do (listed inline: `label`, `networks`, `methods`, ...).
    #[serde(flatten)]
    pub scope: KeyScope,
    /// Unix s; `None` for config keys.
    pub created_at: Option<i64>,
    /// Unix s.
    pub expires_at: Option<i64>,
    /// Unix s.
    pub revoked_at: Option<i64>,
}

impl KeyInfo {
    pub(crate) fn new(r: &KeyRecord, source: KeySource, now: i64) -> Self {
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else if !r.enabled {
            "disabled"
        } else if r.expires_at.is_some_and(|t| now >= t) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: r.id.clone(),
            source,
            status,
            scope: r.scope.clone(),
            created_at: (source == KeySource::Store).then_some(r.created_at),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A key just created or rotated: the only time its secret is shown. `Debug` hides it.
#[derive(Clone, Serialize)]
pub struct CreatedKey {
    /// Key id.
    pub id: String,
    /// The secret (43 characters, base64url).
    pub secret: String,
    /// `{id}.{secret}`: what clients send as `Authorization: Bearer ...` or in the URL.
    pub token: String,
    /// The key as listed.
    pub key: KeyInfo,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A key to create (CLI arguments or the admin API's JSON body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "NewKeyJson")]
pub struct NewKey {
    /// What it may do.
    pub scope: KeyScope,
    /// Unix time (s) after which it is refused; or
    pub expires_at: Option<i64>,
    /// seconds from now.
    pub expires_in: Option<u64>,
}

/// `POST /admin/keys`'s body as sent: [`NewKey`] with [`KeyScope`]'s fields inline, and
/// unknown members refused (serde cannot refuse them through `flatten`).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NewKeyJson {
    label: String,
    networks: Vec<String>,
    methods: Vec<String>,
    ip_allow: Vec<String>,
    rps: Option<u32>,
    burst: Option<u32>,
    expires_at: Option<i64>,
    expires_in: Option<u64>,
}

impl From<NewKeyJson> for NewKey {
    fn from(j: NewKeyJson) -> Self {
        Self {
            scope: KeyScope {
                label: j.label,
                networks: j.networks,
                methods: j.methods,
                ip_allow: j.ip_allow,
                rps: j.rps,
                burst: j.burst,
            },
            expires_at: j.expires_at,
            expires_in: j.expires_in,
        }
    }
}

fn valid_network_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_method_entry(m: &str) -> bool {
    !m.is_empty() && m.len() <= 128 && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for s in list {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

impl NewKey {
    /// Checks everything and builds the record. `networks`: the configured network names
    /// (empty: unknown, only the name's form is checked).
    pub(crate) fn into_record(
        self,
        id: String,
        secret_sha256: &[u8; 32],
        networks: &[String],
        now: i64,
    ) -> Result<KeyRecord, AccessError> {
        let scope = self.scope;
        if scope.label.chars().count() > 200 || scope.label.chars().any(char::is_control) {
            return Err(AccessError::invalid(
                "label",
                "at most 200 characters, no control characters",
            ));
        }
        for n in &scope.networks {
            if !valid_network_name(n) {
                return Err(AccessError::invalid("networks", format!("{n:?} is not a network name")));
            }
            if !networks.is_empty() && !networks.contains(n) {
                return Err(AccessError::invalid(
                    "networks",
                    format!("no network named {n:?} (configured: {})", networks.join(", ")),
                ));
            }
        }
        if let Some(m) = scope.methods.iter().find(|m| !valid_method_entry(m)) {
            return Err(AccessError::invalid(
                "methods",
                format!("{m:?} is neither a group (read, write) nor a method name"),
            ));
        }
        let mut ip_allow = Vec::with_capacity(scope.ip_allow.len());
        for c in &scope.ip_allow {
            let net = parse_net(c)
                .ok_or_else(|| AccessError::invalid("ip_allow", format!("{c:?} is not a CIDR or an IP address")))?;
            ip_allow.push(net.to_string());
        }
        let expires_at = match (self.expires_at, self.expires_in) {
            (Some(_), Some(_)) => {
                return Err(AccessError::invalid(
                    "expires_at",
                    "give expires_at or expires_in, not both",
                ))
            }
            (Some(t), None) if t <= now => return Err(AccessError::invalid("expires_at", "is in the past")),
            (Some(t), None) => Some(t),
            (None, Some(0)) => return Err(AccessError::invalid("expires_in", "must be > 0")),
            (None, Some(secs)) => Some(
                i64::try_from(secs)
                    .ok()
                    .and_then(|s| now.checked_add(s))
                    .ok_or_else(|| AccessError::invalid("expires_in", "too large"))?,
            ),
            (None, None) => None,
        };
        Ok(KeyRecord {
            id,
            secret_sha256: to_hex(secret_sha256),
            scope: KeyScope {
                label: scope.label,
                networks: dedup(scope.networks),
                methods: dedup(scope.methods),
                ip_allow: dedup(ip_allow),
                rps: scope.rps,
                burst: scope.burst,
            },
            enabled: true,
            created_at: now,
            expires_at,
            revoked_at: None,
        })
    }
}

/// The record of a key declared in `proxy.toml` (`i`: its index, for error messages); a clear
/// secret is hashed here and not kept.
pub(crate) fn record_from_config(k: &KeyConfig, i: usize) -> Result<KeyRecord, AccessError> {
    let field = |f: &str| format!("auth.keys[{i}].{f}");
    if !valid_key_id(&k.id) {
        return Err(AccessError::invalid(
            field("id"),
            "letters, digits, '_' and '-', 1-64 characters",
        ));
    }
    let hash = match (&k.secret, &k.secret_sha256) {
        (Some(s), None) if !s.is_empty() => hash_secret(s.as_bytes()),
        (None, Some(h)) => {
            from_hex32(h).ok_or_else(|| AccessError::invalid(field("secret_sha256"), "64 hex digits"))?
        }
        _ => {
            return Err(AccessError::invalid(
                field("secret"),
                "give exactly one of secret and secret_sha256",
            ))
        }
    };
    for c in &k.scope.ip_allow {
        if parse_net(c).is_none() {
            return Err(AccessError::invalid(field("ip_allow"), format!("{c:?} is not a CIDR")));
        }
    }
    Ok(KeyRecord {
        id: k.id.clone(),
        secret_sha256: to_hex(&hash),
        scope: k.scope.clone(),
        enabled: k.enabled,
        created_at: 0,
        expires_at: k.expires_at,
        revoked_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_key_validation() {
        let nets = vec!["cypress".to_string(), "baobab".to_string()];
        let build = |k: NewKey| k.into_record("KGX".into(), &[0; 32], &nets, 1000);
        let err = |k: NewKey| build(k).unwrap_err().to_string();
        let ok = build(NewKey {
            expires_in: Some(60),
            scope: KeyScope {
                label: "ci".into(),
                networks: vec!["baobab".into(), "baobab".into()],
                methods: vec!["read".into(), "klay_sendRawTransaction".into()],
                ip_allow: vec!["10.1.2.3/8".into(), "::ffff:192.0.2.1".into()],
                rps: Some(5),
                ..Default::default()
            },
            ..NewKey::default()
        })
        .unwrap();
        assert_eq!(ok.scope.networks, ["baobab"]);
        assert_eq!(ok.scope.ip_allow, ["10.0.0.0/8", "192.0.2.1/32"]);
        assert_eq!(ok.expires_at, Some(1060));
        assert_eq!((ok.created_at, ok.enabled, ok.revoked_at), (1000, true, None));
        assert!(err(NewKey {
            scope: KeyScope {
                networks: vec!["mainnet".into()],
                ..Default::default()
            },
            ..NewKey::default()
        })
        .contains("no network named"));
        assert!(err(NewKey {
            scope: KeyScope {
                networks: vec!["Bad Name".into()],
                ..Default::default()
            },
            ..NewKey::default()
        })
        .contains("networks"));
        assert!(err(NewKey {
            scope: KeyScope {
                methods: vec!["eth call".into()],
                ..Default::default()
            },
            ..NewKey::default()
        })
        .contains("methods"));
        assert!(err(NewKey {
            scope: KeyScope {
                ip_allow: vec!["10.0.0.0/40".into()],
                ..Default::default()
            },
            ..NewKey::default()
        })
        .contains("ip_allow"));
        assert!(err(NewKey {
            expires_at: Some(999),
            ..NewKey::default()
        })
        .contains("past"));
        assert!(err(NewKey {
            expires_in: Some(0),
            ..NewKey::default()
        })
        .contains("expires_in"));
        assert!(err(NewKey {
            expires_in: Some(u64::MAX),
            ..NewKey::default()
        })
        .contains("expires_in"));
        assert!(err(NewKey {
            expires_at: Some(2000),
            expires_in: Some(1),
            ..NewKey::default()
        })
        .contains("not both"));
        assert!(err(NewKey {
            scope: KeyScope {
                label: "a\nb".into(),
                ..Default::default()
            },
            ..NewKey::default()
        })
        .contains("label"));
        // Without a network list, only the name's form is checked.
        assert!(NewKey {
            scope: KeyScope {
                networks: vec!["any".into()],
                ..Default::default()
            },
            ..NewKey::default()
        }
        .into_record("KGX".into(), &[0; 32], &[], 1)
        .is_ok());
    }

    #[test]
    fn config_keys_are_hashed() {
        let k = KeyConfig::new("ops", "a human chosen secret");
        let r = record_from_config(&k, 0).unwrap();
        assert_eq!(r.secret_sha256, to_hex(&hash_secret(b"a human chosen secret")));
        assert!(!format!("{r:?}").contains("human"));
        let by_hash = KeyConfig {
            secret: None,
            secret_sha256: Some(r.secret_sha256.to_uppercase()),
            ..k.clone()
        };
        assert_eq!(record_from_config(&by_hash, 0).unwrap().secret_sha256, r.secret_sha256);
        let neither = KeyConfig {
            secret: None,
            ..k.clone()
        };
        assert!(record_from_config(&neither, 3)
            .unwrap_err()
            .to_string()
            .contains("auth.keys[3].secret"));
        let bad_id = KeyConfig { id: "a.b".into(), ..k };
        assert!(record_from_config(&bad_id, 0).is_err());
    }
}
