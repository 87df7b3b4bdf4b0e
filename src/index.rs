//! The embedded index: what the blocks kengate follows say about accounts and tokens — every
//! transaction, KLAY and token transfer — built from the served head through the routing
//! core, so nothing is indexed (or announced) that a client cannot read back through kengate.
//! One [`Indexer`] per network writes into one [`IndexDb`]; [`Index`] is what the rest of
//! kengate holds: the tasks to start and each network's [`Progress`].

pub mod contracts;
pub mod db;
pub mod etherscan;
pub mod extract;
pub mod ingest;
pub mod kas;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

pub use db::{DbError, IndexDb};
pub use ingest::{Indexer, IngestSettings, Progress, Start};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::{IndexConfig, StartBlock};
use crate::events::Fetch;

/// The index's series in `/metrics`, per network.
#[derive(Debug, Default)]
struct Series {
    head: Family<NetLabels, Gauge>,
    lag: Family<NetLabels, Gauge>,
    txs: Family<NetLabels, Gauge>,
    transfers: Family<NetLabels, Gauge>,
    halted: Family<NetLabels, Gauge>,
    rate: Family<NetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NetLabels {
    network: String,
}

/// The index of every network, once built.
pub struct Index {
    series: Series,
    db: Arc<IndexDb>,
    networks: Vec<(String, Arc<Progress>)>,
    /// Indexers not started yet (`spawn` takes them).
    idle: Mutex<Vec<Indexer>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("networks", &self.networks.len()).finish()
    }
}

impl Index {
    /// Opens the index file and makes an indexer per network (`(name, what it reads through)`).
    pub fn new(
        cfg: &IndexConfig,
        file: &std::path::Path,
        networks: Vec<(String, Arc<dyn Fetch>)>,
        registry: &mut Registry,
    ) -> Result<Self, DbError> {
        let series = Series::default();
        for (name, help, family) in [
            ("index_head", "The last block indexed", &series.head),
            (
                "index_lag",
                "Blocks between the served head and the last block indexed",
                &series.lag,
            ),
            (
                "index_txs_written",
                "Transactions the index wrote since start",
                &series.txs,
            ),
            (
                "index_transfers_written",
                "Transfers the index wrote since start",
                &series.transfers,
            ),
            (
                "index_halted",
                "1 when the chain contradicted the index and it stopped",
                &series.halted,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "index_blocks_per_second",
            "Blocks indexed per second while catching up (0 once at the served head)",
            series.rate.clone(),
        );
        let tuning = db::Tuning {
            cache_mib: cfg.cache_mib,
            mmap_mib: cfg.mmap_mib,
            window_transfers: cfg.window_transfers,
        };
        let db = Arc::new(IndexDb::open_with(file, tuning)?);
        let start = match &cfg.start_block {
            StartBlock::Number(n) => Start::At(*n),
            StartBlock::Named(n) if n == "now" => Start::Now,
            StartBlock::Named(_) => Start::First,
        };
        let settings = IngestSettings {
            start,
            batch: cfg.batch,
            concurrency: cfg.concurrency,
            internal: cfg.internal,
        };
        let mut idle = Vec::new();
        let mut list = Vec::new();
        for (name, fetch) in networks {
            let ix = Indexer::new(name.clone(), fetch, db.clone(), settings.clone());
            list.push((name, ix.progress()));
            idle.push(ix);
        }
        Ok(Self {
            series,
            db,
            networks: list,
            idle: Mutex::new(idle),
        })
    }

    /// Starts the indexers (once).
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        idle.into_iter().map(|ix| tokio::spawn(ix.run())).collect()
    }

    /// The database (the APIs read it).
    pub fn db(&self) -> &Arc<IndexDb> {
        &self.db
    }

    /// Sets the `/metrics` series from each indexer's progress.
    pub fn sample(&self) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (name, p) in &self.networks {
            let l = NetLabels { network: name.clone() };
            let indexed = p.indexed.load(Ordering::Relaxed);
            let head = p.target.load(Ordering::Relaxed);
            if indexed != u64::MAX {
                self.series.head.get_or_create(&l).set(gauge(indexed));
                self.series
                    .lag
                    .get_or_create(&l)
                    .set(gauge(head.saturating_sub(indexed)));
            }
            self.series
                .txs
                .get_or_create(&l)
                .set(gauge(p.txs.load(Ordering::Relaxed)));
            self.series
                .transfers
                .get_or_create(&l)
                .set(gauge(p.transfers.load(Ordering::Relaxed)));
            self.series
                .halted
                .get_or_create(&l)
                .set(i64::from(p.halted().is_some()));
            self.series.rate.get_or_create(&l).set(p.blocks_per_second());
        }
    }

    /// Whether `network`'s internal KLAY transfers are being indexed.
    pub fn internal(&self, network: &str) -> bool {
        self.networks
            .iter()
            .any(|(n, p)| n == network && p.internal.load(Ordering::Relaxed))
    }

    /// A network's progress as `/status` shows it.
    pub fn status(&self, network: &str) -> Option<serde_json::Value> {
        let (_, p) = self.networks.iter().find(|(n, _)| n == network)?;
        let indexed = p.indexed.load(Ordering::Relaxed);
        let head = p.target.load(Ordering::Relaxed);
        let indexed = (indexed != u64::MAX).then_some(indexed);
        Some(serde_json::json!({
            "indexed_head": indexed,
            "served_head": head,
            "lag": indexed.map(|i| head.saturating_sub(i)),
            "txs_written": p.txs.load(Ordering::Relaxed),
            "transfers_written": p.transfers.load(Ordering::Relaxed),
            "blocks_per_second": (p.blocks_per_second() * 10.0).round() / 10.0,
            "internal_transfers": p.internal.load(Ordering::Relaxed),
            "parts": p.parts.load(Ordering::Relaxed),
            "window_held": p.window.load(Ordering::Relaxed),
            "halted": p.halted(),
        }))
    }
}
