//! Access control, transport-agnostic: who is calling (client IP behind trusted proxies, access
//! keys by Bearer / Basic / URL token), what the key allows (networks, methods, client CIDRs,
//! state), how fast (token buckets per key and per IP), and key management (CLI and admin API).
//! It names no HTTP type: it reads a request's headers through the [`Headers`] trait (which
//! `server` implements for its `HeaderMap`) and says why it refuses in [`Denied`] (which
//! `server` maps to a status). It touches the store only on reload and key management, never
//! while authenticating or admitting a request.
//!
//! ```text
//! request ─ client_ip(peer, headers) ─ authenticate(ip, headers, path token, network) ─ Caller
//!   per call: caller.allows(method, is_write) ─ weight(method) ─┐
//!   per request: admit(caller, Σ weights) ── key bucket, IP bucket ─┴─ Denied{kind, reason, message}
//! background: spawn_upkeep ─ reload() every 1 s (store keys_version) ─ prune IP buckets
//! ```
//!
//! Keys come from two places: `auth.keys` in `proxy.toml` (fixed until restart) and the store
//! (`kengate keys`, the admin API; picked up within a second even when changed by another
//! process). A store key with the id of a config key is ignored (the config wins) with a
//! warning; the key commands refuse to change config keys.

pub mod cli;

mod client_ip;
mod credential;
mod error;
mod keys;
mod limit;
mod records;

pub use client_ip::canonical as canonical_ip;
pub use error::{AccessError, DenialKind, Denied};
pub use keys::{Caller, KeyEntry, KeySource};
pub use records::{CreatedKey, KeyInfo, NewKey};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, RateConfig, ThrottleConfig};
use crate::store::{KeyRecord, Store};
use keys::now_secs;
use limit::{IpLimiter, Weights};
use records::record_from_config;

/// Environment variable that overrides `auth.admin_token`.
pub const ADMIN_TOKEN_ENV: &str = "KENGATE_ADMIN_TOKEN";

type KeyTable = HashMap<String, Arc<KeyEntry>>;

/// The request headers access reads. `server` implements it for its `HeaderMap`, so access
/// names no HTTP type. Each method gives every value of its header, in order; `None` for a
/// value that is not visible ASCII.
pub trait Headers {
    /// `Authorization`.
    fn authorization(&self) -> impl Iterator<Item = Option<&str>>;
    /// `X-Forwarded-For`.
    fn x_forwarded_for(&self) -> impl Iterator<Item = Option<&str>>;
    /// `Forwarded`.
    fn forwarded(&self) -> impl Iterator<Item = Option<&str>>;
}

