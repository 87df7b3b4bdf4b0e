//! The index's tables: transactions, transfers and a checkpoint per network, in their own
//! SQLite file beside the store (WAL; a backfill's large batches never hold up the write
//! path's records). Laid out for the PostgreSQL backend to map one to one: composite
//! primary keys, amounts and ids as 32-byte big-endian blobs (ordered as numbers), indexes
//! for keyset pagination (account or contract, then block, tx, log descending), no `OFFSET`.
//!
//! A batch of blocks is written in one transaction together with the checkpoint that says
//! they are in, and every row has a natural key, so re-writing a block (after a crash between
//! fetch and commit) replaces it: no gap, no duplicate.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

use super::extract::{BlockRows, Hash};

mod reads;
pub use reads::{
    ActivityFilter, ContractView, Event, Holding, HoldingKey, Key, MtBy, MtHolding, MtTokenView, NftView,
    OwnershipChange, Preset, Span, TransferRow,
};

/// Bumped when a table changes shape; an index file of another version is rebuilt (the
/// index holds nothing that cannot be read from the chain again).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ix_checkpoint (
    net TEXT PRIMARY KEY,
    number INTEGER NOT NULL,
    hash BLOB NOT NULL,
    halted TEXT
);
CREATE TABLE IF NOT EXISTS ix_txs (
    net TEXT NOT NULL, hash BLOB NOT NULL, block INTEGER NOT NULL, idx INTEGER NOT NULL,
    ts INTEGER NOT NULL, block_hash BLOB NOT NULL, sender BLOB NOT NULL, nonce INTEGER NOT NULL,
    gas INTEGER NOT NULL, recipient BLOB, value BLOB NOT NULL,
    type_int INTEGER NOT NULL, fee_payer BLOB, fee_ratio INTEGER, gas_used INTEGER NOT NULL,
    gas_price BLOB NOT NULL, success INTEGER NOT NULL, created BLOB, selector BLOB,
    PRIMARY KEY (net, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_txs_block ON ix_txs (net, block DESC, idx DESC);
CREATE INDEX IF NOT EXISTS ix_txs_from ON ix_txs (net, sender, block DESC, idx DESC);
CREATE INDEX IF NOT EXISTS ix_txs_to ON ix_txs (net, recipient, block DESC, idx DESC);
CREATE INDEX IF NOT EXISTS ix_txs_created ON ix_txs (net, created, block DESC, idx DESC);
CREATE TABLE IF NOT EXISTS ix_transfers (
    net TEXT NOT NULL, block INTEGER NOT NULL, tx_idx INTEGER NOT NULL, log_idx INTEGER NOT NULL,
    pos INTEGER NOT NULL, kind TEXT NOT NULL, tx_hash BLOB NOT NULL, ts INTEGER NOT NULL,
    contract BLOB, sender BLOB NOT NULL, recipient BLOB NOT NULL, value BLOB NOT NULL, token_id BLOB,
    operator BLOB,
    PRIMARY KEY (net, block, tx_idx, log_idx, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_tr_from ON ix_transfers (net, sender, block DESC, tx_idx DESC, log_idx DESC, pos DESC);
CREATE INDEX IF NOT EXISTS ix_tr_to ON ix_transfers (net, recipient, block DESC, tx_idx DESC, log_idx DESC, pos DESC);
CREATE INDEX IF NOT EXISTS ix_tr_contract ON ix_transfers (net, contract, token_id, block DESC, tx_idx DESC, log_idx DESC, pos DESC);
CREATE INDEX IF NOT EXISTS ix_tr_tx ON ix_transfers (net, tx_hash);
CREATE TABLE IF NOT EXISTS ix_activity (
    net TEXT NOT NULL, account BLOB NOT NULL, block INTEGER NOT NULL, tx_idx INTEGER NOT NULL,
    log_idx INTEGER NOT NULL, kind INTEGER NOT NULL, contract BLOB, dir INTEGER NOT NULL,
    zero INTEGER NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (net, account, block DESC, tx_idx DESC, log_idx DESC)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_ft_balances (
    net TEXT NOT NULL, contract BLOB NOT NULL, holder BLOB NOT NULL, balance BLOB NOT NULL,
    updated INTEGER NOT NULL, last_tx BLOB NOT NULL, last_from BLOB NOT NULL, last_to BLOB NOT NULL,
    PRIMARY KEY (net, contract, holder)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_ft_holder ON ix_ft_balances (net, holder, contract);
CREATE TABLE IF NOT EXISTS ix_nft_owners (
    net TEXT NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL, owner BLOB NOT NULL,
    block INTEGER NOT NULL, prev_owner BLOB NOT NULL, tx_hash BLOB NOT NULL, created INTEGER NOT NULL,
    updated INTEGER NOT NULL, uri TEXT,
    PRIMARY KEY (net, contract, token_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_nft_owner ON ix_nft_owners (net, owner, contract, token_id);
CREATE TABLE IF NOT EXISTS ix_mt_balances (
    net TEXT NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL, holder BLOB NOT NULL,
    balance BLOB NOT NULL, updated INTEGER NOT NULL, last_tx BLOB NOT NULL, last_from BLOB NOT NULL,
    last_to BLOB NOT NULL,
    PRIMARY KEY (net, contract, token_id, holder)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_mt_holder ON ix_mt_balances (net, holder, contract, token_id);
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

/// Every table the index keeps (a schema change drops them all).
const TABLES: &[&str] = &[
    "ix_checkpoint",
    "ix_txs",
    "ix_transfers",
    "ix_activity",
    "ix_ft_balances",
    "ix_nft_owners",
    "ix_mt_balances",
    "ix_mt_tokens",
    "ix_contracts",
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

/// The index tables of every network.
#[derive(Debug)]
pub struct IndexDb {
    conn: Mutex<Connection>,
}

impl IndexDb {
    /// Opens (creating if needed) the index file at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Io(format!("{}: {e}", dir.display())))?;
        }
        Self::init(Connection::open(path)?)
    }

    /// An in-memory index (tests).
    pub fn in_memory() -> Result<Self, DbError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, DbError> {
        // WAL + NORMAL: a committed batch survives kill -9; appends stay fast.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            let had: i64 = conn.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'ix_checkpoint'",
                [],
                |r| r.get(0),
            )?;
            if had > 0 {
                tracing::warn!(
                    from = version,
                    to = SCHEMA_VERSION,
                    "index: the index file has an older layout; it is rebuilt from the chain"
                );
            }
            for t in TABLES {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS {t}"))?;
            }
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
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
        let Some(last) = blocks.last() else { return Ok(()) };
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
            let mut put_tx = tx.prepare_cached(
                "INSERT OR REPLACE INTO ix_txs (net, hash, block, idx, ts, block_hash, sender, nonce, gas, \
                 recipient, value, type_int, fee_payer, fee_ratio, gas_used, gas_price, success, created, selector) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?;
            let mut put_transfer = tx.prepare_cached(
                "INSERT OR REPLACE INTO ix_transfers (net, block, tx_idx, log_idx, pos, kind, tx_hash, ts, \
                 contract, sender, recipient, value, token_id, operator) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let mut put_activity = tx.prepare_cached(
                "INSERT INTO ix_activity (net, account, block, tx_idx, log_idx, kind, contract, dir, zero, ts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (net, account, block, tx_idx, log_idx) DO UPDATE SET dir = dir | excluded.dir",
            )?;
            for b in blocks {
                let (block, ts) = (sql_int(b.number), sql_int(b.timestamp));
                for t in &b.txs {
                    put_tx.execute(params![
                        net,
                        &t.hash[..],
                        block,
                        t.index,
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
                    // Every tx is a KLAY transfer to its sender and recipient (KAS lists them,
                    // zero-valued and failed ones too).
                    let to = t.to.or(t.contract_created);
                    for (who, dir) in [(Some(t.from), DIR_FROM), (to, DIR_TO)] {
                        let Some(who) = who else { continue };
                        put_activity.execute(params![
                            net,
                            &who[..],
                            block,
                            t.index,
                            -1i64,
                            KIND_KLAY,
                            None::<&[u8]>,
                            dir,
                            t.value.is_zero(),
                            ts
                        ])?;
                    }
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
                    // One activity row per token event (a batch's first id stands for it).
                    let (Some(log), 0) = (t.log_index, t.batch_pos) else {
                        continue;
                    };
                    for (who, dir) in [(t.from, DIR_FROM), (t.to, DIR_TO)] {
                        if who == [0; 20] {
                            continue;
                        }
                        put_activity.execute(params![
                            net,
                            &who[..],
                            block,
                            t.tx_index,
                            i64::from(log),
                            kind_bit(t.kind),
                            t.contract.as_ref().map(|a| &a[..]),
                            dir,
                            false,
                            ts
                        ])?;
                    }
                }
            }
            for b in blocks {
                for t in &b.transfers {
                    holdings(&tx, net, b, t, uris)?;
                }
            }
            tx.execute(
                "INSERT INTO ix_checkpoint (net, number, hash, halted) VALUES (?1, ?2, ?3, NULL) \
                 ON CONFLICT (net) DO UPDATE SET number = excluded.number, hash = excluded.hash, halted = NULL",
                params![net, sql_int(last.number), &last.hash[..]],
            )?;
        }
        tx.commit()?;
        Ok(())
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
        let tx = conn.transaction()?;
        for table in TABLES {
            tx.execute(&format!("DELETE FROM {table} WHERE net = ?1"), params![net])?;
        }
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
        let b: Option<Vec<u8>> = self
            .conn()
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
        let b: Option<Vec<u8>> = self
            .conn()
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

impl IndexDb {
    /// The transactions `addr` sent, received or created, in `page`.
    pub fn txs_of(&self, net: &str, addr: &[u8], page: &Page) -> Result<Vec<TxView>, DbError> {
        let dir = if page.asc { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM ix_txs \
             WHERE net = ?1 AND (sender = ?2 OR recipient = ?2 OR created = ?2) AND block BETWEEN ?3 AND ?4 \
             ORDER BY block {dir}, idx {dir} LIMIT ?5 OFFSET ?6"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![net, addr, sql_int(page.start), sql_int(page.end), page.limit, page.skip],
            tx_view,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        self.transfer_page(
            "(?3 IS NULL OR t.sender = ?3 OR t.recipient = ?3) AND (?4 IS NULL OR t.contract = ?4)",
            net,
            kind,
            [addr, contract],
            page,
        )
    }

    /// Transfers of `kind` made by the tx `hash`.
    pub fn transfers_in_tx(
        &self,
        net: &str,
        kind: &str,
        hash: &[u8],
        page: &Page,
    ) -> Result<Vec<TransferView>, DbError> {
        self.transfer_page("t.tx_hash = ?3 AND ?4 IS NULL", net, kind, [Some(hash), None], page)
    }

    /// A page of `kind`'s transfers that match `filter` (over `?3` and `?4`).
    fn transfer_page(
        &self,
        filter: &str,
        net: &str,
        kind: &str,
        [a, b]: [Option<&[u8]>; 2],
        page: &Page,
    ) -> Result<Vec<TransferView>, DbError> {
        let dir = if page.asc { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT t.block, t.tx_idx, t.log_idx, t.pos, t.ts, t.tx_hash, t.contract, t.sender, t.recipient, \
             t.value, t.token_id, x.nonce, x.gas, x.gas_price, x.gas_used, x.block_hash \
             FROM ix_transfers t JOIN ix_txs x ON x.net = t.net AND x.hash = t.tx_hash \
             WHERE t.net = ?1 AND t.kind = ?2 AND {filter} AND t.block BETWEEN ?5 AND ?6 \
             ORDER BY t.block {dir}, t.tx_idx {dir}, t.log_idx {dir}, t.pos {dir} LIMIT ?7 OFFSET ?8"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                net,
                kind,
                a,
                b,
                sql_int(page.start),
                sql_int(page.end),
                page.limit,
                page.skip
            ],
            |r| {
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
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
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
        (None, super::extract::Kind::Internal) => -2,
        (None, _) => -1,
    }
}

/// The transfer that last touched a holding.
struct Last<'a> {
    ts: i64,
    tx: &'a [u8],
    from: &'a [u8],
    to: &'a [u8],
}

/// Moves what one transfer moved in the derived holdings: FT balances per holder (and the
/// token's supply), the owner of each NFT, MT balances per (token id, holder) and each MT id's
/// supply. Mints come from and burns go to the zero address, which holds nothing. A balance
/// never goes below zero (a contract that lies, or history before `start_block`, which the
/// holdings then do not reflect); empty ones go.
fn holdings(
    tx: &rusqlite::Transaction<'_>,
    net: &str,
    b: &BlockRows,
    t: &super::extract::Transfer,
    uris: &[TokenUri],
) -> Result<(), DbError> {
    use super::extract::Kind;
    let (Some(contract), zero) = (t.contract.as_ref(), [0u8; 20]) else {
        return Ok(());
    };
    let last = Last {
        ts: sql_int(b.timestamp),
        tx: &t.tx_hash,
        from: &t.from,
        to: &t.to,
    };
    let uri = |id: ruint::aliases::U256| {
        uris.iter()
            .find(|u| u.contract == *contract && u.id == id)
            .map(|u| u.uri.clone())
    };
    let id = t.token_id.map(|i| i.to_be_bytes::<32>());
    match t.kind {
        Kind::Klay | Kind::Internal => {}
        Kind::Nft => {
            let Some(id) = id else { return Ok(()) };
            match t.to == zero {
                true => tx.execute(
                    "DELETE FROM ix_nft_owners WHERE net = ?1 AND contract = ?2 AND token_id = ?3",
                    params![net, &contract[..], &id[..]],
                )?,
                false => tx.prepare_cached(
                    "INSERT INTO ix_nft_owners (net, contract, token_id, owner, block, prev_owner, tx_hash, created, \
                     updated, uri) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) \
                     ON CONFLICT (net, contract, token_id) DO UPDATE SET owner = excluded.owner, \
                     block = excluded.block, prev_owner = excluded.prev_owner, tx_hash = excluded.tx_hash, \
                     updated = excluded.updated, uri = COALESCE(excluded.uri, ix_nft_owners.uri)",
                )?
                .execute(params![
                    net,
                    &contract[..],
                    &id[..],
                    &t.to[..],
                    sql_int(b.number),
                    &t.from[..],
                    &t.tx_hash[..],
                    last.ts,
                    t.token_id.and_then(uri),
                ])?,
            };
        }
        Kind::Ft | Kind::Mt => {
            let multi = t.kind == Kind::Mt;
            let id = match multi {
                true => id.unwrap_or([0; 32]),
                false => [0; 32],
            };
            for (who, add) in [(&t.from, false), (&t.to, true)] {
                if *who == zero {
                    continue;
                }
                move_balance(tx, net, multi, contract, &id, who, t.value, add, &last)?;
            }
            let minted = (t.from == zero).then_some(true).or((t.to == zero).then_some(false));
            match multi {
                true => mt_token(
                    tx,
                    net,
                    contract,
                    &id,
                    t.value,
                    minted,
                    t.token_id.and_then(uri),
                    last.ts,
                )?,
                false => {
                    if let Some(add) = minted {
                        ft_supply(tx, net, contract, b.number, t.value, add)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Moves an FT's recorded supply by a mint or burn in a block after the one its supply was
/// read at.
fn ft_supply(
    tx: &rusqlite::Transaction<'_>,
    net: &str,
    contract: &[u8],
    block: u64,
    value: ruint::aliases::U256,
    add: bool,
) -> Result<(), DbError> {
    let row: Option<(i64, Option<Vec<u8>>)> = tx
        .prepare_cached("SELECT first_block, total_supply FROM ix_contracts WHERE net = ?1 AND address = ?2")?
        .query_row(params![net, contract], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((first, Some(supply))) = row else {
        return Ok(());
    };
    if sql_int(block) <= first {
        return Ok(());
    }
    let now = word(Some(supply));
    let next = match add {
        true => now.saturating_add(value),
        false => now.saturating_sub(value),
    };
    tx.prepare_cached("UPDATE ix_contracts SET total_supply = ?3 WHERE net = ?1 AND address = ?2")?
        .execute(params![net, contract, &next.to_be_bytes::<32>()[..]])?;
    Ok(())
}

/// Records an MT id (first sight, URI) and moves its supply by a mint (`Some(true)`) or burn.
#[allow(clippy::too_many_arguments)]
fn mt_token(
    tx: &rusqlite::Transaction<'_>,
    net: &str,
    contract: &[u8],
    id: &[u8; 32],
    value: ruint::aliases::U256,
    minted: Option<bool>,
    uri: Option<String>,
    ts: i64,
) -> Result<(), DbError> {
    let now: Option<Vec<u8>> = tx
        .prepare_cached("SELECT supply FROM ix_mt_tokens WHERE net = ?1 AND contract = ?2 AND token_id = ?3")?
        .query_row(params![net, contract, &id[..]], |r| r.get(0))
        .optional()?;
    let supply = word(now);
    let next = match minted {
        Some(true) => supply.saturating_add(value),
        Some(false) => supply.saturating_sub(value),
        None => supply,
    };
    tx.prepare_cached(
        "INSERT INTO ix_mt_tokens (net, contract, token_id, supply, uri, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (net, contract, token_id) DO UPDATE SET \
         supply = excluded.supply, updated = excluded.updated, uri = COALESCE(ix_mt_tokens.uri, excluded.uri)",
    )?
    .execute(params![net, contract, &id[..], &next.to_be_bytes::<32>()[..], uri, ts])?;
    Ok(())
}

/// Adds `value` to (or takes it from) one holder's balance.
#[allow(clippy::too_many_arguments)]
fn move_balance(
    tx: &rusqlite::Transaction<'_>,
    net: &str,
    multi: bool,
    contract: &[u8],
    id: &[u8; 32],
    holder: &[u8],
    value: ruint::aliases::U256,
    add: bool,
    last: &Last<'_>,
) -> Result<(), DbError> {
    // FT balances are MT balances of id 0 in their own table.
    let table = if multi { "ix_mt_balances" } else { "ix_ft_balances" };
    let id_cond = if multi { " AND token_id = ?4" } else { "" };
    let get = format!("SELECT balance FROM {table} WHERE net = ?1 AND contract = ?2 AND holder = ?3{id_cond}");
    let del = format!("DELETE FROM {table} WHERE net = ?1 AND contract = ?2 AND holder = ?3{id_cond}");
    let now: Option<Vec<u8>> = match multi {
        false => tx
            .prepare_cached(&get)?
            .query_row(params![net, contract, holder], |r| r.get(0))
            .optional()?,
        true => tx
            .prepare_cached(&get)?
            .query_row(params![net, contract, holder, &id[..]], |r| r.get(0))
            .optional()?,
    };
    let now = word(now);
    let next = match add {
        true => now.saturating_add(value),
        false => now.saturating_sub(value),
    };
    if next.is_zero() {
        match multi {
            false => tx.prepare_cached(&del)?.execute(params![net, contract, holder])?,
            true => tx
                .prepare_cached(&del)?
                .execute(params![net, contract, holder, &id[..]])?,
        };
        return Ok(());
    }
    let bytes = next.to_be_bytes::<32>();
    match multi {
        false => tx
            .prepare_cached(
                "INSERT OR REPLACE INTO ix_ft_balances (net, contract, holder, balance, updated, last_tx, last_from, \
                 last_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                net,
                contract,
                holder,
                &bytes[..],
                last.ts,
                last.tx,
                last.from,
                last.to
            ])?,
        true => tx
            .prepare_cached(
                "INSERT OR REPLACE INTO ix_mt_balances (net, contract, token_id, holder, balance, updated, last_tx, \
                 last_from, last_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                net,
                contract,
                &id[..],
                holder,
                &bytes[..],
                last.ts,
                last.tx,
                last.from,
                last.to
            ])?,
    };
    Ok(())
}

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

    /// Without planner statistics (kengate never runs ANALYZE) SQLite took `net = ?` on the
    /// primary key for a selective equality and walked a network's whole `ix_txs` for each KLAY
    /// entry of a history page (BENCHMARKS.md, "Embedded index"): the tx of an activity entry is
    /// found through `ix_txs_block`.
    #[test]
    fn history_lookups_use_their_index_on_a_file_without_statistics() {
        let db = IndexDb::in_memory().unwrap();
        let conn = db.conn();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let p = plan(&format!(
            "SELECT {TX_COLUMNS} FROM ix_txs INDEXED BY ix_txs_block WHERE net = 'n' AND block = 1 AND idx = 0"
        ));
        assert!(p.contains("ix_txs_block (net=? AND block=? AND idx=?)"), "{p}");
        let p = plan("SELECT * FROM ix_activity WHERE net = 'n' AND account = x'00' ORDER BY block DESC LIMIT 100");
        assert!(p.contains("PRIMARY KEY (net=? AND account=?)"), "{p}");
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
}
