//! Token buckets (GCRA, `governor`): one per key, living in the key's `Arc`, and one keyed
//! limiter per client IP (a sharded `DashMap`, pruned by the upkeep loop). Lock-free on the
//! request path. Also the per-method weights a call costs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, QuantaInstant};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota};

use super::error::Denied;
use crate::config::RateConfig;

/// One key's bucket.
pub(crate) type KeyLimiter = DefaultDirectRateLimiter;

/// The bucket of `rate`; `None` when unlimited (rps 0). Burst 0 means burst = rps.
pub(crate) fn quota(rate: RateConfig) -> Option<Quota> {
    let rps = NonZeroU32::new(rate.rps)?;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(rps);
    Some(Quota::per_second(rps).allow_burst(burst))
}

/// The cells a request of `weight` takes from a bucket of `burst`: at least 1, and a request
/// heavier than the whole bucket costs the whole bucket (it would otherwise never pass).
fn cells(weight: u32, burst: NonZeroU32) -> NonZeroU32 {
    NonZeroU32::new(weight.min(burst.get())).unwrap_or(NonZeroU32::MIN)
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn refused(not_until: &NotUntil<QuantaInstant>, now: QuantaInstant) -> Denied {
    Denied::RateLimited {
        retry_after_secs: retry_after_secs(not_until.wait_time_from(now)),
    }
}

/// Takes `weight` from a key's bucket.
pub(crate) fn check_key(limiter: &KeyLimiter, burst: NonZeroU32, weight: u32) -> Result<(), Denied> {
    match limiter.check_n(cells(weight, burst)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(refused(&not_until, limiter.clock().now())),
        // Unreachable: `cells` never exceeds the burst.
        Err(_) => Err(Denied::RateLimited { retry_after_secs: 1 }),
    }
}

/// The per-IP buckets. An IPv6 client is limited per /64 (what one host usually gets), so
/// rotating through its own addresses buys nothing.
pub(crate) struct IpLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    burst: NonZeroU32,
}

impl std::fmt::Debug for IpLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpLimiter")
            .field("burst", &self.burst)
            .field("tracked", &self.limiter.len())
            .finish()
    }
}

impl IpLimiter {
    /// `None` when `rate` is unlimited.
    pub(crate) fn new(rate: RateConfig) -> Option<Self> {
        let q = quota(rate)?;
        Some(Self {
            limiter: DefaultKeyedRateLimiter::dashmap(q),
            burst: q.burst_size(),
        })
    }

    /// Takes `weight` from `ip`'s bucket.
    pub(crate) fn check(&self, ip: IpAddr, weight: u32) -> Result<(), Denied> {
        match self.limiter.check_key_n(&bucket_of(ip), cells(weight, self.burst)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refused(&not_until, self.limiter.clock().now())),
            Err(_) => Err(Denied::RateLimited { retry_after_secs: 1 }),
        }
    }

    /// Forgets buckets that are full again (indistinguishable from new ones).
    pub(crate) fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Buckets currently tracked.
    pub(crate) fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// Failed authentications per client address (`throttle.auth_failures_per_ip`): each takes a
/// cell; an address whose bucket is empty is locked out — every request it makes is refused
/// with 429 before its credential is looked at — until a cell is back, so a guesser gets a
/// bounded number of tries however it spreads them over keys.
pub(crate) struct AuthFailures {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Locked addresses (their bucket) and until when. A std Mutex, only taken while some
    /// address is locked (`any`), never across `.await`.
    locked: std::sync::Mutex<HashMap<IpAddr, std::time::Instant>>,
    any: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFailures").finish_non_exhaustive()
    }
}

