//! The delivery worker: takes each active webhook's oldest undelivered event (one in flight
//! per webhook, so a webhook's events arrive in order; many webhooks at once, so a slow or
//! dead receiver delays only its own), POSTs it signed, and records the attempt. Timeouts,
//! connection errors, 429 and 5xx are retried on the schedule (with jitter, never sooner
//! than a `Retry-After`); when the schedule runs out the webhook is paused as failing with
//! its backlog kept. Other answers set the event aside and go on. Each owner's deliveries
//! are held to `events_per_second`.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};

use super::db::{Attempt, HookDb, Outcome, Queued};
use super::{now_ms, Hooks};
use crate::txpath::lifecycle::hex;

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its HTTP status.
    pub status: u16,
    /// Its `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

/// Sends one POST (the real one is `send::HttpSender`; tests fake it).
pub trait Sender: Send + Sync + 'static {
    /// POSTs `body` with `headers` to `url`; the answer, or why there was none.
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, String>> + Send + 'a>>;
}

/// How deliveries are retried and paced.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The waits before each retry (their sum is how long an event is retried).
    pub schedule: Vec<Duration>,
    /// Deliveries in flight at once, all webhooks together.
    pub concurrency: usize,
    /// Deliveries per second per owner (access key).
    pub per_owner: u32,
}

