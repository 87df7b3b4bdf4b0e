//! Webhooks: a BApp registers what it cares about (address activity, a log filter, its txs'
//! status or failure, a balance crossing a threshold, new blocks) and kengate POSTs each event
//! to its URL, signed, retried, in order, never lost. Events come from blocks at or below the
//! served head and from the transaction records, and go through a durable outbox in their own
//! SQLite file (`webhooks.db` beside the store). The rest of kengate holds one [`Webhooks`]
//! and talks to it through [`api::answer`] and [`Webhooks::spawn`].

pub mod api;
pub mod db;
pub mod deliver;
pub mod matcher;
pub mod model;
pub mod send;
mod source;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::config::WebhooksConfig;
use crate::events::Fetch;
use crate::methods::Dialect;
use crate::store::Store;
use db::{DbError, HookDb};
use deliver::{Policy, Sender};
use model::Hook;

pub use crate::txpath::lifecycle::now_ms;

/// The webhooks as the feeds and the worker see them: read from the file at start and after
/// every change through the API (and every few seconds, for the CLI's changes).
#[derive(Debug, Default)]
pub struct Hooks {
    list: ArcSwap<Vec<Hook>>,
}

impl Hooks {
    /// Every webhook.
    pub fn all(&self) -> Vec<Hook> {
        self.list.load().as_ref().clone()
    }

    /// `net`'s webhooks fed by blocks (`true`) or by tx records (`false`), whatever their state:
    /// a paused webhook's events are kept for when it resumes.
    pub fn of(&self, net: &str, blocks: bool) -> Vec<Hook> {
        self.list
            .load()
            .iter()
            .filter(|h| h.network == net && h.kind.from_blocks() == blocks)
            .cloned()
            .collect()
    }

    fn set(&self, list: Vec<Hook>) {
        self.list.store(Arc::new(list));
    }
}

/// `kengate_webhook_deliveries_total`'s label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `delivered`, `retry`, `rejected` or `failing`.
    pub result: String,
}

/// The webhooks' `/metrics` series.
#[derive(Debug, Default)]
pub struct Series {
    /// Delivery attempts by what became of them.
    pub deliveries: Family<ResultLabels, Counter>,
    /// Undelivered events (sampled).
    pub backlog: Gauge,
}

/// One network as the webhooks see it.
pub struct Net {
    /// Its name.
    pub name: String,
    /// Reads through the routing core, follows the served head.
    pub fetch: Arc<dyn Fetch>,
}

/// The webhook service.
pub struct Webhooks {
    db: Arc<HookDb>,
    hooks: Arc<Hooks>,
    nets: Vec<Net>,
    store: Arc<dyn Store>,
    sender: Arc<dyn Sender>,
    policy: Policy,
    cfg: WebhooksConfig,
    wake: Arc<Notify>,
    series: Arc<Series>,
    /// Tasks not started yet.
    started: RwLock<bool>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("networks", &self.nets.len()).finish()
    }
}

impl Webhooks {
    /// Opens `file` and prepares a feed per network of `nets`, the tx feed over `store`, and
    /// delivery through `sender`.
    pub fn new(
        cfg: &WebhooksConfig,
        file: &std::path::Path,
        nets: Vec<Net>,
        store: Arc<dyn Store>,
        sender: Arc<dyn Sender>,
    ) -> Result<Self, DbError> {
        let db = Arc::new(HookDb::open(file)?);
        let policy = Policy {
            schedule: cfg.retry_schedule_s.iter().map(|s| Duration::from_secs(*s)).collect(),
            concurrency: cfg.concurrency,
            per_owner: cfg.events_per_second,
        };
        let me = Self {
            db,
            hooks: Arc::new(Hooks::default()),
            nets,
            store,
            sender,
            policy,
            cfg: cfg.clone(),
            wake: Arc::new(Notify::new()),
            series: Arc::new(Series::default()),
            started: RwLock::new(false),
        };
        me.reload()?;
        Ok(me)
    }

    /// The network's node software's rules (a log filter's limits).
    pub fn dialect(&self, net: &str) -> Dialect {
        self.nets
            .iter()
            .find(|n| n.name == net)
            .map_or(Dialect::Klaytn, |n| n.fetch.dialect())
    }

    /// The served head of `net` (0 when unknown).
    pub fn served(&self, net: &str) -> u64 {
        self.nets
            .iter()
            .find(|n| n.name == net)
            .map_or(0, |n| *n.fetch.served().borrow())
    }

    /// Reads the webhooks from the file again.
    pub fn reload(&self) -> Result<(), DbError> {
        let list = self.db.hooks(None, |n| self.dialect(n))?;
        self.hooks.set(list);
        self.wake.notify_one();
        Ok(())
    }

    /// The database (the API and the CLI use it).
    pub fn db(&self) -> &Arc<HookDb> {
        &self.db
    }

    /// Its settings.
    pub fn config(&self) -> &WebhooksConfig {
        &self.cfg
    }

    /// Adds its series to `/metrics`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kengate_webhook_deliveries",
            "Webhook delivery attempts, by result (delivered, retry, rejected, failing)",
            self.series.deliveries.clone(),
        );
        registry.register(
            "kengate_webhook_backlog",
            "Webhook events not delivered yet",
            self.series.backlog.clone(),
        );
    }

    /// Samples the backlog for `/metrics`.
    pub fn sample(&self) {
        if let Ok(n) = self.db.backlog() {
            self.series.backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Wakes the delivery worker (a webhook resumed, events replayed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the feeds and the worker (once).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut started = self.started.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *started {
            return Vec::new();
        }
        *started = true;
        let mut tasks = Vec::new();
        for n in &self.nets {
            tasks.push(tokio::spawn(source::blocks(
                n.name.clone(),
                n.fetch.clone(),
                self.db.clone(),
                self.hooks.clone(),
                self.wake.clone(),
            )));
        }
        let served = self.nets.iter().map(|n| (n.name.clone(), n.fetch.served())).collect();
        tasks.push(tokio::spawn(source::txs(
            self.store.clone(),
            self.db.clone(),
            self.hooks.clone(),
            served,
            self.wake.clone(),
        )));
        tasks.push(tokio::spawn(deliver::run(
            self.db.clone(),
            self.hooks.clone(),
            self.sender.clone(),
            self.policy.clone(),
            self.wake.clone(),
            self.series.clone(),
        )));
        // Changes made by `kengate webhooks` in another process; old delivered events go.
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            let keep = Duration::from_secs(me.cfg.retention_days.saturating_mul(86_400));
            for round in 0u64.. {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let m = me.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = m.reload();
                    if round % 720 == 0 {
                        let before = now_ms().saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
                        if let Ok(n) = m.db.prune(before) {
                            if n > 0 {
                                tracing::info!(events = n, "webhooks: forgot delivered events past retention_days");
                            }
                        }
                    }
                })
                .await;
            }
        }));
        tasks
    }
}