impl AuthFailures {
    /// `None` when `rate` is unlimited.
    pub(crate) fn new(rate: RateConfig) -> Option<Self> {
        Some(Self {
            limiter: DefaultKeyedRateLimiter::dashmap(quota(rate)?),
            locked: std::sync::Mutex::new(HashMap::new()),
            any: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Refuses a locked-out address.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<(), Denied> {
        if !self.any.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let locked = self.locked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match locked.get(&bucket_of(ip)) {
            Some(until) => match until.checked_duration_since(std::time::Instant::now()) {
                Some(wait) => Err(Denied::LockedOut {
                    retry_after_secs: retry_after_secs(wait),
                }),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Counts one failure. Past the burst the address is locked out, and this failure is
    /// answered as over the limit (the returned refusal).
    pub(crate) fn failed(&self, ip: IpAddr) -> Option<Denied> {
        let b = bucket_of(ip);
        let not_until = self.limiter.check_key(&b).err()?;
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        self.locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(b, std::time::Instant::now() + wait);
        self.any.store(true, std::sync::atomic::Ordering::Relaxed);
        Some(Denied::LockedOut {
            retry_after_secs: retry_after_secs(wait),
        })
    }

    /// Forgets expired lock-outs and full buckets.
    pub(crate) fn prune(&self) {
        let mut locked = self.locked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        locked.retain(|_, until| *until > now);
        self.any.store(!locked.is_empty(), std::sync::atomic::Ordering::Relaxed);
        drop(locked);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

/// What one call of a method costs (`throttle.method_weights`, default 1). `kaia_x` and
/// `klay_x` share a weight when only one of them is listed.
/// Looked up once per call, so hashed with ahash (not std's SipHash), and not at all when none
/// is configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Weights(HashMap<String, u32, ahash::RandomState>);

impl Weights {
    pub(crate) fn new(configured: &std::collections::BTreeMap<String, u32>) -> Self {
        let mut map: HashMap<String, u32, ahash::RandomState> =
            configured.iter().map(|(m, w)| (m.clone(), (*w).max(1))).collect();
        for (m, w) in configured {
            if let Some(other) = crate::methods::other_spelling(m) {
                map.entry(other).or_insert((*w).max(1));
            }
        }
        Self(map)
    }

    pub(crate) fn get(&self, method: &str) -> u32 {
        if self.0.is_empty() {
            return 1;
        }
        self.0.get(method).copied().unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(rps: u32, burst: u32) -> RateConfig {
        RateConfig { rps, burst }
    }

    #[test]
    fn an_address_is_locked_out_after_its_failures_and_others_are_not() {
        let f = AuthFailures::new(rate(1, 3)).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(f.admit(a), Ok(()));
            assert_eq!(f.failed(a), None);
        }
        assert_eq!(f.admit(a), Ok(()), "the burst is spent, not exceeded");
        assert!(matches!(f.failed(a), Some(Denied::LockedOut { .. })));
        assert!(matches!(f.admit(a), Err(Denied::LockedOut { .. })));
        assert_eq!(f.admit(b), Ok(()));
        // The same /64 is the same client.
        let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
        for _ in 0..4 {
            let _ = f.failed(v6("2001:db8::1"));
        }
        assert!(f.admit(v6("2001:db8::ffff")).is_err());
        assert!(f.admit(v6("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let q = quota(rate(1, 3)).unwrap();
        let l = KeyLimiter::direct(q);
        for _ in 0..3 {
            assert_eq!(check_key(&l, q.burst_size(), 1), Ok(()));
        }
        assert_eq!(
            check_key(&l, q.burst_size(), 1),
            Err(Denied::RateLimited { retry_after_secs: 1 })
        );
        assert!(quota(rate(0, 5)).is_none());
        assert_eq!(quota(rate(7, 0)).unwrap().burst_size().get(), 7);
    }

    #[test]
    fn weights_and_oversized_requests() {
        let q = quota(rate(1, 10)).unwrap();
        let l = KeyLimiter::direct(q);
        // A batch of weight 6 fits; a second one does not, and must wait ~2 s (2 cells short).
        assert_eq!(check_key(&l, q.burst_size(), 6), Ok(()));
        let Err(Denied::RateLimited { retry_after_secs }) = check_key(&l, q.burst_size(), 6) else {
            panic!("second batch admitted");
        };
        assert!((2..=3).contains(&retry_after_secs), "{retry_after_secs}");
        // Heavier than the bucket: costs the whole (full) bucket instead of never passing.
        let l = KeyLimiter::direct(q);
        assert_eq!(check_key(&l, q.burst_size(), 50), Ok(()));
        assert!(check_key(&l, q.burst_size(), 1).is_err());
    }

    #[test]
    fn per_ip_buckets_are_separate_and_v6_goes_by_64() {
        let l = IpLimiter::new(rate(1, 2)).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check(a, 2).is_ok());
        assert!(l.check(a, 1).is_err());
        assert!(l.check(b, 1).is_ok());
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2:3".parse().unwrap();
        let v6c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(l.check(v6a, 2).is_ok());
        assert!(l.check(v6b, 1).is_err(), "same /64");
        assert!(l.check(v6c, 1).is_ok(), "another /64");
        assert_eq!(l.len(), 4);
        l.prune(); // the buckets are not full yet: kept
        assert_eq!(l.len(), 4);
        assert!(IpLimiter::new(rate(0, 0)).is_none());
    }

    #[test]
    fn method_weights() {
        let cfg = [("klay_getLogs".to_string(), 10), ("eth_getLogs".to_string(), 5)]
            .into_iter()
            .collect();
        let w = Weights::new(&cfg);
        assert_eq!(w.get("klay_getLogs"), 10);
        assert_eq!(w.get("kaia_getLogs"), 10);
        assert_eq!(w.get("eth_getLogs"), 5);
        assert_eq!(w.get("klay_blockNumber"), 1);
    }
}
