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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

pub use db::{DbError, IndexDb};
pub use ingest::{Indexer, IngestSettings, Progress, Start};

use crate::config::{IndexConfig, StartBlock};
use crate::events::Fetch;

/// The index of every network, once built.
pub struct Index {
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
    ) -> Result<Self, DbError> {
        let db = Arc::new(IndexDb::open(file)?);
        let start = match &cfg.start_block {
            StartBlock::Number(n) => Start::At(*n),
            StartBlock::Named(n) if n == "now" => Start::Now,
            StartBlock::Named(_) => Start::First,
        };
        let settings = IngestSettings {
            start,
            batch: cfg.batch,
            concurrency: cfg.concurrency,
        };
        let mut idle = Vec::new();
        let mut list = Vec::new();
        for (name, fetch) in networks {
            let ix = Indexer::new(name.clone(), fetch, db.clone(), settings.clone());
            list.push((name, ix.progress()));
            idle.push(ix);
        }
        Ok(Self {
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
            "halted": p.halted(),
        }))
    }
}
