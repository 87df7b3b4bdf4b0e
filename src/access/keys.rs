//! Access keys in memory: [`KeyEntry`] (a parsed record with its token bucket), [`Caller`]
//! (who is calling, handed to the per-call pipeline) and the method permission rule. No IO;
//! the clock is a parameter.

use std::collections::HashSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::client_ip::{contains, parse_net};
use super::credential::from_hex32;
use super::error::{AccessError, Denied};
use super::limit::{check_key, quota, KeyLimiter};
use super::records::KeyInfo;
use crate::config::RateConfig;
use crate::methods::klay_spelling as normalize;
use crate::store::KeyRecord;

/// Unix time in seconds.
pub(crate) fn now_secs() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where a key is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// `auth.keys` in `proxy.toml` (read-only for the key commands).
    Config,
    /// The store (`kengate keys`, the admin API).
    Store,
}

/// A key's method permission: the groups `read` (not a write) and `write` (tx submission),
/// or exact method names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MethodRule {
    read: bool,
    write: bool,
    names: HashSet<String, ahash::RandomState>,
}

impl MethodRule {
    fn new(list: &[String]) -> Self {
        if list.is_empty() {
            return Self {
                read: true,
                write: true,
                names: HashSet::default(),
            };
        }
        Self {
            read: list.iter().any(|m| m == "read"),
            write: list.iter().any(|m| m == "write"),
            names: list.iter().map(|m| normalize(m).into_owned()).collect(),
        }
    }

    fn allows(&self, method: &str, is_write: bool) -> bool {
        (if is_write { self.write } else { self.read }) || self.names.contains(normalize(method).as_ref())
    }
}

/// A key's token bucket, shared across reloads while its rate is unchanged.
struct Bucket {
    limiter: KeyLimiter,
    burst: NonZeroU32,
    rate: RateConfig,
}

