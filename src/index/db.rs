//! The index's tables: transactions, transfers and a checkpoint per network, in their own
//! SQLite file beside the store (WAL; a backfill's large batches never hold up the write
//! path's records). Laid out for the PostgreSQL backend to map one to one: composite
//! primary keys, amounts and ids as 32-byte big-endian blobs (ordered as numbers), indexes
//! for keyset pagination (account or contract, then block, tx, log descending), no `OFFSET`
//! outside Etherscan's `page`.
//!
//! Laid out for writing, too: `ix_txs` and `ix_transfers` are keyed by position (block, tx,
//! log), so a batch appends to them; every account lookup goes through `ix_activity` (one row
//! per account and entry), every hash lookup through `ix_tx_hashes` and an NFT's history
//! through `ix_nft_moves`, and none of them is written per batch: the newest window of them is
//! held in memory ([`recent`]) and sealed, once it holds `window_transfers`, into a part of
//! its own — rows under one `part` key, written in key order, never touched again. Reads go
//! through the window, then the parts, newest first. FT and MT balances are folded in the
//! window too and written once each when it is sealed (or when a read of balances comes
//! first); NFT owners per batch. Checkpoints run on a thread of their own.
//!
//! Two files, one database to a reader: the index file holds what a batch writes, the sealed
//! file (attached as `sealed`) what a seal writes — the parts and the balances — so that the
//! sealer's thread ([`sealer`]) writes a full window beside the next batches instead of between
//! them (SQLite has one writer per file).
//!
//! A batch of blocks is written in one transaction together with the checkpoint that says
//! they are in, and every row has a natural key, so re-writing a block (after a crash between
//! fetch and commit) replaces it: no gap, no duplicate.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

use super::extract::{BlockRows, Hash, Kind};

mod clamp;
mod holdings;
mod reads;
mod recent;
mod sealer;

use holdings::holdings;
pub(crate) use holdings::Balances;
pub use reads::{
    ActivityFilter, ContractView, Event, Holding, HoldingKey, Key, MtBy, MtHolding, MtTokenView, NftView,
    OwnershipChange, Preset, Span, TransferRow,
};
use recent::{rebuild, transfer_activity, tx_activity};