/// The wait before retry number `attempt` (1-based) — the schedule's entry scaled by
/// `jitter` (0.8..1.2) — or `None` when the schedule has run out.
pub fn backoff(schedule: &[Duration], attempt: u32, jitter: f64) -> Option<Duration> {
    let i = usize::try_from(attempt).ok()?.checked_sub(1)?;
    schedule.get(i).map(|d| d.mul_f64(jitter.clamp(0.8, 1.2)))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`.
pub fn signature(secret: &str, t: u64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let code = mac.finalize().into_bytes();
    format!("t={t},v1={}", &hex(&code)[2..])
}

/// What the worker needs of a webhook to deliver to it.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    secret: String,
    owner: String,
}

/// Delivers until the task is dropped.
pub(super) async fn run(
    db: Arc<HookDb>,
    hooks: Arc<Hooks>,
    sender: Arc<dyn Sender>,
    policy: Policy,
    wake: Arc<Notify>,
    series: Arc<super::Series>,
) {
    let slots = Arc::new(Semaphore::new(policy.concurrency.max(1)));
    let busy: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let quota = Quota::per_second(NonZeroU32::new(policy.per_owner.max(1)).unwrap_or(NonZeroU32::MIN));
    let limiter: Arc<DefaultKeyedRateLimiter<String>> = Arc::new(RateLimiter::keyed(quota));
    let policy = Arc::new(policy);
    // Webhooks whose owner is over its rate, until when (unix ms): skipped, nothing written.
    let mut held: HashMap<String, u64> = HashMap::new();
    loop {
        let now = now_ms();
        held.retain(|_, until| *until > now);
        let mut skip = busy.lock().unwrap_or_else(PoisonError::into_inner).clone();
        skip.extend(held.keys().cloned());
        let free = slots.available_permits();
        let due = match free {
            0 => Vec::new(),
            n => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.due(now, n, &skip))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
            }
        };
        let targets: HashMap<String, Target> = hooks
            .all()
            .into_iter()
            .map(|h| {
                (
                    h.id.clone(),
                    Target {
                        url: h.url,
                        secret: h.secret,
                        owner: h.owner,
                    },
                )
            })
            .collect();
        for q in due {
            let Some(target) = targets.get(&q.hook).cloned() else {
                continue;
            };
            if let Err(until) = limiter.check_key(&target.owner) {
                // Over the owner's rate: this webhook waits its turn (no attempt counted).
                let wait = until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                held.insert(
                    q.hook.clone(),
                    now + u64::try_from(wait.as_millis()).unwrap_or(1000).max(1),
                );
                continue;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            busy.lock().unwrap_or_else(PoisonError::into_inner).push(q.hook.clone());
            let (db, sender, policy, busy, wake) =
                (db.clone(), sender.clone(), policy.clone(), busy.clone(), wake.clone());
            let series = series.clone();
            tokio::spawn(async move {
                let result = deliver(&db, &*sender, &policy, &q, &target).await;
                series
                    .deliveries
                    .get_or_create(&super::ResultLabels {
                        result: result.to_owned(),
                    })
                    .inc();
                busy.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|h| *h != q.hook);
                drop(permit);
                wake.notify_one();
            });
        }
        // Until something is queued or finishes, or the next retry or rate turn is due (at most
        // 1 s). A head already due is in flight (or waits for a slot): its delivery's end wakes
        // the loop, so it is not a reason to spin.
        let next = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.next_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        };
        let now = now_ms();
        let next = next
            .filter(|at| *at > now)
            .into_iter()
            .chain(held.values().copied())
            .min();
        let wait = next.map_or(1000, |at| at.saturating_sub(now).clamp(5, 1000));
        let _ = tokio::time::timeout(Duration::from_millis(wait), wake.notified()).await;
    }
}

/// One attempt at `q`, recorded with what follows from it; its result's name.
async fn deliver(db: &Arc<HookDb>, sender: &dyn Sender, policy: &Policy, q: &Queued, target: &Target) -> &'static str {
    let attempt = q.attempts + 1;
    let started = tokio::time::Instant::now();
    let at = now_ms();
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        (
            "user-agent",
            concat!("kengate-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        ("kengate-event-id", q.id.clone()),
        ("kengate-webhook-id", q.hook.clone()),
        ("kengate-delivery-attempt", attempt.to_string()),
        ("kengate-signature", signature(&target.secret, at / 1000, &q.body)),
    ];
    let result = sender.post(&target.url, headers, q.body.clone()).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, error) = match &result {
        Ok(a) => (Some(a.status), None),
        Err(e) => (None, Some(e.clone())),
    };
    let retry_after = result.as_ref().ok().and_then(|a| a.retry_after);
    let retryable = match &result {
        Err(_) => true,
        Ok(a) => a.status == 429 || a.status >= 500,
    };
    let outcome = match (&result, retryable) {
        (Ok(a), _) if (200..300).contains(&a.status) => Outcome::Delivered,
        (Ok(_), false) => Outcome::Rejected,
        _ => match backoff(&policy.schedule, attempt, 0.8 + fastrand::f64() * 0.4) {
            Some(wait) => {
                let wait = wait.max(Duration::from_secs(retry_after.unwrap_or(0)));
                Outcome::Retry {
                    next_at: now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                }
            }
            None => Outcome::GiveUp {
                reason: format!(
                    "event {} was not delivered after {attempt} attempts (last: {})",
                    q.id,
                    error.clone().unwrap_or_else(|| format!("HTTP {}", status.unwrap_or(0)))
                ),
            },
        },
    };
    if let Outcome::GiveUp { reason } = &outcome {
        tracing::warn!(webhook = %q.hook, reason = %reason, "webhooks: paused as failing (resume to deliver its backlog)");
    }
    let a = Attempt {
        event: q.id.clone(),
        attempt,
        at,
        status,
        latency_ms,
        error,
    };
    let name = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Rejected => "rejected",
        Outcome::Retry { .. } => "retry",
        Outcome::GiveUp { .. } => "failing",
    };
    let (db, hook) = (db.clone(), q.hook.clone());
    let _ = tokio::task::spawn_blocking(move || db.attempted(&a, &outcome, &hook)).await;
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_with_jitter_and_its_end() {
        let s = [Duration::from_secs(10), Duration::from_secs(60)];
        assert_eq!(backoff(&s, 1, 1.0), Some(Duration::from_secs(10)));
        assert_eq!(backoff(&s, 2, 1.2), Some(Duration::from_secs(72)));
        assert_eq!(backoff(&s, 2, 5.0), Some(Duration::from_secs(72)), "jitter is bounded");
        assert_eq!(backoff(&s, 1, 0.0), Some(Duration::from_secs(8)));
        assert_eq!(backoff(&s, 3, 1.0), None);
        assert_eq!(backoff(&s, 0, 1.0), None);
    }

    #[test]
    fn the_signature_is_the_hmac_of_time_and_body() {
        // Computed independently (Python: hmac.new(b"key", b"1.{}", hashlib.sha256).hexdigest()).
        let sig = signature("key", 1, "{}");
        assert_eq!(
            sig,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(sig, signature("key", 2, "{}"), "the time is signed");
        assert_ne!(sig, signature("key", 1, "{ }"), "the exact body is signed");
        assert_ne!(sig, signature("other", 1, "{}"));
    }
}