/// One usable key: its record, parsed once (hash bytes, CIDRs, method rule), and its bucket.
/// `Debug` prints the id and label only.
pub struct KeyEntry {
    record: KeyRecord,
    /// The id, shared with the audit metrics' label (no copy per call).
    id: Arc<str>,
    source: KeySource,
    secret_sha256: [u8; 32],
    methods: MethodRule,
    ip_allow: Vec<IpNet>,
    /// `None`: unlimited.
    bucket: Option<Arc<Bucket>>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.record.id)
            .field("label", &self.record.scope.label)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl KeyEntry {
    /// Parses `record`; `per_key` fills a missing rate or burst; the bucket of `previous` is
    /// kept when the effective rate is the same.
    pub(crate) fn build(
        record: KeyRecord,
        source: KeySource,
        per_key: RateConfig,
        previous: Option<&KeyEntry>,
    ) -> Result<Self, AccessError> {
        let field = |f: &str| format!("key {}: {f}", record.id);
        let secret_sha256 = from_hex32(&record.secret_sha256)
            .ok_or_else(|| AccessError::invalid(field("secret_sha256"), "not 64 hex digits"))?;
        let mut ip_allow = Vec::with_capacity(record.scope.ip_allow.len());
        for c in &record.scope.ip_allow {
            ip_allow.push(
                parse_net(c).ok_or_else(|| AccessError::invalid(field("ip_allow"), format!("{c:?} is not a CIDR")))?,
            );
        }
        let rate = RateConfig {
            rps: record.scope.rps.unwrap_or(per_key.rps),
            burst: record.scope.burst.unwrap_or(per_key.burst),
        };
        let bucket = match previous.and_then(|p| p.bucket.as_ref()) {
            Some(b) if b.rate == rate => Some(b.clone()),
            _ => quota(rate).map(|q| {
                Arc::new(Bucket {
                    limiter: KeyLimiter::direct(q),
                    burst: q.burst_size(),
                    rate,
                })
            }),
        };
        Ok(Self {
            methods: MethodRule::new(&record.scope.methods),
            id: Arc::from(record.id.as_str()),
            record,
            source,
            secret_sha256,
            ip_allow,
            bucket,
        })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The id, shared (the audit metrics' label).
    pub fn shared_id(&self) -> &Arc<str> {
        &self.id
    }

    /// Its free-text label.
    pub fn label(&self) -> &str {
        &self.record.scope.label
    }

    /// Where it is declared.
    pub fn source(&self) -> KeySource {
        self.source
    }

    pub(crate) fn secret_sha256(&self) -> &[u8; 32] {
        &self.secret_sha256
    }

    /// Everything after the secret check: state, network, client IP. Run only once the secret
    /// matched, so a key's state is never revealed to someone without it.
    pub(crate) fn check(&self, now: i64, network: &str, ip: IpAddr) -> Result<(), Denied> {
        let r = &self.record;
        if r.revoked_at.is_some() {
            return Err(Denied::Revoked);
        }
        if !r.enabled {
            return Err(Denied::Disabled);
        }
        if r.expires_at.is_some_and(|t| now >= t) {
            return Err(Denied::Expired);
        }
        if !r.scope.networks.is_empty() && !r.scope.networks.iter().any(|n| n == network) {
            return Err(Denied::NetworkNotAllowed);
        }
        if !self.ip_allow.is_empty() && !contains(&self.ip_allow, ip) {
            return Err(Denied::IpNotAllowed);
        }
        Ok(())
    }

    /// Takes `weight` from the key's bucket.
    pub(crate) fn admit(&self, weight: u32) -> Result<(), Denied> {
        match &self.bucket {
            Some(b) => check_key(&b.limiter, b.burst, weight),
            None => Ok(()),
        }
    }

    /// The listing form (no secret, no hash).
    pub fn info(&self, now: i64) -> KeyInfo {
        KeyInfo::new(&self.record, self.source, now)
    }
}

/// Who is calling: the client IP and, when a credential was checked, its key.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client IP (see `Access::client_ip`).
    pub ip: IpAddr,
    /// The key; `None`: anonymous (auth disabled).
    pub key: Option<Arc<KeyEntry>>,
}

impl Caller {
    /// A caller without a key.
    pub fn anonymous(ip: IpAddr) -> Self {
        Self { ip, key: None }
    }

    /// Metrics label: the key id, or `anonymous`.
    pub fn label(&self) -> &str {
        self.key.as_ref().map_or("anonymous", |k| k.id())
    }

    /// Whether the key may call `method` (`is_write`: it submits a transaction). A key without
    /// a method list may call anything; so may an anonymous caller. `klay_x` in a list also
    /// allows `kaia_x` and the other way round.
    pub fn allows(&self, method: &str, is_write: bool) -> bool {
        self.key.as_ref().is_none_or(|k| k.methods.allows(method, is_write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::credential::{hash_secret, to_hex};
    use crate::config::KeyScope;

    fn record(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            secret_sha256: to_hex(&hash_secret(b"s")),
            enabled: true,
            created_at: 1,
            expires_at: None,
            revoked_at: None,
            scope: KeyScope::default(),
        }
    }

    fn entry(r: KeyRecord) -> KeyEntry {
        KeyEntry::build(r, KeySource::Store, RateConfig::default(), None).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn state_network_and_ip_checks() {
        let v4 = ip("192.0.2.1");
        let check = |r: KeyRecord, now: i64, net: &str, at: IpAddr, expected: Result<(), Denied>| {
            assert_eq!(
                entry(r.clone()).check(now, net, at),
                expected,
                "{r:?} at {now} on {net} from {at}"
            );
        };
        check(record("a"), 100, "cypress", v4, Ok(()));
        check(
            KeyRecord {
                revoked_at: Some(5),
                ..record("a")
            },
            100,
            "cypress",
            v4,
            Err(Denied::Revoked),
        );
        check(
            KeyRecord {
                enabled: false,
                ..record("a")
            },
            100,
            "cypress",
            v4,
            Err(Denied::Disabled),
        );
        check(
            KeyRecord {
                expires_at: Some(100),
                ..record("a")
            },
            100,
            "cypress",
            v4,
            Err(Denied::Expired),
        );
        check(
            KeyRecord {
                expires_at: Some(101),
                ..record("a")
            },
            100,
            "cypress",
            v4,
            Ok(()),
        );
        let nets = KeyRecord {
            scope: KeyScope {
                networks: vec!["baobab".into()],
                ..Default::default()
            },
            ..record("a")
        };
        check(nets.clone(), 100, "baobab", v4, Ok(()));
        check(nets, 100, "cypress", v4, Err(Denied::NetworkNotAllowed));
        let ips = KeyRecord {
            scope: KeyScope {
                ip_allow: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
                ..Default::default()
            },
            ..record("a")
        };
        check(ips.clone(), 100, "x", v4, Ok(()));
        check(ips.clone(), 100, "x", ip("2001:db8::9"), Ok(()));
        check(ips.clone(), 100, "x", ip("198.51.100.1"), Err(Denied::IpNotAllowed));
        check(ips, 100, "x", ip("2001:db9::9"), Err(Denied::IpNotAllowed));
        assert_eq!(
            KeyInfo::new(
                &KeyRecord {
                    expires_at: Some(5),
                    ..record("a")
                },
                KeySource::Store,
                6
            )
            .status,
            "expired"
        );
    }

    #[test]
    fn method_permissions() {
        let caller = |methods: &[&str]| Caller {
            ip: ip("192.0.2.1"),
            key: Some(Arc::new(entry(KeyRecord {
                scope: KeyScope {
                    methods: methods.iter().map(|m| m.to_string()).collect(),
                    ..Default::default()
                },
                ..record("a")
            }))),
        };
        let all = caller(&[]);
        assert!(all.allows("klay_getBalance", false) && all.allows("klay_sendRawTransaction", true));
        let read = caller(&["read"]);
        assert!(read.allows("eth_call", false));
        assert!(!read.allows("eth_sendRawTransaction", true));
        let write = caller(&["write"]);
        assert!(!write.allows("eth_call", false) && write.allows("eth_sendRawTransaction", true));
        let named = caller(&["klay_getBalance", "kaia_sendRawTransaction"]);
        assert!(named.allows("klay_getBalance", false));
        assert!(named.allows("kaia_getBalance", false));
        assert!(!named.allows("eth_getBalance", false));
        assert!(named.allows("klay_sendRawTransaction", true));
        assert!(!named.allows("klay_call", false));
        let anonymous = Caller::anonymous(ip("192.0.2.1"));
        assert!(anonymous.allows("anything", true));
        assert_eq!(anonymous.label(), "anonymous");
        assert_eq!(named.label(), "a");
    }
}