/// Access control state, shared as `Arc<Access>`.
pub struct Access {
    /// `auth.enabled`: without it every caller is anonymous (the IP bucket still applies).
    enabled: bool,
    /// SHA-256 of the admin token: comparing hashes is constant-time whatever the length of
    /// what is presented. `None`: the admin API is off.
    admin_token: Option<[u8; 32]>,
    /// Peers whose forwarding headers are believed.
    trusted_proxies: Vec<IpNet>,
    /// Configured network names, to validate new keys (empty: not known, not checked).
    networks: Vec<String>,
    /// Rate of keys that have none of their own.
    per_key: RateConfig,
    /// Cost of one call per method.
    weights: Weights,
    /// Per-IP buckets (`None`: unlimited).
    per_ip: Option<IpLimiter>,
    /// Failed authentications per client address.
    auth_failures: Option<limit::AuthFailures>,
    /// Keys from `proxy.toml`, built once (so their buckets live as long as kengate).
    config_keys: Vec<Arc<KeyEntry>>,
    /// What the request path reads, without a lock; replaced whole by `reload`.
    keys: ArcSwap<KeyTable>,
    /// The store's `keys_version` the table was built from. A std mutex: it only serializes
    /// reloads (blocking store IO, never on the request path, never across an `.await`).
    loaded_version: Mutex<Option<u64>>,
    /// Where store keys live.
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("enabled", &self.enabled)
            .field("admin_configured", &self.admin_token.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// From the config and the store's keys. `networks`: the configured network names
    /// (checked against new keys' `networks`; pass an empty list when unknown). The admin token
    /// is `KENGATE_ADMIN_TOKEN` when set and non-empty, else `auth.admin_token`.
    pub fn new(
        auth: &AuthConfig,
        throttle: &ThrottleConfig,
        networks: &[String],
        store: Arc<dyn Store>,
    ) -> Result<Self, AccessError> {
        let env_token = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Self::build(auth, throttle, networks, store, env_token)
    }

    /// [`Access::new`] with the environment's admin token passed in (`None`: the config's).
    pub(crate) fn build(
        auth: &AuthConfig,
        throttle: &ThrottleConfig,
        networks: &[String],
        store: Arc<dyn Store>,
        env_token: Option<String>,
    ) -> Result<Self, AccessError> {
        let admin_token = match (env_token, &auth.admin_token) {
            (Some(t), _) if t.len() < 16 => {
                return Err(AccessError::invalid(ADMIN_TOKEN_ENV, "at least 16 characters"))
            }
            (Some(t), _) => Some(t),
            (None, Some(t)) if t.len() < 16 => {
                return Err(AccessError::invalid("auth.admin_token", "at least 16 characters"))
            }
            (None, t) => t.clone(),
        };
        let mut trusted_proxies = Vec::with_capacity(auth.trusted_proxies.len());
        for (i, c) in auth.trusted_proxies.iter().enumerate() {
            let net = client_ip::parse_net(c).ok_or_else(|| {
                AccessError::invalid(format!("auth.trusted_proxies[{i}]"), format!("{c:?} is not a CIDR"))
            })?;
            trusted_proxies.push(net);
        }
        let mut config_keys: Vec<Arc<KeyEntry>> = Vec::with_capacity(auth.keys.len());
        for (i, k) in auth.keys.iter().enumerate() {
            if config_keys.iter().any(|e| e.id() == k.id) {
                return Err(AccessError::invalid(
                    format!("auth.keys[{i}].id"),
                    format!("{:?} is declared twice", k.id),
                ));
            }
            let record = record_from_config(k, i)?;
            config_keys.push(Arc::new(KeyEntry::build(
                record,
                KeySource::Config,
                throttle.per_key,
                None,
            )?));
        }
        let access = Self {
            enabled: auth.enabled,
            admin_token: admin_token.map(|t| credential::hash_secret(t.as_bytes())),
            trusted_proxies,
            networks: networks.to_vec(),
            per_key: throttle.per_key,
            weights: Weights::new(&throttle.method_weights),
            per_ip: IpLimiter::new(throttle.per_ip),
            auth_failures: limit::AuthFailures::new(throttle.auth_failures_per_ip),
            config_keys,
            keys: ArcSwap::from_pointee(KeyTable::new()),
            loaded_version: Mutex::new(None),
            store,
        };
        access.reload()?;
        Ok(access)
    }

    /// Whether a credential is required.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The client IP: the TCP peer, or — only when the peer is a trusted proxy — the right-most
    /// address in `X-Forwarded-For` (else `Forwarded: for=`) that is not itself a trusted proxy.
    /// IPv4-mapped IPv6 is returned as IPv4.
    pub fn client_ip(&self, peer: SocketAddr, headers: &impl Headers) -> IpAddr {
        client_ip::client_ip(&self.trusted_proxies, peer, headers)
    }

    /// Who is calling, before the body is read. Auth disabled: anonymous (credentials are not
    /// looked at). Auth enabled: the credential (`Authorization: Bearer <id>.<secret>`, `Basic`,
    /// or `path_token` = `<id>.<secret>`; the header wins) must name a key whose secret matches
    /// (constant time; an unknown id costs the same work), that is enabled, not revoked, not
    /// expired, allowed on `network` and from `ip`.
    pub fn authenticate(
        &self,
        ip: IpAddr,
        headers: &impl Headers,
        path_token: Option<&str>,
        network: &str,
    ) -> Result<Caller, Denied> {
        let ip = client_ip::canonical(ip);
        if !self.enabled {
            return Ok(Caller::anonymous(ip));
        }
        if let Some(f) = &self.auth_failures {
            f.admit(ip)?;
        }
        self.check_credential(ip, headers, path_token, network).map_err(|d| {
            // A credential that does not work is charged to the address: to its failure
            // bucket (lock-out) and to its request bucket.
            if d.kind() == DenialKind::Unauthenticated && d != Denied::MissingCredential {
                if let Some(over) = self.auth_failures.as_ref().and_then(|f| f.failed(ip)) {
                    return over;
                }
                if let Some(Err(over)) = self.per_ip.as_ref().map(|l| l.check(ip, 1)) {
                    return over;
                }
            }
            d
        })
    }

    fn check_credential(
        &self,
        ip: IpAddr,
        headers: &impl Headers,
        path_token: Option<&str>,
        network: &str,
    ) -> Result<Caller, Denied> {
        let cred = credential::from_request(headers, path_token)?;
        let table = self.keys.load();
        let entry = table.get(&cred.id);
        let stored = entry.map_or(&credential::DUMMY_HASH, |e| e.secret_sha256());
        let matches = credential::secret_matches(&cred.secret, stored);
        let entry = entry.ok_or(Denied::UnknownKey)?;
        if !matches {
            return Err(Denied::WrongSecret);
        }
        entry.check(now_secs(), network, ip)?;
        Ok(Caller {
            ip,
            key: Some(entry.clone()),
        })
    }

    /// Re-checks a caller authenticated earlier (a WebSocket session, per message) against the
    /// current key table: a key revoked, rotated, disabled or expired since stops working at
    /// once, as it does for new requests. Lock-free, no hashing.
    pub fn recheck(&self, caller: &Caller, network: &str) -> Result<Caller, Denied> {
        let Some(key) = &caller.key else {
            return Ok(caller.clone());
        };
        let table = self.keys.load();
        let current = table.get(key.id()).ok_or(Denied::Revoked)?;
        if !bool::from(current.secret_sha256().ct_eq(key.secret_sha256())) {
            return Err(Denied::WrongSecret);
        }
        current.check(now_secs(), network, caller.ip)?;
        Ok(Caller {
            ip: caller.ip,
            key: Some(current.clone()),
        })
    }

    /// Admission of a request of total `weight` (a batch: the sum of its calls' weights): the
    /// caller's key bucket, then the per-IP bucket. A request heavier than a whole bucket costs
    /// the whole bucket. Lock-free.
    pub fn admit(&self, caller: &Caller, weight: u32) -> Result<(), Denied> {
        if let Some(key) = &caller.key {
            key.admit(weight)?;
        }
        match &self.per_ip {
            Some(l) => l.check(caller.ip, weight),
            None => Ok(()),
        }
    }

    /// Cost of one call of `method` (`throttle.method_weights`, default 1).
    pub fn weight(&self, method: &str) -> u32 {
        self.weights.get(method)
    }

    /// Re-reads the store's keys when its `keys_version` changed (one small query otherwise).
    /// Unchanged rates keep their buckets. A store key that cannot be parsed is left out (and
    /// so refused) with a warning. Returns whether the table was rebuilt.
    pub fn reload(&self) -> Result<bool, AccessError> {
        let mut loaded = self.loaded_version.lock().unwrap_or_else(PoisonError::into_inner);
        let version = self.store.keys_version()?;
        if *loaded == Some(version) {
            return Ok(false);
        }
        let records = self.store.list_keys()?;
        let old = self.keys.load();
        let mut table = KeyTable::with_capacity(self.config_keys.len() + records.len());
        for e in &self.config_keys {
            table.insert(e.id().to_owned(), e.clone());
        }
        for r in records {
            if table.contains_key(&r.id) {
                tracing::warn!(id = %r.id, "a stored access key has the id of a key in the config file; the config's is used");
                continue;
            }
            let id = r.id.clone();
            match KeyEntry::build(r, KeySource::Store, self.per_key, old.get(&id).map(|e| e.as_ref())) {
                Ok(e) => {
                    table.insert(id, Arc::new(e));
                }
                Err(e) => tracing::warn!(%id, error = %e, "stored access key left out"),
            }
        }
        self.keys.store(Arc::new(table));
        *loaded = Some(version);
        Ok(true)
    }

    /// Forgets per-IP buckets that are full again.
    pub fn prune(&self) {
        if let Some(l) = &self.per_ip {
            l.prune();
        }
        if let Some(f) = &self.auth_failures {
            f.prune();
        }
    }

    /// Per-IP buckets currently tracked (a gauge for metrics).
    pub fn tracked_ips(&self) -> usize {
        self.per_ip.as_ref().map_or(0, IpLimiter::len)
    }

    /// Every second: [`Access::reload`] (so `kengate keys ...` run by another process takes
    /// effect without a restart; on a blocking thread); every 30 s: [`Access::prune`].
    pub fn spawn_upkeep(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let access = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                ticks += 1;
                if access.enabled {
                    let a = access.clone();
                    match tokio::task::spawn_blocking(move || a.reload()).await {
                        Ok(Ok(true)) => tracing::info!(keys = access.keys.load().len(), "access keys reloaded"),
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "reloading access keys"),
                        Err(e) => tracing::warn!(error = %e, "access key reload task failed"),
                    }
                }
                if ticks.is_multiple_of(30) {
                    access.prune();
                }
            }
        })
    }

    /// Whether the request carries `Authorization: Bearer <admin token>` (constant time).
    /// Always false when no admin token is configured.
    pub fn admin_authorized(&self, headers: &impl Headers) -> bool {
        match (&self.admin_token, credential::bearer(headers)) {
            (Some(expected), Some(presented)) => credential::hash_secret(presented.as_bytes()).ct_eq(expected).into(),
            _ => false,
        }
    }

    /// Whether an admin token is configured (the admin API is on).
    pub fn admin_configured(&self) -> bool {
        self.admin_token.is_some()
    }

    fn config_key(&self, id: &str) -> Option<&Arc<KeyEntry>> {
        self.config_keys.iter().find(|e| e.id() == id)
    }

    /// Rebuilds the table after a change made here, so it applies at once; a failure is only
    /// logged (the upkeep loop retries within a second) since the change itself is stored.
    fn reload_after_change(&self) {
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "reloading access keys after a change");
        }
    }

    /// Creates a key in the store. The secret is in the answer and nowhere else.
    pub fn create_key(&self, req: NewKey) -> Result<CreatedKey, AccessError> {
        let now = now_secs();
        let secret = credential::new_secret()?;
        let hash = credential::hash_secret(secret.as_bytes());
        let mut id = credential::new_key_id()?;
        // 20 characters of 36: a clash is practically impossible, but cheap to rule out.
        while self.config_key(&id).is_some() || self.store.get_key(&id)?.is_some() {
            id = credential::new_key_id()?;
        }
        let record = req.into_record(id, &hash, &self.networks, now)?;
        self.store.put_key(&record)?;
        self.reload_after_change();
        tracing::info!(id = %record.id, "access key created");
        Ok(created(&record, secret, now))
    }

    /// Every key (config and store, revoked ones too), config keys first; never secrets.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, AccessError> {
        let now = now_secs();
        let mut out: Vec<KeyInfo> = self.config_keys.iter().map(|e| e.info(now)).collect();
        let mut stored: Vec<KeyInfo> = self
            .store
            .list_keys()?
            .iter()
            .filter(|r| self.config_key(&r.id).is_none())
            .map(|r| KeyInfo::new(r, KeySource::Store, now))
            .collect();
        stored.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out.extend(stored);
        Ok(out)
    }

    /// One key.
    pub fn key_info(&self, id: &str) -> Result<KeyInfo, AccessError> {
        let now = now_secs();
        if let Some(e) = self.config_key(id) {
            return Ok(e.info(now));
        }
        let r = self
            .store
            .get_key(id)?
            .ok_or_else(|| AccessError::NotFound(id.to_owned()))?;
        Ok(KeyInfo::new(&r, KeySource::Store, now))
    }

    fn stored_key(&self, id: &str) -> Result<KeyRecord, AccessError> {
        if self.config_key(id).is_some() {
            return Err(AccessError::ConfigKey(id.to_owned()));
        }
        self.store
            .get_key(id)?
            .ok_or_else(|| AccessError::NotFound(id.to_owned()))
    }

    /// Revokes a store key for good (idempotent: revoking twice keeps the first time).
    pub fn revoke_key(&self, id: &str) -> Result<KeyInfo, AccessError> {
        let mut r = self.stored_key(id)?;
        let now = now_secs();
        if r.revoked_at.is_none() {
            r.revoked_at = Some(now);
            self.store.put_key(&r)?;
            self.reload_after_change();
            tracing::info!(%id, "access key revoked");
        }
        Ok(KeyInfo::new(&r, KeySource::Store, now))
    }

    /// Gives a store key a new secret; the old one stops working at once in this process and
    /// within a second in another kengate sharing the store. The bucket carries over.
    pub fn rotate_key(&self, id: &str) -> Result<CreatedKey, AccessError> {
        let mut r = self.stored_key(id)?;
        if r.revoked_at.is_some() {
            return Err(AccessError::Revoked(id.to_owned()));
        }
        let secret = credential::new_secret()?;
        r.secret_sha256 = credential::to_hex(&credential::hash_secret(secret.as_bytes()));
        self.store.put_key(&r)?;
        self.reload_after_change();
        tracing::info!(%id, "access key rotated");
        Ok(created(&r, secret, now_secs()))
    }
}

fn created(r: &KeyRecord, secret: String, now: i64) -> CreatedKey {
    CreatedKey {
        id: r.id.clone(),
        token: format!("{}.{secret}", r.id),
        secret,
        key: KeyInfo::new(r, KeySource::Store, now),
    }
}

#[cfg(test)]
mod tests;