/// Bumped when a table changes shape; an index file of another version is rebuilt (the
/// index holds nothing that cannot be read from the chain again).
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ix_checkpoint (
    net TEXT PRIMARY KEY,
    number INTEGER NOT NULL,
    hash BLOB NOT NULL,
    halted TEXT
);
CREATE TABLE IF NOT EXISTS ix_txs (
    net TEXT NOT NULL, block INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    ts INTEGER NOT NULL, block_hash BLOB NOT NULL, sender BLOB NOT NULL, nonce INTEGER NOT NULL,
    gas INTEGER NOT NULL, recipient BLOB, value BLOB NOT NULL,
    type_int INTEGER NOT NULL, fee_payer BLOB, fee_ratio INTEGER, gas_used INTEGER NOT NULL,
    gas_price BLOB NOT NULL, success INTEGER NOT NULL, created BLOB, selector BLOB,
    PRIMARY KEY (net, block, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_transfers (
    net TEXT NOT NULL, block INTEGER NOT NULL, tx_idx INTEGER NOT NULL, log_idx INTEGER NOT NULL,
    pos INTEGER NOT NULL, kind TEXT NOT NULL, tx_hash BLOB NOT NULL, ts INTEGER NOT NULL,
    contract BLOB, sender BLOB NOT NULL, recipient BLOB NOT NULL, value BLOB NOT NULL, token_id BLOB,
    operator BLOB,
    PRIMARY KEY (net, block, tx_idx, log_idx, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_nft_owners (
    net TEXT NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL, owner BLOB NOT NULL,
    block INTEGER NOT NULL, prev_owner BLOB NOT NULL, tx_hash BLOB NOT NULL, created INTEGER NOT NULL,
    updated INTEGER NOT NULL, uri TEXT,
    PRIMARY KEY (net, contract, token_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_nft_owner ON ix_nft_owners (net, owner, contract, token_id);
CREATE TABLE IF NOT EXISTS ix_mt_tokens (
    net TEXT NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL, supply BLOB NOT NULL,
    uri TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    PRIMARY KEY (net, contract, token_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_contracts (
    net TEXT NOT NULL, address BLOB NOT NULL, kind TEXT NOT NULL, first_block INTEGER NOT NULL,
    created INTEGER NOT NULL, name TEXT, symbol TEXT, decimals INTEGER, total_supply BLOB,
    interfaces TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (net, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_contracts_kind ON ix_contracts (net, kind, first_block DESC, address DESC);
CREATE TABLE IF NOT EXISTS ix_presets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, name TEXT NOT NULL,
    addresses TEXT NOT NULL, contracts TEXT NOT NULL, created INTEGER NOT NULL
);
";

/// The sealed file's tables (attached as `sealed`; written by the sealer only): the parts,
/// the balances, and the block the balances stand at.
const SEALED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sealed.ix_parts (
    net TEXT NOT NULL, part INTEGER NOT NULL, last_block INTEGER NOT NULL, entries INTEGER NOT NULL,
    hashes INTEGER NOT NULL,
    PRIMARY KEY (net, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sealed.ix_activity (
    net TEXT NOT NULL, part INTEGER NOT NULL, account BLOB NOT NULL, block INTEGER NOT NULL,
    tx_idx INTEGER NOT NULL, log_idx INTEGER NOT NULL, kind INTEGER NOT NULL, contract BLOB,
    dir INTEGER NOT NULL, zero INTEGER NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (net, part, account, block DESC, tx_idx DESC, log_idx DESC)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sealed.ix_nft_moves (
    net TEXT NOT NULL, part INTEGER NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL,
    block INTEGER NOT NULL, tx_idx INTEGER NOT NULL, log_idx INTEGER NOT NULL,
    PRIMARY KEY (net, part, contract, token_id, block DESC, tx_idx DESC, log_idx DESC)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sealed.ix_tx_hashes (
    net TEXT NOT NULL, part INTEGER NOT NULL, hash BLOB NOT NULL, block INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (net, part, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sealed.ix_ft_balances (
    net TEXT NOT NULL, contract BLOB NOT NULL, holder BLOB NOT NULL, balance BLOB NOT NULL,
    updated INTEGER NOT NULL, last_tx BLOB NOT NULL, last_from BLOB NOT NULL, last_to BLOB NOT NULL,
    PRIMARY KEY (net, contract, holder)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sealed.ix_ft_holder ON ix_ft_balances (net, holder, contract);
CREATE TABLE IF NOT EXISTS sealed.ix_mt_balances (
    net TEXT NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL, holder BLOB NOT NULL,
    balance BLOB NOT NULL, updated INTEGER NOT NULL, last_tx BLOB NOT NULL, last_from BLOB NOT NULL,
    last_to BLOB NOT NULL,
    PRIMARY KEY (net, contract, token_id, holder)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sealed.ix_mt_holder ON ix_mt_balances (net, holder, contract, token_id);
CREATE TABLE IF NOT EXISTS sealed.ix_holdings (
    net TEXT PRIMARY KEY, block INTEGER NOT NULL
);
";

/// Every table the index keeps, by file (a schema change drops them all).
const TABLES: &[(&str, &str)] = &[
    ("main", "ix_checkpoint"),
    ("main", "ix_txs"),
    ("main", "ix_transfers"),
    ("main", "ix_nft_owners"),
    ("main", "ix_mt_tokens"),
    ("main", "ix_contracts"),
    ("sealed", "ix_activity"),
    ("sealed", "ix_tx_hashes"),
    ("sealed", "ix_nft_moves"),
    ("sealed", "ix_parts"),
    ("sealed", "ix_ft_balances"),
    ("sealed", "ix_mt_balances"),
    ("sealed", "ix_holdings"),
];

/// Tables of an older layout, dropped with the rest.
const OLD_TABLES: &[&str] = &[
    "ix_activity",
    "ix_tx_hashes",
    "ix_nft_moves",
    "ix_parts",
    "ix_ft_balances",
    "ix_mt_balances",
];

/// A token contract as first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRow {
    /// Its address.
    pub address: super::extract::Address,
    /// What its first transfer moved (FT, NFT or MT).
    pub kind: super::extract::Kind,
    /// The block it was first seen moving tokens in (its metadata was read there).
    pub first_block: u64,
    /// What it said about itself.
    pub meta: super::contracts::Meta,
}

/// A token's metadata URI (`tokenURI(id)` / `uri(id)`), read when the index first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUri {
    /// The token contract.
    pub contract: super::extract::Address,
    /// The token id.
    pub id: ruint::aliases::U256,
    /// What the contract answered.
    pub uri: String,
}

/// An index database failure.
#[derive(Debug, Error)]
pub enum DbError {
    /// The engine failed.
    #[error("index store: {0}")]
    Engine(#[from] rusqlite::Error),
    /// The file could not be created.
    #[error("index store: {0}")]
    Io(String),
}

/// Where a network's index stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last block fully indexed.
    pub number: u64,
    /// Its hash (the next block's parent).
    pub hash: Hash,
    /// Why indexing stopped, if it did (a parent-hash mismatch).
    pub halted: Option<String>,
}

/// How the index files are held in memory (`[index]` `cache_mib`, `mmap_mib`,
/// `window_transfers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// SQLite's page cache for each file, MiB: the pages a batch (or a seal) touches stay there
    /// for the next.
    pub cache_mib: u64,
    /// How much of the file reads may map instead of copying it page by page, MiB (0: none).
    pub mmap_mib: u64,
    /// Transfers and txs a network's window holds in memory before it is sealed into a part.
    pub window_transfers: u64,
}

/// [`Tuning::window_transfers`]'s default: a few tens of MiB in memory, and at 10 M transfers
/// (8 M txs) about 90 parts for a quiet account's page to look through.
pub const WINDOW_TRANSFERS: u64 = 200_000;

impl Default for Tuning {
    fn default() -> Self {
        Self {
            cache_mib: 64,
            mmap_mib: 1024,
            window_transfers: WINDOW_TRANSFERS,
        }
    }
}

/// The connection and, per network, the window held in memory and the one being sealed: one
/// lock, so that a read sees the windows and the tables as one write left them.
#[derive(Debug)]
pub(crate) struct Inner {
    conn: Connection,
    windows: std::collections::HashMap<String, recent::Recent>,
    /// Per network, the window being sealed (at most one).
    sealing: std::collections::HashMap<String, sealer::Sealing>,
    /// The sealer thread (files); an in-memory index seals on its own connection.
    sealer: Option<sealer::Sealer>,
    /// [`Tuning::window_transfers`].
    window_transfers: u64,
}

impl std::ops::Deref for Inner {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Inner {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Inner {
    /// Makes sure `net`'s window is held: made again from the position-keyed tables above the
    /// last part (after a restart, or a write or seal that failed) when it is not — once no
    /// seal is under way, so that the parts it reads are final.
    fn load(&mut self, net: &str) -> Result<(), DbError> {
        if !self.windows.contains_key(net) {
            if let Some(s) = self.sealing.remove(net) {
                let _ = s.pending.wait();
            }
            let w = rebuild(&self.conn, net)?;
            self.windows.insert(net.to_owned(), w);
        }
        Ok(())
    }

    /// Hands `job` to the sealer, or (in memory) runs it here.
    fn submit(&mut self, job: sealer::Job) -> sealer::Pending {
        match &self.sealer {
            Some(s) => s.submit(job),
            None => sealer::Pending::ran(job.run(&mut self.conn)),
        }
    }

    /// Takes in `net`'s sealed window once its part is written (waiting for that when `wait`):
    /// the part joins the window's list, or, if the seal failed, the window goes, to be made
    /// again from the file.
    fn finish_seal(&mut self, net: &str, wait: bool) {
        let Some(s) = self.sealing.get(net) else { return };
        let outcome = match (s.pending.done(), wait) {
            (Some(outcome), _) => outcome,
            (None, false) => return,
            (None, true) => s.pending.wait(),
        };
        let Some(s) = self.sealing.remove(net) else { return };
        match outcome {
            Ok(()) => {
                if let Some(w) = self.windows.get_mut(net) {
                    w.parts.push(s.part());
                }
            }
            Err(e) => {
                tracing::warn!(network = net, error = %e, "index: seal failed; the window is made again");
                self.windows.remove(net);
            }
        }
    }

    /// Makes sure the balances in the sealed file are `net`'s at its checkpoint, before they
    /// are read: waits for a seal under way, then writes the window's balances if it holds any.
    fn settle(&mut self, net: &str) -> Result<(), DbError> {
        self.load(net)?;
        self.finish_seal(net, true);
        self.load(net)?;
        let Some(w) = self.windows.get_mut(net) else {
            return Ok(());
        };
        if w.balances.is_empty() {
            return Ok(());
        }
        let balances = std::mem::take(&mut w.balances);
        let upto: i64 = self
            .conn
            .query_row("SELECT number FROM ix_checkpoint WHERE net = ?1", params![net], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(-1);
        let job = sealer::Job::Balances {
            net: net.to_owned(),
            balances,
            upto: u64::try_from(upto).unwrap_or(0),
        };
        let settled = self.submit(job).wait();
        if settled.is_err() {
            self.windows.remove(net);
        }
        settled
    }

    /// `net`'s window (after [`load`](Self::load); an empty one if it was not).
    fn window(&self, net: &str) -> std::borrow::Cow<'_, recent::Recent> {
        match self.windows.get(net) {
            Some(w) => std::borrow::Cow::Borrowed(w),
            None => std::borrow::Cow::Owned(recent::Recent::default()),
        }
    }

    /// `net`'s window being sealed, if one is: read after the window and before the parts.
    fn sealing(&self, net: &str) -> Option<&recent::Recent> {
        self.sealing.get(net).map(|s| &*s.window)
    }
}

/// Writes a batch in `tx` and moves the checkpoint; the batch's entries, hashes and balances
/// go to `w`. The batch's last block if `w` holds `window_transfers` now (it is to be sealed).
fn write_batch(
    tx: &rusqlite::Transaction<'_>,
    net: &str,
    w: &mut recent::Recent,
    window_transfers: u64,
    blocks: &[BlockRows],
    contracts: &[ContractRow],
    uris: &[TokenUri],
) -> Result<Option<u64>, DbError> {
    let done: Option<i64> = tx
        .query_row("SELECT number FROM ix_checkpoint WHERE net = ?1", params![net], |r| {
            r.get(0)
        })
        .optional()?;
    let first_new = blocks
        .iter()
        .position(|b| done.is_none_or(|d| sql_int(b.number) > d))
        .unwrap_or(blocks.len());
    let blocks = blocks.get(first_new..).unwrap_or_default();
    let Some(last) = blocks.last() else { return Ok(None) };
    {
        // Contracts first: their supply, read at their first block, then moves with the
        // mints and burns of later blocks.
        let mut put_contract = tx.prepare_cached(
            "INSERT OR IGNORE INTO ix_contracts (net, address, kind, first_block, created, name, symbol, \
                 decimals, total_supply, interfaces, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for c in contracts {
            let created = blocks
                .iter()
                .find(|b| b.number == c.first_block)
                .map_or(0, |b| b.timestamp);
            put_contract.execute(params![
                net,
                &c.address[..],
                c.kind.as_str(),
                sql_int(c.first_block),
                sql_int(created),
                c.meta.name,
                c.meta.symbol,
                c.meta.decimals,
                c.meta.total_supply.map(|s| s.to_be_bytes::<32>().to_vec()),
                c.meta.interfaces.join(","),
                c.meta.status,
            ])?;
        }
        // The big tables are keyed by position, so a batch appends to them; what lands at
        // random places is kept to the NFT owners and MT supplies it moves. Its entries,
        // hashes, NFT transfers and balances go to the window.
        let mut put_tx = tx.prepare_cached(
            "INSERT OR REPLACE INTO ix_txs (net, block, idx, hash, ts, block_hash, sender, nonce, gas, \
                 recipient, value, type_int, fee_payer, fee_ratio, gas_used, gas_price, success, created, selector) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )?;
        let mut put_transfer = tx.prepare_cached(
            "INSERT OR REPLACE INTO ix_transfers (net, block, tx_idx, log_idx, pos, kind, tx_hash, ts, \
                 contract, sender, recipient, value, token_id, operator) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let mut activity: Vec<recent::Activity> = Vec::new();
        let mut hashes: Vec<(Hash, u64, u32)> = Vec::new();
        let mut nft_moves = Vec::new();
        let mut count = 0u64;
        for b in blocks {
            let (block, ts) = (sql_int(b.number), sql_int(b.timestamp));
            count += (b.txs.len() + b.transfers.len()) as u64;
            for t in &b.txs {
                put_tx.execute(params![
                    net,
                    block,
                    t.index,
                    &t.hash[..],
                    ts,
                    &b.hash[..],
                    &t.from[..],
                    sql_int(t.nonce),
                    sql_int(t.gas),
                    t.to.as_ref().map(|a| &a[..]),
                    &t.value.to_be_bytes::<32>()[..],
                    t.type_int,
                    t.fee_payer.as_ref().map(|a| &a[..]),
                    t.fee_ratio,
                    sql_int(t.gas_used),
                    &t.gas_price.to_be_bytes::<32>()[..],
                    t.success,
                    t.contract_created.as_ref().map(|a| &a[..]),
                    t.selector.as_ref().map(|s| &s[..]),
                ])?;
                let to = t.to.or(t.contract_created);
                tx_activity(b.number, t.index, t.from, to, t.value.is_zero(), &mut activity);
                hashes.push((t.hash, b.number, t.index));
            }
            for t in &b.transfers {
                put_transfer.execute(params![
                    net,
                    block,
                    t.tx_index,
                    log_column(t),
                    t.batch_pos,
                    t.kind.as_str(),
                    &t.tx_hash[..],
                    ts,
                    t.contract.as_ref().map(|a| &a[..]),
                    &t.from[..],
                    &t.to[..],
                    &t.value.to_be_bytes::<32>()[..],
                    t.token_id.map(|i| i.to_be_bytes::<32>().to_vec()),
                    t.operator.as_ref().map(|a| &a[..]),
                ])?;
                transfer_activity(
                    b.number,
                    t.tx_index,
                    t.kind,
                    log_column(t),
                    t.batch_pos,
                    t.contract,
                    t.from,
                    t.to,
                    &mut activity,
                );
                if let (Kind::Nft, Some(c), Some(id)) = (t.kind, t.contract, t.token_id) {
                    let at = Key {
                        block: b.number,
                        tx_idx: t.tx_index,
                        log_idx: log_column(t),
                    };
                    nft_moves.push((c, id.to_be_bytes::<32>(), at));
                }
            }
        }
        for b in blocks {
            for t in &b.transfers {
                holdings(tx, net, b, t, uris, &mut w.balances)?;
            }
        }
        tx.execute(
            "INSERT INTO ix_checkpoint (net, number, hash, halted) VALUES (?1, ?2, ?3, NULL) \
                 ON CONFLICT (net) DO UPDATE SET number = excluded.number, hash = excluded.hash, halted = NULL",
            params![net, sql_int(last.number), &last.hash[..]],
        )?;
        for b in blocks.iter().filter(|b| !b.txs.is_empty()) {
            w.add_block(b.number, sql_int(b.timestamp));
        }
        for (h, block, idx) in hashes {
            w.add_hash(h, block, idx);
        }
        for (c, id, at) in nft_moves {
            w.add_nft_move(c, id, at);
        }
        w.absorb(activity);
        w.transfers += count;
    }
    Ok((w.transfers >= window_transfers).then_some(last.number))
}

/// The index tables of every network.
#[derive(Debug)]
pub struct IndexDb {
    conn: Mutex<Inner>,
    /// Copies the WAL into the file off the writer's thread (files only).
    checkpoints: Option<Checkpointer>,
}

/// WAL frames (pages) past which the writer copies the WAL itself after a commit instead of
/// leaving it to the checkpoint thread: the thread fell behind (or a reader held it back) and
/// the WAL would otherwise grow without bound. 256 MiB of 4 KiB pages.
const WAL_LIMIT_FRAMES: u64 = 65_536;

/// The WAL is cut back to this size when it starts over (it may grow past it in between).
const WAL_KEEP_BYTES: i64 = 64 << 20;

/// The index file's checkpoints, on a thread with its own connection: after each commit the
/// writer wakes it, and it copies what the WAL holds into the file (a passive checkpoint, which
/// runs beside the next batch's writes and never blocks them). The copy and its `fsync` were
/// 28 % of the writer's time when SQLite ran them inside every commit (BENCHMARKS.md,
/// "Embedded index").
#[derive(Debug)]
struct Checkpointer {
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    /// Frames in the WAL when the thread last looked.
    wal_frames: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Checkpoints the thread has run (what tests wait on).
    #[cfg_attr(not(test), allow(dead_code))]
    runs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn spawn(path: &Path) -> Result<Self, DbError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let wal_frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let frames = wal_frames.clone();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let ran = runs.clone();
        let thread = std::thread::Builder::new()
            .name("index-checkpoint".into())
            .spawn(move || {
                // Until the writer goes (its sender dropped), then once more.
                let mut last = false;
                while !last {
                    last = woken.recv().is_err();
                    match checkpoint(&conn) {
                        Ok(log) => frames.store(log, std::sync::atomic::Ordering::Relaxed),
                        Err(e) => tracing::warn!(error = %e, "index: checkpoint failed; retried after the next batch"),
                    }
                    ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .map_err(|e| DbError::Io(format!("index checkpoint thread: {e}")))?;
        Ok(Self {
            wake: Some(wake),
            wal_frames,
            runs,
            thread: Some(thread),
        })
    }

    /// After a commit on `conn` (the writer's): wakes the thread, or copies the WAL here when
    /// it has grown past [`WAL_LIMIT_FRAMES`].
    fn committed(&self, conn: &Connection) -> Result<(), DbError> {
        if self.wal_frames.load(std::sync::atomic::Ordering::Relaxed) > WAL_LIMIT_FRAMES {
            let log = checkpoint(conn)?;
            self.wal_frames.store(log, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(wake) = &self.wake {
            // Full: a wake-up is pending already.
            let _ = wake.try_send(());
        }
        Ok(())
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A passive checkpoint: copies what it can without waiting for anyone; the WAL's size in
/// frames.
fn checkpoint(conn: &Connection) -> Result<u64, DbError> {
    let (_busy, log, _copied): (i64, i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(u64::try_from(log).unwrap_or(0))
}

/// The sealed file beside the index file `path`: `index.sealed.db` for `index.db`.
pub fn sealed_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("sealed.db")
}

/// The two files are committed one after the other (a window is sealed after the batch that
/// filled it), so after a crash the sealed file is never ahead of the index file — unless the
/// machine lost power and the index file's last commits with it. A network whose sealed rows
/// reach past its checkpoint is then forgotten and indexed again, never served half-written.
fn forget_sealed_ahead(conn: &Connection) -> Result<(), DbError> {
    let mut ahead = conn.prepare(
        "SELECT net FROM (SELECT net, MAX(last_block) AS b FROM ix_parts GROUP BY net \
         UNION ALL SELECT net, block AS b FROM ix_holdings) AS s \
         WHERE b > COALESCE((SELECT number FROM ix_checkpoint c WHERE c.net = s.net), -1) GROUP BY net",
    )?;
    let nets: Vec<String> = ahead.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for net in nets {
        tracing::warn!(
            network = %net,
            "index: the sealed file is ahead of the index file (a power loss?); the network is indexed again"
        );
        let tx = conn.unchecked_transaction()?;
        forget_network(&tx, &net)?;
        tx.commit()?;
    }
    Ok(())
}

/// Deletes every row of `net` in both files.
fn forget_network(conn: &Connection, net: &str) -> Result<(), DbError> {
    for (schema, table) in TABLES {
        conn.execute(&format!("DELETE FROM {schema}.{table} WHERE net = ?1"), params![net])?;
    }
    Ok(())
}

impl IndexDb {
    /// Opens (creating if needed) the index file at `path`, with the default [`Tuning`].
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Self::open_with(path, Tuning::default())
    }

    /// Opens (creating if needed) the index file at `path`, and beside it the sealed file
    /// (`index.sealed.db` for `index.db`).
    pub fn open_with(path: &Path, tuning: Tuning) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Io(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        let kib = i64::try_from(tuning.cache_mib.saturating_mul(1024)).unwrap_or(i64::MAX);
        conn.pragma_update(None, "cache_size", -kib)?;
        let mmap = i64::try_from(tuning.mmap_mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        conn.pragma_update(None, "mmap_size", mmap)?;
        let sealed = sealed_path(path);
        conn.execute("ATTACH DATABASE ?1 AS sealed", params![sealed.to_string_lossy()])?;
        let mut db = Self::init(conn, tuning.window_transfers)?;
        {
            let mut conn = db.conn();
            // The checkpoint thread copies the WAL; SQLite's own checkpoint in every commit
            // that passes 1,000 pages is off.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
            conn.sealer = Some(sealer::Sealer::spawn(&sealed, tuning.cache_mib)?);
        }
        db.checkpoints = Some(Checkpointer::spawn(path)?);
        Ok(db)
    }

    /// An in-memory index (tests).
    pub fn in_memory() -> Result<Self, DbError> {
        Self::in_memory_sealing_every(WINDOW_TRANSFERS)
    }

    /// An in-memory index whose windows are sealed every `window_transfers` (tests): on its
    /// own connection, and taken in at the next write (so reads in between see a window being
    /// sealed, as they do beside the sealer thread).
    pub fn in_memory_sealing_every(window_transfers: u64) -> Result<Self, DbError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("ATTACH DATABASE ':memory:' AS sealed")?;
        Self::init(conn, window_transfers)
    }

    fn init(conn: Connection, window_transfers: u64) -> Result<Self, DbError> {
        // WAL + NORMAL: a committed batch survives kill -9; appends stay fast.
        for schema in ["main", "sealed"] {
            conn.pragma_update(Some(rusqlite::DatabaseName::Attached(schema)), "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version = |schema: &str| -> rusqlite::Result<i64> {
            conn.query_row(&format!("PRAGMA {schema}.user_version"), [], |r| r.get(0))
        };
        let (main, sealed) = (version("main")?, version("sealed")?);
        if main != SCHEMA_VERSION || sealed != SCHEMA_VERSION {
            let had: i64 = conn.query_row(
                "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'ix_checkpoint'",
                [],
                |r| r.get(0),
            )?;
            if had > 0 {
                tracing::warn!(
                    from = main.min(sealed),
                    to = SCHEMA_VERSION,
                    "index: the index files have another layout; the index is rebuilt from the chain"
                );
            }
            for (schema, t) in TABLES {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS {schema}.{t}"))?;
            }
            for t in OLD_TABLES {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS main.{t}"))?;
            }
            for schema in ["main", "sealed"] {
                conn.pragma_update(
                    Some(rusqlite::DatabaseName::Attached(schema)),
                    "user_version",
                    SCHEMA_VERSION,
                )?;
            }
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(SEALED_SCHEMA)?;
        forget_sealed_ahead(&conn)?;
        Ok(Self {
            conn: Mutex::new(Inner {
                conn,
                windows: std::collections::HashMap::new(),
                sealing: std::collections::HashMap::new(),
                sealer: None,
                window_transfers: window_transfers.max(1),
            }),
            checkpoints: None,
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The network's checkpoint, if it has indexed anything.
    pub fn checkpoint(&self, net: &str) -> Result<Option<Checkpoint>, DbError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT number, hash, halted FROM ix_checkpoint WHERE net = ?1",
                params![net],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(|(number, hash, halted)| Checkpoint {
            number: u64::try_from(number).unwrap_or(0),
            hash: hash.try_into().unwrap_or([0; 32]),
            halted,
        }))
    }

    /// Writes `blocks` (consecutive, in order) and moves the checkpoint to the last one, in
    /// one transaction.
    /// Blocks at or below the checkpoint are in already and skipped, so holdings (kept from
    /// the transfers) never count a block twice.
    pub fn write(&self, net: &str, blocks: &[BlockRows], contracts: &[ContractRow]) -> Result<(), DbError> {
        self.write_with(net, blocks, contracts, &[])
    }

    /// [`write`](Self::write), with the metadata URIs of tokens first seen in `blocks`.
    pub fn write_with(
        &self,
        net: &str,
        blocks: &[BlockRows],
        contracts: &[ContractRow],
        uris: &[TokenUri],
    ) -> Result<(), DbError> {
        let mut guard = self.conn();
        guard.load(net)?;
        guard.finish_seal(net, false);
        let inner = &mut *guard;
        let Some(w) = inner.windows.get_mut(net) else {
            return Err(DbError::Io("index window not loaded".into()));
        };
        // The window takes the batch's entries, hashes and balances before the commit; if
        // anything fails it is dropped, and made again from the tables (as they were before
        // the batch) on the next access.
        let written = inner.conn.transaction().map_err(DbError::from).and_then(|tx| {
            let full = write_batch(&tx, net, w, inner.window_transfers, blocks, contracts, uris)?;
            tx.commit()?;
            Ok(full)
        });
        match written {
            Err(e) => {
                inner.windows.remove(net);
                return Err(e);
            }
            Ok(Some(last)) => {
                // One seal at a time: the one before (if still under way) goes in first, then
                // this window is handed over and a new one starts after it.
                inner.finish_seal(net, true);
                inner.load(net)?;
                if let Some(w) = inner.windows.get_mut(net) {
                    let parts = std::mem::take(&mut w.parts);
                    let full = std::mem::replace(w, recent::Recent::new(last + 1, parts));
                    let window = std::sync::Arc::new(full);
                    let pending = inner.submit(sealer::Job::Seal {
                        net: net.to_owned(),
                        window: window.clone(),
                        last,
                    });
                    inner
                        .sealing
                        .insert(net.to_owned(), sealer::Sealing { window, last, pending });
                }
            }
            Ok(None) => {}
        }
        if let Some(c) = &self.checkpoints {
            c.committed(&inner.conn)?;
        }
        Ok(())
    }

    /// Waits until every window being sealed is in its part (a writer that stops, a benchmark
    /// that times the writes).
    pub fn wait_sealed(&self) {
        let mut conn = self.conn();
        let nets: Vec<String> = conn.sealing.keys().cloned().collect();
        for net in nets {
            conn.finish_seal(&net, true);
        }
    }

    /// Records that indexing stopped, and why (kept until the index is reset).
    pub fn halt(&self, net: &str, why: &str) -> Result<(), DbError> {
        self.conn()
            .execute("UPDATE ix_checkpoint SET halted = ?2 WHERE net = ?1", params![net, why])?;
        Ok(())
    }

    /// Forgets everything indexed for `net` (`kengate index reset`).
    pub fn reset(&self, net: &str) -> Result<(), DbError> {
        let mut conn = self.conn();
        conn.finish_seal(net, true);
        conn.windows.remove(net);
        let tx = conn.transaction()?;
        forget_network(&tx, net)?;
        tx.commit()?;
        Ok(())
    }

    /// Which of `addrs` the index already describes.
    pub fn known_contracts(&self, net: &str, addrs: &[super::extract::Address]) -> Result<Vec<bool>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT 1 FROM ix_contracts WHERE net = ?1 AND address = ?2")?;
        addrs.iter().map(|a| Ok(stmt.exists(params![net, &a[..]])?)).collect()
    }

    /// Which of `(contract, id)` the index has seen as MT ids.
    pub fn known_mt_tokens(
        &self,
        net: &str,
        ids: &[(super::extract::Address, ruint::aliases::U256)],
    ) -> Result<Vec<(super::extract::Address, ruint::aliases::U256)>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT 1 FROM ix_mt_tokens WHERE net = ?1 AND contract = ?2 AND token_id = ?3")?;
        let mut out = Vec::new();
        for (c, id) in ids {
            if stmt.exists(params![net, &c[..], &id.to_be_bytes::<32>()[..]])? {
                out.push((*c, *id));
            }
        }
        Ok(out)
    }

    /// A contract's name, symbol and decimals, if described.
    pub fn token_names(&self, net: &str, addr: &[u8]) -> Result<Option<(String, String, String)>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT name, symbol, decimals FROM ix_contracts WHERE net = ?1 AND address = ?2")?;
        Ok(stmt
            .query_row(params![net, addr], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    r.get::<_, Option<i64>>(2)?.map(|d| d.to_string()).unwrap_or_default(),
                ))
            })
            .optional()?)
    }

    /// An FT holder's balance (zero when it holds none).
    pub fn ft_balance(&self, net: &str, contract: &[u8], holder: &[u8]) -> Result<ruint::aliases::U256, DbError> {
        let mut conn = self.conn();
        conn.settle(net)?;
        let b: Option<Vec<u8>> = conn
            .query_row(
                "SELECT balance FROM ix_ft_balances WHERE net = ?1 AND contract = ?2 AND holder = ?3",
                params![net, contract, holder],
                |r| r.get(0),
            )
            .optional()?;
        Ok(word(b))
    }

    /// An MT holder's balance of one token id.
    pub fn mt_balance(
        &self,
        net: &str,
        contract: &[u8],
        id: &[u8; 32],
        holder: &[u8],
    ) -> Result<ruint::aliases::U256, DbError> {
        let mut conn = self.conn();
        conn.settle(net)?;
        let b: Option<Vec<u8>> = conn
            .query_row(
                "SELECT balance FROM ix_mt_balances WHERE net = ?1 AND contract = ?2 AND token_id = ?3 AND holder = ?4",
                params![net, contract, &id[..], holder],
                |r| r.get(0),
            )
            .optional()?;
        Ok(word(b))
    }

    /// An NFT's owner (`None`: never minted, or burned).
    pub fn nft_owner(&self, net: &str, contract: &[u8], id: &[u8; 32]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT owner FROM ix_nft_owners WHERE net = ?1 AND contract = ?2 AND token_id = ?3",
                params![net, contract, &id[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// How `net`'s window stands: the parts sealed before it, and the transfers and txs held
    /// in memory (the window's and, while it is written, the one being sealed) (`/status`).
    pub fn window_state(&self, net: &str) -> Result<(u64, u64), DbError> {
        let mut conn = self.conn();
        conn.load(net)?;
        let w = conn.window(net);
        let sealing = conn.sealing(net).map_or(0, |s| s.transfers);
        Ok((w.parts.len() as u64, w.transfers + sealing))
    }

    /// Rows per table for `net` (status, tests).
    pub fn counts(&self, net: &str) -> Result<(u64, u64), DbError> {
        let conn = self.conn();
        let count = |table: &str| -> Result<u64, DbError> {
            let n: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE net = ?1"),
                params![net],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok((count("ix_txs")?, count("ix_transfers")?))
    }
}

/// Which rows a history page holds: blocks `start..=end`, oldest or newest first, `limit`
/// rows after skipping `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// First block.
    pub start: u64,
    /// Last block.
    pub end: u64,
    /// Oldest first.
    pub asc: bool,
    /// Rows.
    pub limit: u32,
    /// Rows skipped (Etherscan's page × offset, which it caps at 10,000).
    pub skip: u32,
}

/// One transaction as the account APIs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxView {
    pub block: u64,
    pub index: u32,
    pub ts: u64,
    pub block_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub from: Vec<u8>,
    pub nonce: u64,
    pub gas: u64,
    pub to: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub type_int: u16,
    pub fee_payer: Option<Vec<u8>>,
    pub fee_ratio: Option<u8>,
    pub gas_used: u64,
    pub gas_price: Vec<u8>,
    pub success: bool,
    pub created: Option<Vec<u8>>,
    pub selector: Option<Vec<u8>>,
}

/// One transfer with its transaction's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferView {
    pub block: u64,
    pub tx_index: u32,
    pub log_index: i64,
    pub batch_pos: u32,
    pub ts: u64,
    pub tx_hash: Vec<u8>,
    pub contract: Option<Vec<u8>>,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub value: Vec<u8>,
    pub token_id: Option<Vec<u8>>,
    pub nonce: u64,
    pub gas: u64,
    pub gas_price: Vec<u8>,
    pub gas_used: u64,
    pub block_hash: Vec<u8>,
}

/// The columns [`tx_view`] reads, in its order.
pub(crate) const TX_COLUMNS: &str = "block, idx, ts, block_hash, hash, sender, nonce, gas, recipient, value, \
    type_int, fee_payer, fee_ratio, gas_used, gas_price, success, created, selector";

/// One `ix_txs` row selected as [`TX_COLUMNS`].
pub(crate) fn tx_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<TxView> {
    Ok(TxView {
        block: r.get::<_, i64>(0)? as u64,
        index: r.get(1)?,
        ts: r.get::<_, i64>(2)? as u64,
        block_hash: r.get(3)?,
        hash: r.get(4)?,
        from: r.get(5)?,
        nonce: r.get::<_, i64>(6)? as u64,
        gas: r.get::<_, i64>(7)? as u64,
        to: r.get(8)?,
        value: r.get(9)?,
        type_int: r.get(10)?,
        fee_payer: r.get(11)?,
        fee_ratio: r.get(12)?,
        gas_used: r.get::<_, i64>(13)? as u64,
        gas_price: r.get(14)?,
        success: r.get(15)?,
        created: r.get(16)?,
        selector: r.get(17)?,
    })
}

/// The history statements of the Etherscan API, in one place so that a test can check each
/// one's plan on a file without statistics (SQLite's planner guesses there, and guessed
/// wrong before: BENCHMARKS.md, "Embedded index"). Each reads one index range: an account's
/// rows of `ix_activity`, a tx's rows by its hash, or the transfers in block order.
pub(crate) mod history_sql {
    /// The direction of a page.
    fn dir(asc: bool) -> &'static str {
        if asc {
            "ASC"
        } else {
            "DESC"
        }
    }

    /// What a transfer page selects, from `ix_transfers t` and its tx `x`.
    const TRANSFER_COLUMNS: &str = "t.block, t.tx_idx, t.log_idx, t.pos, t.ts, t.tx_hash, t.contract, t.sender, \
        t.recipient, t.value, t.token_id, x.nonce, x.gas, x.gas_price, x.gas_used, x.block_hash";

    /// One entry's transfers of one kind that move to or from an account, in `pos` order.
    /// `?1` net, `?2..?4` the entry's block, tx and log, `?5` kind, `?6` account.
    pub(crate) fn transfers_at(asc: bool) -> String {
        let d = dir(asc);
        format!(
            "SELECT {TRANSFER_COLUMNS} FROM ix_transfers t \
             JOIN ix_txs x ON x.net = t.net AND x.block = t.block AND x.idx = t.tx_idx \
             WHERE t.net = ?1 AND t.block = ?2 AND t.tx_idx = ?3 AND t.log_idx = ?4 AND t.kind = ?5 \
             AND (t.sender = ?6 OR t.recipient = ?6) ORDER BY t.pos {d}"
        )
    }

    /// Transfers of one kind in block order, of one contract or of all.
    /// `?1` net, `?2` kind, `?3` contract or NULL, `?4..?5` blocks, `?6` limit, `?7` skip.
    pub(crate) fn transfers_in_blocks(asc: bool) -> String {
        let d = dir(asc);
        format!(
            "SELECT {TRANSFER_COLUMNS} FROM ix_transfers t \
             JOIN ix_txs x ON x.net = t.net AND x.block = t.block AND x.idx = t.tx_idx \
             WHERE t.net = ?1 AND t.kind = ?2 AND (?3 IS NULL OR t.contract = ?3) AND t.block BETWEEN ?4 AND ?5 \
             ORDER BY t.block {d}, t.tx_idx {d}, t.log_idx {d}, t.pos {d} LIMIT ?6 OFFSET ?7"
        )
    }

    /// Transfers of one kind made by one tx, at its position.
    /// `?1` net, `?2..?3` the tx's block and index, `?4` kind, `?5` limit, `?6` skip.
    pub(crate) fn transfers_in_tx(asc: bool) -> String {
        let d = dir(asc);
        format!(
            "SELECT {TRANSFER_COLUMNS} FROM ix_transfers t \
             JOIN ix_txs x ON x.net = t.net AND x.block = t.block AND x.idx = t.tx_idx \
             WHERE t.net = ?1 AND t.block = ?2 AND t.tx_idx = ?3 AND t.kind = ?4 \
             ORDER BY t.log_idx {d}, t.pos {d} LIMIT ?5 OFFSET ?6"
        )
    }
}

impl IndexDb {
    /// The transactions `addr` sent, received or created, in `page`: its KLAY entries (one
    /// per tx, a tx to itself once), then each tx by its position.
    pub fn txs_of(&self, net: &str, addr: &[u8], page: &Page) -> Result<Vec<TxView>, DbError> {
        let mut conn = self.conn();
        conn.load(net)?;
        let f = account_filter(KIND_KLAY, None, page);
        let skip = page.skip as usize;
        let keys = conn.account_keys(net, addr, &f, page.asc, None, skip + page.limit as usize)?;
        let mut by_pos = conn.prepare_cached(&format!(
            "SELECT {TX_COLUMNS} FROM ix_txs WHERE net = ?1 AND block = ?2 AND idx = ?3"
        ))?;
        let mut out = Vec::with_capacity(keys.len().saturating_sub(skip));
        for (k, _) in keys.iter().skip(skip) {
            if let Some(tx) = by_pos
                .query_row(params![net, sql_int(k.block), k.tx_idx], tx_view)
                .optional()?
            {
                out.push(tx);
            }
        }
        Ok(out)
    }

    /// Transfers of `kind` (`klay`, `internal`, `ft`, `nft`, `mt`) to or from `addr` and/or of
    /// `contract`.
    pub fn transfers_of(
        &self,
        net: &str,
        kind: &str,
        addr: Option<&[u8]>,
        contract: Option<&[u8]>,
        page: &Page,
    ) -> Result<Vec<TransferView>, DbError> {
        let mut conn = self.conn();
        let (start, end) = (sql_int(page.start), sql_int(page.end));
        let rows = match (addr, kind_of_str(kind)) {
            (Some(a), Some(bit)) => {
                conn.load(net)?;
                account_transfers(&conn, net, kind, bit, a, contract, page)?
            }
            // An unknown kind has no rows.
            (Some(_), None) => Vec::new(),
            (None, _) => {
                let mut stmt = conn.prepare_cached(&history_sql::transfers_in_blocks(page.asc))?;
                let rows = stmt.query_map(
                    params![net, kind, contract, start, end, page.limit, page.skip],
                    transfer_view,
                )?;
                rows.collect::<Result<_, _>>()?
            }
        };
        Ok(rows)
    }

    /// Transfers of `kind` made by the tx `hash`.
    pub fn transfers_in_tx(
        &self,
        net: &str,
        kind: &str,
        hash: &[u8],
        page: &Page,
    ) -> Result<Vec<TransferView>, DbError> {
        let mut conn = self.conn();
        conn.load(net)?;
        let Some((block, idx)) = conn.locate(net, hash)? else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare_cached(&history_sql::transfers_in_tx(page.asc))?;
        let rows = stmt.query_map(
            params![net, sql_int(block), idx, kind, page.limit, page.skip],
            transfer_view,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// An Etherscan page's filter on an account's entries: one kind, maybe one contract, the
/// page's blocks.
fn account_filter(kind: u8, contract: Option<&[u8]>, page: &Page) -> ActivityFilter {
    ActivityFilter {
        kinds: kind,
        contracts: contract.map(|c| vec![c.to_vec()]).unwrap_or_default(),
        contracts_keep_klay: false,
        dir: DIR_FROM | DIR_TO,
        exclude_zero_klay: false,
        span: Some(Span::Blocks(page.start, page.end)),
    }
}

/// An account's transfers of one kind in `page`: its entries of that kind in order, each
/// entry's transfer rows (a batch has one per id), `page.skip` rows left out. Entries are read
/// a chunk at a time until the page is full.
fn account_transfers(
    conn: &Inner,
    net: &str,
    kind: &str,
    bit: u8,
    account: &[u8],
    contract: Option<&[u8]>,
    page: &Page,
) -> Result<Vec<TransferView>, DbError> {
    let f = account_filter(bit, contract, page);
    let (limit, mut skip) = (page.limit as usize, page.skip as usize);
    let mut rows_at = conn.prepare_cached(&history_sql::transfers_at(page.asc))?;
    let mut out = Vec::with_capacity(limit.min(1000));
    let mut after = None;
    while out.len() < limit {
        let want = (limit - out.len() + skip).clamp(16, 1000);
        let keys = conn.account_keys(net, account, &f, page.asc, after, want)?;
        for (k, _) in &keys {
            let rows = rows_at.query_map(
                params![net, sql_int(k.block), k.tx_idx, k.log_idx, kind, account],
                transfer_view,
            )?;
            for row in rows {
                let row = row?;
                if skip > 0 {
                    skip -= 1;
                } else if out.len() < limit {
                    out.push(row);
                }
            }
        }
        if keys.len() < want {
            break;
        }
        after = keys.last().map(|k| k.0);
    }
    Ok(out)
}

/// One row of a [`history_sql`] transfer statement.
fn transfer_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransferView> {
    Ok(TransferView {
        block: r.get::<_, i64>(0)? as u64,
        tx_index: r.get(1)?,
        log_index: r.get(2)?,
        batch_pos: r.get(3)?,
        ts: r.get::<_, i64>(4)? as u64,
        tx_hash: r.get(5)?,
        contract: r.get(6)?,
        from: r.get(7)?,
        to: r.get(8)?,
        value: r.get(9)?,
        token_id: r.get(10)?,
        nonce: r.get::<_, i64>(11)? as u64,
        gas: r.get::<_, i64>(12)? as u64,
        gas_price: r.get(13)?,
        gas_used: r.get::<_, i64>(14)? as u64,
        block_hash: r.get(15)?,
    })
}

/// A transfer kind's `ix_activity.kind` bit, from its `ix_transfers.kind` name.
fn kind_of_str(kind: &str) -> Option<u8> {
    Kind::from_name(kind).map(kind_bit)
}

/// `ix_activity.dir`: the account sent.
pub(crate) const DIR_FROM: u8 = 1;
/// `ix_activity.dir`: the account received.
pub(crate) const DIR_TO: u8 = 2;
/// `ix_activity.kind` bits.
pub(crate) const KIND_KLAY: u8 = 1;

/// A kind as its `ix_activity.kind` bit (KLAY 1, FT 2, NFT 4, MT 8, internal KLAY 16).
pub(crate) fn kind_bit(k: super::extract::Kind) -> u8 {
    use super::extract::Kind;
    match k {
        Kind::Klay => KIND_KLAY,
        Kind::Ft => 2,
        Kind::Nft => 4,
        Kind::Mt => 8,
        Kind::Internal => 16,
    }
}

/// `ix_transfers.log_idx`: the log's index; -1 for a tx's own KLAY value, -2 for the KLAY its
/// calls moved (numbered by `pos` in call order), so that they sort before the tx's logs.
fn log_column(t: &super::extract::Transfer) -> i64 {
    match (t.log_index, t.kind) {
        (Some(i), _) => i64::from(i),
        (None, super::extract::Kind::Internal) => INTERNAL_LOG,
        (None, _) => -1,
    }
}

/// `ix_transfers.log_idx` (and `ix_activity.log_idx`) of the KLAY a tx's calls moved.
pub(crate) const INTERNAL_LOG: i64 = -2;

/// A stored 32-byte amount (zero when absent).
pub(crate) fn word(b: Option<Vec<u8>>) -> ruint::aliases::U256 {
    b.and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(ruint::aliases::U256::from_be_bytes)
        .unwrap_or_default()
}

/// SQLite integers are signed 64-bit; block numbers and times fit.
pub(crate) fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::extract::{Kind, Transfer, TxRow};
    use ruint::aliases::U256;

    /// Without planner statistics (kengate never runs ANALYZE) SQLite once took `net = ?` on a
    /// primary key for a selective equality and walked a network's whole `ix_txs` for each KLAY
    /// entry of a history page (BENCHMARKS.md, "Embedded index"). Every history statement is
    /// checked here on a file without statistics: it reads the index range it was written for
    /// and never sorts (a sort reads every row that matches before the first is returned).
    #[test]
    fn history_statements_read_one_index_range_on_a_file_without_statistics() {
        let db = IndexDb::in_memory().unwrap();
        let conn = db.conn();
        let plan = |sql: &str| -> String {
            // Parameters left unbound: the plan is made without their values.
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                out.push(r.get::<_, String>(3).unwrap());
            }
            out.join("; ")
        };
        let check = |sql: &str, wants: &[&str]| {
            let p = plan(sql);
            for w in wants {
                assert!(p.contains(w), "{w} not in the plan of {sql}:\n{p}");
            }
            assert!(!p.contains("TEMP B-TREE"), "a sort in the plan of {sql}:\n{p}");
            assert!(!p.contains("SCAN"), "a scan in the plan of {sql}:\n{p}");
        };
        let by_pos = "USING PRIMARY KEY (net=? AND block=? AND idx=?)";
        check(
            &format!("SELECT {TX_COLUMNS} FROM ix_txs WHERE net = 'n' AND block = 1 AND idx = 0"),
            &[by_pos],
        );
        check(
            "SELECT block, idx FROM ix_tx_hashes WHERE net = 'n' AND part = 1 AND hash = x'00'",
            &["USING PRIMARY KEY (net=? AND part=? AND hash=?)"],
        );
        check(
            reads::NFT_MOVES_SQL,
            &["USING PRIMARY KEY (net=? AND part=? AND contract=? AND token_id=?"],
        );
        let f = ActivityFilter {
            kinds: 15,
            contracts: vec![vec![9; 20]],
            contracts_keep_klay: true,
            dir: 3,
            exclude_zero_klay: true,
            span: Some(Span::Times(1, 2)),
        };
        let after = Some(Key {
            block: 5,
            tx_idx: 1,
            log_idx: 2,
        });
        for asc in [false, true] {
            for (f, after) in [
                (f.clone(), after),
                (
                    ActivityFilter {
                        span: None,
                        ..f.clone()
                    },
                    None,
                ),
            ] {
                let (sql, _) = reads::part_query("n", &[1; 20], &f, asc, after);
                check(&sql, &["USING PRIMARY KEY (net=? AND part=? AND account=?"]);
            }
            check(
                &history_sql::transfers_at(asc),
                &[
                    "t USING PRIMARY KEY (net=? AND block=? AND tx_idx=? AND log_idx=?)",
                    by_pos,
                ],
            );
            check(
                &history_sql::transfers_in_blocks(asc),
                &["t USING PRIMARY KEY (net=? AND block", by_pos],
            );
            check(
                &history_sql::transfers_in_tx(asc),
                &["t USING PRIMARY KEY (net=? AND block=? AND tx_idx=?)", by_pos],
            );
        }
    }

    fn block(n: u64, parent: u8) -> BlockRows {
        let hash = [n as u8; 32];
        BlockRows {
            number: n,
            hash,
            parent: [parent; 32],
            timestamp: 1000 + n,
            txs: vec![TxRow {
                hash: [n as u8 + 100; 32],
                index: 0,
                from: [1; 20],
                nonce: n,
                gas: 21000,
                to: Some([2; 20]),
                value: U256::from(5u8),
                type_int: 0,
                fee_payer: None,
                fee_ratio: None,
                gas_used: 21000,
                gas_price: U256::from(1u8),
                success: true,
                contract_created: None,
                selector: None,
            }],
            transfers: vec![Transfer {
                kind: Kind::Klay,
                tx_hash: [n as u8 + 100; 32],
                tx_index: 0,
                log_index: None,
                batch_pos: 0,
                contract: None,
                from: [1; 20],
                to: [2; 20],
                value: U256::from(5u8),
                token_id: None,
                operator: None,
            }],
        }
    }

    #[test]
    fn batches_move_the_checkpoint_and_rewrites_replace() {
        let db = IndexDb::in_memory().unwrap();
        assert_eq!(db.checkpoint("a").unwrap(), None);
        db.write("a", &[block(1, 0), block(2, 1)], &[]).unwrap();
        let cp = db.checkpoint("a").unwrap().unwrap();
        assert_eq!((cp.number, cp.hash, cp.halted), (2, [2; 32], None));
        assert_eq!(db.counts("a").unwrap(), (2, 2));
        // the same blocks again (a crash before the checkpoint was read back): no duplicate
        db.write("a", &[block(2, 1)], &[]).unwrap();
        assert_eq!(db.counts("a").unwrap(), (2, 2));
        // networks apart
        assert_eq!(db.counts("b").unwrap(), (0, 0));
        db.halt("a", "parent mismatch at 3").unwrap();
        assert_eq!(
            db.checkpoint("a").unwrap().unwrap().halted.as_deref(),
            Some("parent mismatch at 3")
        );
        db.reset("a").unwrap();
        assert_eq!((db.checkpoint("a").unwrap(), db.counts("a").unwrap()), (None, (0, 0)));
    }

    /// An FT transfer in block `n`'s tx 0, log `log`.
    fn ft(n: u64, log: u32, from: u8, to: u8, value: u64) -> Transfer {
        Transfer {
            kind: Kind::Ft,
            tx_hash: [n as u8 + 100; 32],
            tx_index: 0,
            log_index: Some(log),
            batch_pos: 0,
            contract: Some([9; 20]),
            from: [from; 20],
            to: [to; 20],
            value: U256::from(value),
            token_id: None,
            operator: None,
        }
    }

    /// Balances are folded in the window (each one's transfers composed, applied to the stored
    /// balance when written), but move exactly as one statement per transfer would, never
    /// below zero, and an emptied balance goes; the same whether a batch holds one block or all
    /// of them.
    #[test]
    fn folded_balances_move_as_transfers_in_order_do() {
        let blocks = || {
            let mut b1 = block(1, 0);
            // 3 has nothing yet: sends 5 (stays 0), then gets 7 from a mint, sends 2 to 4
            b1.transfers = vec![ft(1, 0, 3, 4, 5), ft(1, 1, 0, 3, 7), ft(1, 2, 3, 4, 2)];
            let mut b2 = block(2, 1);
            // 4 (holding 7) sends it all back to 3, then 3 burns 1
            b2.transfers = vec![ft(2, 0, 4, 3, 7), ft(2, 1, 3, 0, 1)];
            [b1, b2]
        };
        let check = |db: &IndexDb| {
            let bal = |who: u8| db.ft_balance("a", &[9; 20], &[who; 20]).unwrap();
            assert_eq!((bal(3), bal(4)), (U256::from(11u8), U256::ZERO));
            let rows: i64 = db
                .conn()
                .query_row(
                    "SELECT COUNT(*) FROM ix_ft_balances WHERE holder = ?1",
                    [&[4u8; 20][..]],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(rows, 0, "an emptied balance has no row");
        };
        let one = IndexDb::in_memory().unwrap();
        one.write("a", &blocks(), &[]).unwrap();
        check(&one);
        let apart = IndexDb::in_memory().unwrap();
        for b in blocks() {
            apart.write("a", &[b], &[]).unwrap();
        }
        check(&apart);
    }

    /// Every account lookup goes through `ix_activity`: an account's txs (sent, received, or a
    /// transfer to itself once), its transfers of a kind, a tx's transfers by its hash.
    #[test]
    fn account_history_reads_through_the_activity_rows() {
        let db = IndexDb::in_memory().unwrap();
        let mut b1 = block(1, 0);
        b1.transfers.push(ft(1, 0, 1, 3, 4));
        let mut b2 = block(2, 1);
        b2.txs[0].to = Some([1; 20]);
        b2.transfers[0].to = [1; 20];
        db.write("a", &[b1, b2], &[]).unwrap();
        let page = Page {
            start: 0,
            end: 10,
            asc: true,
            limit: 10,
            skip: 0,
        };
        let txs = |who: u8| -> Vec<u64> {
            db.txs_of("a", &[who; 20], &page)
                .unwrap()
                .iter()
                .map(|t| t.block)
                .collect()
        };
        assert_eq!(txs(1), [1, 2], "sent, then sent to itself: once");
        assert_eq!(txs(2), [1]);
        assert_eq!(txs(3), Vec::<u64>::new(), "a token's recipient is not a tx's");
        let ft_of = |who: u8, contract: Option<&[u8]>| {
            db.transfers_of("a", "ft", Some(&[who; 20]), contract, &page)
                .unwrap()
                .len()
        };
        assert_eq!((ft_of(1, None), ft_of(3, None), ft_of(2, None)), (1, 1, 0));
        assert_eq!((ft_of(3, Some(&[9; 20])), ft_of(3, Some(&[8; 20]))), (1, 0));
        assert_eq!(db.transfers_of("a", "ft", None, None, &page).unwrap().len(), 1);
        let in_tx = db.transfers_in_tx("a", "ft", &[101; 32], &page).unwrap();
        assert_eq!((in_tx.len(), in_tx[0].to.as_slice()), (1, &[3u8; 20][..]));
        assert!(db.transfers_in_tx("a", "ft", &[102; 32], &page).unwrap().is_empty());
    }

    /// Blocks `1..=n` of a made-up chain: a few txs each between six accounts (some creating
    /// a contract, some of zero value), each with its KLAY row and some FT, NFT, MT (a batch of
    /// three ids) and internal transfers.
    fn chain(n: u64) -> Vec<BlockRows> {
        let mut seed = 7u64;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut out = Vec::new();
        for b in 1..=n {
            let mut blk = block(b, (b - 1) as u8);
            blk.txs.clear();
            blk.transfers.clear();
            for i in 0..=next(3) as u32 {
                let hash = {
                    let mut h = [0u8; 32];
                    h[..8].copy_from_slice(&b.to_be_bytes());
                    h[8..12].copy_from_slice(&i.to_be_bytes());
                    h
                };
                let from = [1 + next(6) as u8; 20];
                let to = (next(8) != 0).then(|| [1 + next(6) as u8; 20]);
                let value = U256::from(next(3));
                let mut tx = block(b, 0).txs.remove(0);
                (tx.hash, tx.index, tx.from, tx.to, tx.value) = (hash, i, from, to, value);
                tx.contract_created = to.is_none().then_some([0x77; 20]);
                let base = Transfer {
                    kind: Kind::Klay,
                    tx_hash: hash,
                    tx_index: i,
                    log_index: None,
                    batch_pos: 0,
                    contract: None,
                    from,
                    to: to.unwrap_or([0x77; 20]),
                    value,
                    token_id: None,
                    operator: None,
                };
                blk.transfers.push(base.clone());
                let (a, c) = ([1 + next(6) as u8; 20], [1 + next(6) as u8; 20]);
                for log in 0..next(4) as u32 {
                    let kind = [Kind::Ft, Kind::Nft, Kind::Mt, Kind::Internal][next(4) as usize];
                    let pos_n = if kind == Kind::Mt { 3 } else { 1 };
                    for pos in 0..pos_n {
                        blk.transfers.push(Transfer {
                            kind,
                            log_index: (kind != Kind::Internal).then_some(i * 10 + log),
                            batch_pos: if kind == Kind::Internal { log } else { pos },
                            contract: (kind != Kind::Internal).then_some([0x90 + next(2) as u8; 20]),
                            from: if next(5) == 0 { [0; 20] } else { a },
                            to: c,
                            token_id: (kind == Kind::Nft || kind == Kind::Mt).then(|| U256::from(next(9))),
                            ..base.clone()
                        });
                    }
                }
                blk.txs.push(tx);
            }
            out.push(blk);
        }
        out
    }

    /// Everything the account and hash reads answer for `chain(n)`, one string per answer.
    fn answers(db: &IndexDb, n: u64) -> Vec<String> {
        let mut out = Vec::new();
        let filters = [
            filters_all(),
            ActivityFilter {
                kinds: 3,
                contracts: vec![vec![0x90; 20]],
                contracts_keep_klay: true,
                dir: 1,
                exclude_zero_klay: true,
                span: Some(Span::Blocks(4, n - 3)),
            },
            ActivityFilter {
                kinds: 12,
                contracts: vec![vec![0x91; 20]],
                contracts_keep_klay: false,
                dir: 2,
                exclude_zero_klay: false,
                span: Some(Span::Times(1005, 1000 + n - 5)),
            },
        ];
        for who in 1..=7u8 {
            let accounts = [vec![who; 20], vec![(who % 7) + 1; 20]];
            for f in &filters {
                // page through with the cursor, 4 at a time
                let mut before = None;
                loop {
                    let page = db.activity("a", &accounts, f, before, 4).unwrap();
                    out.push(format!("activity {who} {f:?} {before:?}: {page:?}"));
                    match page.last() {
                        Some(k) if page.len() == 4 => before = Some(k.0),
                        _ => break,
                    }
                }
            }
            for asc in [false, true] {
                for (skip, limit) in [(0, 100), (3, 5), (17, 2)] {
                    let page = Page {
                        start: 2,
                        end: n - 1,
                        asc,
                        limit,
                        skip,
                    };
                    let txs: Vec<(u64, u32)> = db
                        .txs_of("a", &[who; 20], &page)
                        .unwrap()
                        .iter()
                        .map(|t| (t.block, t.index))
                        .collect();
                    out.push(format!("txs {who} {page:?}: {txs:?}"));
                    for kind in ["ft", "nft", "mt", "internal", "klay"] {
                        for c in [None, Some(&[0x91u8; 20][..])] {
                            let t: Vec<_> = db
                                .transfers_of("a", kind, Some(&[who; 20]), c, &page)
                                .unwrap()
                                .iter()
                                .map(|t| (t.block, t.tx_index, t.log_index, t.batch_pos))
                                .collect();
                            out.push(format!("{kind} {who} {c:?} {page:?}: {t:?}"));
                        }
                    }
                }
            }
        }
        for c in [[0x90u8; 20], [0x91; 20]] {
            for id in 0..9u8 {
                let id = U256::from(id).to_be_bytes::<32>();
                let mut before = None;
                loop {
                    let page = db.nft_history("a", &c, &id, before, 3).unwrap();
                    out.push(format!("nft {c:?} {id:?} {before:?}: {page:?}"));
                    match page.last() {
                        Some(k) if page.len() == 3 => before = Some(k.key),
                        _ => break,
                    }
                }
            }
        }
        for b in chain(n) {
            for t in &b.txs {
                let page = Page {
                    start: 0,
                    end: u64::MAX,
                    asc: false,
                    limit: 100,
                    skip: 0,
                };
                let ev = db.events_of_tx("a", &t.hash).unwrap();
                let ft = db.transfers_in_tx("a", "mt", &t.hash, &page).unwrap();
                out.push(format!("tx {:?}: {} {ev:?} {ft:?}", t.hash, ev.len()));
            }
        }
        // balances last: a read of them takes in a window being sealed
        for who in 0..=7u8 {
            for c in [[0x90u8; 20], [0x91; 20]] {
                let ft = db.ft_balance("a", &c, &[who; 20]).unwrap();
                let mt: Vec<U256> = (0..9u8)
                    .map(|id| {
                        db.mt_balance("a", &c, &U256::from(id).to_be_bytes::<32>(), &[who; 20])
                            .unwrap()
                    })
                    .collect();
                out.push(format!("balances {who} {c:?}: {ft} {mt:?}"));
            }
        }
        out
    }

    /// An empty directory of this test's own under the temp dir.
    fn fresh_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kengate-ix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A sealed file ahead of the index file (a power loss took the index file's last commits)
    /// makes the network start over instead of serving a part twice; one that is not is kept.
    #[test]
    fn a_sealed_file_ahead_of_the_index_file_is_forgotten() {
        let dir = fresh_dir("ahead");
        let file = dir.join("index.db");
        let tuning = Tuning {
            window_transfers: 40,
            ..Tuning::default()
        };
        let db = IndexDb::open_with(&file, tuning).unwrap();
        for c in chain(30).chunks(3) {
            db.write("a", c, &[]).unwrap();
        }
        db.wait_sealed();
        let (parts, _) = db.window_state("a").unwrap();
        assert!(parts > 1, "{parts} parts");
        drop(db);
        // reopened as it was: kept
        let db = IndexDb::open_with(&file, tuning).unwrap();
        assert_eq!(db.window_state("a").unwrap().0, parts);
        drop(db);
        // the index file loses its last commits: the checkpoint falls below the last part
        let main = Connection::open(&file).unwrap();
        main.execute("UPDATE ix_checkpoint SET number = 3 WHERE net = 'a'", [])
            .unwrap();
        drop(main);
        let db = IndexDb::open_with(&file, tuning).unwrap();
        assert_eq!(db.checkpoint("a").unwrap(), None, "the network starts over");
        assert_eq!(db.window_state("a").unwrap(), (0, 0));
        assert_eq!(db.counts("a").unwrap(), (0, 0));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The window and the parts answer together exactly what one window holding everything
    /// answers: sealed every few batches, across a restart (the window made again from the
    /// tables), and after a write that failed (the window dropped and made again).
    #[test]
    fn sealed_parts_and_the_window_answer_as_one_window_does() {
        let n = 60;
        let blocks = chain(n);
        let whole = IndexDb::in_memory().unwrap();
        for c in blocks.chunks(7) {
            whole.write("a", c, &[]).unwrap();
        }
        assert!(whole.conn().windows["a"].parts.is_empty());
        let want = answers(&whole, n);
        assert!(
            want.iter().filter(|a| a.ends_with(": []")).count() < want.len() / 2,
            "most answers hold rows"
        );

        let sealed = IndexDb::in_memory_sealing_every(20).unwrap();
        for (i, c) in blocks.chunks(3).enumerate() {
            sealed.write("a", c, &[]).unwrap();
            if i % 4 == 1 {
                // a read of balances writes the window's into the file first
                sealed.ft_balance("a", &[0x90; 20], &[1; 20]).unwrap();
                assert!(sealed.conn().windows["a"].balances.is_empty());
            }
        }
        let parts = sealed.conn().windows["a"].parts.len();
        assert!(parts > 5, "{parts} parts");
        for (got, want) in answers(&sealed, n).iter().zip(&want) {
            assert_eq!(got, want);
        }
        // read while a window is being sealed (its part written, not yet taken in): the
        // window, the one being sealed and the parts together, once each
        let mut caught = 0;
        for every in 12..40 {
            let db = IndexDb::in_memory_sealing_every(every).unwrap();
            for c in blocks.chunks(3) {
                db.write("a", c, &[]).unwrap();
            }
            if !db.conn().sealing.contains_key("a") {
                continue;
            }
            caught += 1;
            for (got, want) in answers(&db, n).iter().zip(&want) {
                assert_eq!(got, want, "window of {every}");
            }
        }
        assert!(caught > 2, "{caught} fills ended with a window being sealed");

        let dir = fresh_dir("parts");
        let file = dir.join("index.db");
        let tuning = Tuning {
            window_transfers: 150,
            ..Tuning::default()
        };
        let db = IndexDb::open_with(&file, tuning).unwrap();
        let held = |db: &IndexDb| {
            let mut conn = db.conn();
            // a seal under way on the sealer thread goes in first
            conn.finish_seal("a", true);
            let w = &conn.windows["a"];
            (w.parts.len(), w.entries, w.balances.is_empty())
        };
        // past block 30, up to a batch that leaves the window holding something
        let mut upto = 0;
        for c in blocks.chunks(4) {
            db.write("a", c, &[]).unwrap();
            upto += c.len();
            if upto > 30 && held(&db).0 > 0 && held(&db).1 > 0 && !held(&db).2 {
                break;
            }
        }
        let rest = &blocks[upto..];
        assert!(rest.len() > 10);
        let before = held(&db);
        assert!(
            before.0 > 0 && before.1 > 0 && !before.2,
            "parts, entries and balances in memory: {before:?}"
        );
        drop(db);
        let db = IndexDb::open_with(&file, tuning).unwrap();
        db.conn().load("a").unwrap();
        assert_eq!(held(&db), before, "the window made again from the file");
        // a write that fails half-way (a constraint the batch breaks) leaves the window as the
        // file has it
        db.conn()
            .execute_batch(&format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON ix_txs WHEN NEW.block = {} BEGIN SELECT RAISE(ABORT, 'no'); END",
                rest[2].number
            ))
            .unwrap();
        db.write("a", &rest[..4], &[]).unwrap_err();
        assert!(!db.conn().windows.contains_key("a"), "the window is dropped");
        db.conn().execute_batch("DROP TRIGGER refuse").unwrap();
        for c in rest.chunks(5) {
            db.write("a", c, &[]).unwrap();
        }
        for (got, want) in answers(&db, n).iter().zip(&want) {
            assert_eq!(got, want);
        }
        drop(db);
        let db = IndexDb::open_with(&file, tuning).unwrap();
        assert_eq!(answers(&db, n), want);
        db.reset("a").unwrap();
        assert!(db
            .activity("a", &[vec![1; 20]], &filters_all(), None, 10)
            .unwrap()
            .is_empty());
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every kind, direction and block.
    fn filters_all() -> ActivityFilter {
        ActivityFilter {
            kinds: 31,
            contracts: Vec::new(),
            contracts_keep_klay: false,
            dir: 3,
            exclude_zero_klay: false,
            span: None,
        }
    }

    /// On a file the WAL is copied by the checkpoint thread (SQLite's own checkpoint in the
    /// commit is off): the WAL starts over instead of growing with every batch, and what was
    /// written is in the file once the index is closed.
    #[test]
    fn the_checkpoint_thread_keeps_the_wal_from_growing() {
        let dir = fresh_dir("wal");
        let (file, wal) = (dir.join("index.db"), dir.join("index.db-wal"));
        let db = IndexDb::open(&file).unwrap();
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let runs = || {
            db.checkpoints
                .as_ref()
                .unwrap()
                .runs
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut parent = 0u8;
        let mut grew = 0u64;
        for n in 1..=150u64 {
            let (before, ran) = (wal_len(), runs());
            db.write("a", &[block(n, parent)], &[]).unwrap();
            grew += wal_len().saturating_sub(before);
            parent = n as u8;
            // the thread copies what this batch wrote before the next one
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while runs() == ran && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(runs() > ran, "no checkpoint after batch {n}");
        }
        // each commit writes several pages (a tx, a transfer, activity, the checkpoint row):
        // without checkpoints the WAL would hold them all; it starts over instead
        assert!(grew > 0);
        assert!(wal_len() < 150 * 4096, "the WAL grew to {} bytes", wal_len());
        drop(db);
        let db = IndexDb::open(&file).unwrap();
        assert_eq!(db.counts("a").unwrap(), (150, 150));
        assert_eq!(db.checkpoint("a").unwrap().unwrap().number, 150);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
