//! What the KAS Token History API reads: an account's (or a preset's) transfers on the
//! activity table, token contracts, NFTs, MT ids, holdings, and the presets themselves. Every
//! list is a keyset page on an index — the caller passes the last key it showed and gets what
//! follows, never an `OFFSET` — and everything here is at or below the indexed head, itself at
//! or below the served head.

use ruint::aliases::U256;
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::recent::{Entry, Recent};
use super::{sql_int, tx_view, word, DbError, IndexDb, Inner, TxView, KIND_KLAY, TX_COLUMNS};

/// A place in an activity listing, which runs newest first (KLAY rows have `log_idx` -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Block number.
    pub block: u64,
    /// Tx index in the block.
    pub tx_idx: u32,
    /// Log index in the block (-1: the tx's own KLAY transfer).
    pub log_idx: i64,
}

/// Inclusive bounds on an activity listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Block numbers.
    Blocks(u64, u64),
    /// Unix times (seconds).
    Times(u64, u64),
}

/// Which transfers an activity listing holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityFilter {
    /// Kind bits (KLAY 1, FT 2, NFT 4, MT 8).
    pub kinds: u8,
    /// Token contracts to keep (empty: all).
    pub contracts: Vec<Vec<u8>>,
    /// Whether `contracts` leaves KLAY transfers in (presets) or takes them out (`ca-filter`).
    pub contracts_keep_klay: bool,
    /// Direction bits the account must have (sent 1, received 2).
    pub dir: u8,
    /// Leave out KLAY transfers of zero value.
    pub exclude_zero_klay: bool,
    /// Bounds.
    pub span: Option<Span>,
}

/// One token transfer row (a batch has one per id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    /// `ft`, `nft` or `mt`.
    pub kind: String,
    pub contract: Vec<u8>,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub value: Vec<u8>,
    pub token_id: Option<Vec<u8>>,
    pub operator: Option<Vec<u8>>,
}

/// One entry of a transfer history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A transaction, as the KLAY it moved (maybe none).
    Klay(TxView),
    /// A token event and the transaction it is in.
    Token {
        /// Its log index.
        log_idx: i64,
        /// The transaction.
        tx: TxView,
        /// What moved (one row, or one per id of a batch).
        rows: Vec<TransferRow>,
    },
}

/// A token contract as the index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractView {
    pub address: Vec<u8>,
    /// `ft`, `nft` or `mt`.
    pub kind: String,
    pub first_block: u64,
    /// Time of its first block.
    pub created: u64,
    pub name: Option<String>,
    pub symbol: Option<String>,
    pub decimals: Option<u8>,
    pub total_supply: Option<Vec<u8>>,
    /// Interface names, comma-separated.
    pub interfaces: String,
    /// `ok`, or which reads failed.
    pub status: String,
}

/// An NFT that exists (minted, not burned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftView {
    pub contract: Vec<u8>,
    pub token_id: Vec<u8>,
    pub owner: Vec<u8>,
    pub prev_owner: Vec<u8>,
    /// The tx of its last transfer.
    pub tx_hash: Vec<u8>,
    pub created: u64,
    pub updated: u64,
    pub uri: Option<String>,
}

/// An MT id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtTokenView {
    pub token_id: Vec<u8>,
    pub supply: Vec<u8>,
    pub uri: Option<String>,
    pub created: u64,
    pub updated: u64,
}

/// One holder's balance of one MT id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtHolding {
    pub contract: Vec<u8>,
    pub token_id: Vec<u8>,
    pub holder: Vec<u8>,
    pub balance: Vec<u8>,
    pub updated: u64,
    pub last_tx: Vec<u8>,
    pub last_from: Vec<u8>,
    pub last_to: Vec<u8>,
}

/// Something an account holds: an FT balance, an NFT, or an MT balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// Kind bit (FT 2, NFT 4, MT 8).
    pub kind: u8,
    pub contract: Vec<u8>,
    /// Empty for an FT.
    pub token_id: Vec<u8>,
    /// 32 bytes, big-endian (1 for an NFT).
    pub balance: Vec<u8>,
    pub updated: u64,
    pub last_tx: Vec<u8>,
    pub last_from: Vec<u8>,
    pub last_to: Vec<u8>,
    /// The NFT's URI.
    pub uri: Option<String>,
}

/// One transfer of an NFT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipChange {
    pub key: Key,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    /// Its block's time.
    pub ts: u64,
}

/// Where a holdings listing resumes: `(kind bit, contract, token id)`.
pub type HoldingKey = (u8, Vec<u8>, Vec<u8>);

/// A named set of addresses whose transfers are listed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub id: i64,
    /// The access key that made it (`""`: the admin, or a gateway without keys).
    pub owner: String,
    pub name: String,
    /// Lower-case `0x` addresses.
    pub addresses: Vec<String>,
    /// Token contracts its transfers are limited to (empty: all).
    pub contracts: Vec<String>,
    pub created: u64,
}

const NFT_COLUMNS: &str = "contract, token_id, owner, prev_owner, tx_hash, created, updated, uri";
const MT_COLUMNS: &str = "contract, token_id, holder, balance, updated, last_tx, last_from, last_to";

fn nft_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<NftView> {
    Ok(NftView {
        contract: r.get(0)?,
        token_id: r.get(1)?,
        owner: r.get(2)?,
        prev_owner: r.get(3)?,
        tx_hash: r.get(4)?,
        created: r.get::<_, i64>(5)? as u64,
        updated: r.get::<_, i64>(6)? as u64,
        uri: r.get(7)?,
    })
}

fn mt_holding(r: &rusqlite::Row<'_>) -> rusqlite::Result<MtHolding> {
    Ok(MtHolding {
        contract: r.get(0)?,
        token_id: r.get(1)?,
        holder: r.get(2)?,
        balance: r.get(3)?,
        updated: r.get::<_, i64>(4)? as u64,
        last_tx: r.get(5)?,
        last_from: r.get(6)?,
        last_to: r.get(7)?,
    })
}

fn contract_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContractView> {
    Ok(ContractView {
        address: r.get(0)?,
        kind: r.get(1)?,
        first_block: r.get::<_, i64>(2)? as u64,
        created: r.get::<_, i64>(3)? as u64,
        name: r.get(4)?,
        symbol: r.get(5)?,
        decimals: r.get(6)?,
        total_supply: r.get(7)?,
        interfaces: r.get(8)?,
        status: r.get(9)?,
    })
}

/// One part's transfers of one NFT, newest first, before a key: `?1` net, `?2` part, `?3`
/// contract, `?4` token id, `?5..?7` the key, `?8` limit.
pub(crate) const NFT_MOVES_SQL: &str = "SELECT block, tx_idx, log_idx FROM ix_nft_moves \
    WHERE net = ?1 AND part = ?2 AND contract = ?3 AND token_id = ?4 AND (block, tx_idx, log_idx) < (?5, ?6, ?7) \
    ORDER BY block DESC, tx_idx DESC, log_idx DESC LIMIT ?8";

const CONTRACT_COLUMNS: &str =
    "address, kind, first_block, created, name, symbol, decimals, total_supply, interfaces, status";

impl IndexDb {
    /// The newest `limit` activity keys (after `before`) of any of `accounts`, with each
    /// key's kind bit. Each account's rows come in index order and are merged.
    pub fn activity(
        &self,
        net: &str,
        accounts: &[Vec<u8>],
        f: &ActivityFilter,
        before: Option<Key>,
        limit: usize,
    ) -> Result<Vec<(Key, u8)>, DbError> {
        let mut conn = self.conn();
        conn.load(net)?;
        let mut all: Vec<(Key, u8)> = Vec::new();
        for account in accounts {
            all.extend(conn.account_keys(net, account, f, false, before, limit)?);
        }
        // Newest first; a transfer between two of the accounts once.
        all.sort_by_key(|a| std::cmp::Reverse(a.0));
        all.dedup_by(|a, b| a.0 == b.0);
        all.truncate(limit);
        Ok(all)
    }

    /// What the activity keys point at, in their order.
    pub fn events(&self, net: &str, keys: &[(Key, u8)]) -> Result<Vec<Event>, DbError> {
        let conn = self.conn();
        let mut by_pos = conn.prepare_cached(&format!(
            "SELECT {TX_COLUMNS} FROM ix_txs WHERE net = ?1 AND block = ?2 AND idx = ?3"
        ))?;
        let mut rows_of = conn.prepare_cached(
            "SELECT kind, contract, sender, recipient, value, token_id, operator FROM ix_transfers \
             WHERE net = ?1 AND block = ?2 AND tx_idx = ?3 AND log_idx = ?4 ORDER BY pos",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for (k, kind) in keys {
            let (block, idx) = (sql_int(k.block), k.tx_idx);
            if *kind == KIND_KLAY {
                if let Some(tx) = by_pos.query_row(params![net, block, idx], tx_view).optional()? {
                    out.push(Event::Klay(tx));
                }
                continue;
            }
            let rows = rows_of
                .query_map(params![net, block, idx, k.log_idx], |r| {
                    Ok(TransferRow {
                        kind: r.get(0)?,
                        contract: r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
                        from: r.get(2)?,
                        to: r.get(3)?,
                        value: r.get(4)?,
                        token_id: r.get(5)?,
                        operator: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if rows.is_empty() {
                continue;
            }
            if let Some(tx) = by_pos.query_row(params![net, block, idx], tx_view).optional()? {
                out.push(Event::Token {
                    log_idx: k.log_idx,
                    tx,
                    rows,
                });
            }
        }
        Ok(out)
    }

    /// Everything one transaction moved: its token events (last first), then its KLAY.
    pub fn events_of_tx(&self, net: &str, hash: &[u8]) -> Result<Vec<Event>, DbError> {
        let tx = {
            let mut conn = self.conn();
            conn.load(net)?;
            match conn.locate(net, hash)? {
                None => None,
                Some((block, idx)) => conn
                    .prepare_cached(&format!(
                        "SELECT {TX_COLUMNS} FROM ix_txs WHERE net = ?1 AND block = ?2 AND idx = ?3"
                    ))?
                    .query_row(params![net, sql_int(block), idx], tx_view)
                    .optional()?,
            }
        };
        let Some(tx) = tx else { return Ok(Vec::new()) };
        let logs: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT log_idx FROM ix_transfers WHERE net = ?1 AND block = ?2 AND tx_idx = ?3 \
                 AND log_idx >= 0 ORDER BY log_idx DESC",
            )?;
            let rows = stmt.query_map(params![net, sql_int(tx.block), tx.index], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut keys: Vec<(Key, u8)> = logs
            .into_iter()
            .map(|log_idx| {
                (
                    Key {
                        block: tx.block,
                        tx_idx: tx.index,
                        log_idx,
                    },
                    0,
                )
            })
            .collect();
        keys.push((
            Key {
                block: tx.block,
                tx_idx: tx.index,
                log_idx: -1,
            },
            KIND_KLAY,
        ));
        self.events(net, &keys)
    }

    /// Token contracts of `kind`, newest first, after `(first_block, address)`, that `keep`
    /// accepts.
    pub fn contracts(
        &self,
        net: &str,
        kind: &str,
        after: Option<(u64, Vec<u8>)>,
        limit: usize,
        keep: &dyn Fn(&ContractView) -> bool,
    ) -> Result<Vec<ContractView>, DbError> {
        let conn = self.conn();
        let (mut stmt, args): (_, Vec<Sql>) = match after {
            None => (
                conn.prepare_cached(&format!(
                    "SELECT {CONTRACT_COLUMNS} FROM ix_contracts WHERE net = ?1 AND kind = ?2 \
                     ORDER BY first_block DESC, address DESC"
                ))?,
                vec![Sql::Text(net.into()), Sql::Text(kind.into())],
            ),
            Some((block, addr)) => (
                conn.prepare_cached(&format!(
                    "SELECT {CONTRACT_COLUMNS} FROM ix_contracts WHERE net = ?1 AND kind = ?2 \
                     AND (first_block, address) < (?3, ?4) ORDER BY first_block DESC, address DESC"
                ))?,
                vec![
                    Sql::Text(net.into()),
                    Sql::Text(kind.into()),
                    Sql::Integer(sql_int(block)),
                    Sql::Blob(addr),
                ],
            ),
        };
        let mut out = Vec::new();
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            let c = contract_view(r)?;
            if keep(&c) {
                out.push(c);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One token contract.
    pub fn contract(&self, net: &str, address: &[u8]) -> Result<Option<ContractView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM ix_contracts WHERE net = ?1 AND address = ?2"
        ))?;
        Ok(stmt.query_row(params![net, address], contract_view).optional()?)
    }

    /// How many NFTs of `contract` exist.
    pub fn nft_supply(&self, net: &str, contract: &[u8]) -> Result<u64, DbError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM ix_nft_owners WHERE net = ?1 AND contract = ?2",
            params![net, contract],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// How many accounts hold an NFT (or, `multi`, an MT balance) of `contract`.
    pub fn holder_count(&self, net: &str, contract: &[u8], multi: bool) -> Result<u64, DbError> {
        let sql = match multi {
            false => "SELECT COUNT(DISTINCT owner) FROM ix_nft_owners WHERE net = ?1 AND contract = ?2",
            true => "SELECT COUNT(DISTINCT holder) FROM ix_mt_balances WHERE net = ?1 AND contract = ?2",
        };
        let mut conn = self.conn();
        // NFT owners are written per batch; MT balances wait in the window.
        if multi {
            conn.settle(net)?;
        }
        let n: i64 = conn.query_row(sql, params![net, contract], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// NFTs of `contract` (held by `owner` when given), by token id, after `after`.
    pub fn nfts(
        &self,
        net: &str,
        contract: &[u8],
        owner: Option<&[u8]>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<NftView>, DbError> {
        let owner_cond = if owner.is_some() {
            " AND owner = ?4"
        } else {
            " AND ?4 IS NULL"
        };
        let sql = format!(
            "SELECT {NFT_COLUMNS} FROM ix_nft_owners WHERE net = ?1 AND contract = ?2 AND token_id > ?3{owner_cond} \
             ORDER BY token_id LIMIT ?5"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![net, contract, after.unwrap_or(&[]), owner, limit as i64],
            nft_view,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One NFT, if it exists.
    pub fn nft(&self, net: &str, contract: &[u8], id: &[u8]) -> Result<Option<NftView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {NFT_COLUMNS} FROM ix_nft_owners WHERE net = ?1 AND contract = ?2 AND token_id = ?3"
        ))?;
        Ok(stmt.query_row(params![net, contract, id], nft_view).optional()?)
    }

    /// An NFT's transfers (mint and burn included), newest first, before `before`.
    pub fn nft_history(
        &self,
        net: &str,
        contract: &[u8],
        id: &[u8],
        before: Option<Key>,
        limit: usize,
    ) -> Result<Vec<OwnershipChange>, DbError> {
        let k = before.unwrap_or(Key {
            block: u64::MAX,
            tx_idx: u32::MAX,
            log_idx: i64::MAX,
        });
        let mut conn = self.conn();
        conn.load(net)?;
        let w = conn.window(net);
        // The window's, newest first, then the one being sealed, then each part's.
        let mut keys: Vec<Key> = std::iter::once(&*w)
            .chain(conn.sealing(net))
            .flat_map(|l| l.nft_moves_of(contract, id).iter().rev())
            .filter(|at| **at < k)
            .take(limit)
            .copied()
            .collect();
        let mut in_part = conn.prepare_cached(NFT_MOVES_SQL)?;
        for p in w.parts.iter().rev() {
            if keys.len() >= limit {
                break;
            }
            if p.part > k.block {
                continue;
            }
            let rows = in_part.query_map(
                params![
                    net,
                    sql_int(p.part),
                    contract,
                    id,
                    sql_int(k.block),
                    i64::from(k.tx_idx),
                    k.log_idx,
                    (limit - keys.len()) as i64
                ],
                |r| {
                    Ok(Key {
                        block: r.get::<_, i64>(0)? as u64,
                        tx_idx: r.get(1)?,
                        log_idx: r.get(2)?,
                    })
                },
            )?;
            for row in rows {
                keys.push(row?);
            }
        }
        let mut at = conn.prepare_cached(
            "SELECT sender, recipient, ts FROM ix_transfers WHERE net = ?1 AND block = ?2 AND tx_idx = ?3 \
             AND log_idx = ?4 AND kind = 'nft' AND contract = ?5 AND token_id = ?6 ORDER BY pos DESC",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let rows = at.query_map(
                params![net, sql_int(key.block), key.tx_idx, key.log_idx, contract, id],
                |r| {
                    Ok(OwnershipChange {
                        key,
                        from: r.get(0)?,
                        to: r.get(1)?,
                        ts: r.get::<_, i64>(2)? as u64,
                    })
                },
            )?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// MT ids of `contract`, by id, after `after`.
    pub fn mt_tokens(
        &self,
        net: &str,
        contract: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<MtTokenView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT token_id, supply, uri, created, updated FROM ix_mt_tokens \
             WHERE net = ?1 AND contract = ?2 AND token_id > ?3 ORDER BY token_id LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![net, contract, after.unwrap_or(&[]), limit as i64], |r| {
            Ok(MtTokenView {
                token_id: r.get(0)?,
                supply: r.get(1)?,
                uri: r.get(2)?,
                created: r.get::<_, i64>(3)? as u64,
                updated: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One MT id, if the index has seen it.
    pub fn mt_token(&self, net: &str, contract: &[u8], id: &[u8]) -> Result<Option<MtTokenView>, DbError> {
        let after = U256::from_be_slice(id).checked_sub(U256::from(1u8));
        let after = after.map(|a| a.to_be_bytes::<32>().to_vec());
        Ok(self
            .mt_tokens(net, contract, after.as_deref(), 1)?
            .into_iter()
            .find(|t| t.token_id == id))
    }

    /// Balances of one MT id by holder (after `after`), or of one holder by id.
    pub fn mt_holdings(
        &self,
        net: &str,
        contract: &[u8],
        by: MtBy<'_>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<MtHolding>, DbError> {
        let (cond, fixed, order) = match by {
            MtBy::Token(id) => ("token_id = ?3 AND holder > ?4", id, "holder"),
            MtBy::Holder(h) => ("holder = ?3 AND token_id > ?4", h, "token_id"),
        };
        let sql = format!(
            "SELECT {MT_COLUMNS} FROM ix_mt_balances WHERE net = ?1 AND contract = ?2 AND {cond} \
             ORDER BY {order} LIMIT ?5"
        );
        let mut conn = self.conn();
        conn.settle(net)?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![net, contract, fixed, after.unwrap_or(&[]), limit as i64],
            mt_holding,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sum of `holder`'s balances of every id of `contract`.
    pub fn mt_total(&self, net: &str, contract: &[u8], holder: &[u8]) -> Result<U256, DbError> {
        let mut conn = self.conn();
        conn.settle(net)?;
        let mut stmt =
            conn.prepare_cached("SELECT balance FROM ix_mt_balances WHERE net = ?1 AND holder = ?2 AND contract = ?3")?;
        let rows = stmt.query_map(params![net, holder, contract], |r| r.get::<_, Vec<u8>>(0))?;
        let mut sum = U256::ZERO;
        for b in rows {
            sum = sum.saturating_add(word(Some(b?)));
        }
        Ok(sum)
    }

    /// What `owner` holds — FT balances, NFTs, MT balances, in that order, each by contract
    /// then token id — of the kinds in `kinds` and the contracts in `contracts` (all when
    /// empty), after `after` = `(kind bit, contract, token id)`. `visit` sees each in turn
    /// and says whether to go on.
    pub fn holdings_of(
        &self,
        net: &str,
        owner: &[u8],
        kinds: u8,
        contracts: &[Vec<u8>],
        after: Option<HoldingKey>,
        visit: &mut dyn FnMut(Holding) -> bool,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        conn.settle(net)?;
        for (bit, sql) in [
            (
                2u8,
                "SELECT contract, x'', balance, updated, last_tx, last_from, last_to, NULL FROM ix_ft_balances \
                 WHERE net = ?1 AND holder = ?2 AND (contract, x'') > (?3, ?4) ORDER BY contract",
            ),
            (
                4,
                "SELECT contract, token_id, NULL, updated, tx_hash, prev_owner, owner, uri FROM ix_nft_owners \
                 WHERE net = ?1 AND owner = ?2 AND (contract, token_id) > (?3, ?4) ORDER BY contract, token_id",
            ),
            (
                8,
                "SELECT contract, token_id, balance, updated, last_tx, last_from, last_to, NULL FROM ix_mt_balances \
                 WHERE net = ?1 AND holder = ?2 AND (contract, token_id) > (?3, ?4) ORDER BY contract, token_id",
            ),
        ] {
            if kinds & bit == 0 {
                continue;
            }
            let (from_contract, from_id) = match &after {
                Some((k, _, _)) if *k > bit => continue,
                Some((k, c, i)) if *k == bit => (c.clone(), i.clone()),
                _ => (Vec::new(), Vec::new()),
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params![net, owner, from_contract, from_id])?;
            while let Some(r) = rows.next()? {
                let contract: Vec<u8> = r.get(0)?;
                if !contracts.is_empty() && !contracts.contains(&contract) {
                    continue;
                }
                let one = U256::from(1u8).to_be_bytes::<32>().to_vec();
                let h = Holding {
                    kind: bit,
                    contract,
                    token_id: r.get(1)?,
                    balance: r.get::<_, Option<Vec<u8>>>(2)?.unwrap_or(one),
                    updated: r.get::<_, i64>(3)? as u64,
                    last_tx: r.get(4)?,
                    last_from: r.get(5)?,
                    last_to: r.get(6)?,
                    uri: r.get(7)?,
                };
                if !visit(h) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Which MT balances [`IndexDb::mt_holdings`] lists.
#[derive(Debug, Clone, Copy)]
pub enum MtBy<'a> {
    /// Every holder of this id.
    Token(&'a [u8]),
    /// Every id this account holds.
    Holder(&'a [u8]),
}

impl IndexDb {
    /// Saves a new preset.
    pub fn preset_create(
        &self,
        owner: &str,
        name: &str,
        addresses: &[String],
        contracts: &[String],
        now: u64,
    ) -> Result<Preset, DbError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO ix_presets (owner, name, addresses, contracts, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![owner, name, addresses.join(","), contracts.join(","), sql_int(now)],
        )?;
        Ok(Preset {
            id: conn.last_insert_rowid(),
            owner: owner.to_owned(),
            name: name.to_owned(),
            addresses: addresses.to_vec(),
            contracts: contracts.to_vec(),
            created: now,
        })
    }

    /// Presets of `owner` (every preset when `None`), oldest first.
    pub fn presets(&self, owner: Option<&str>) -> Result<Vec<Preset>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, owner, name, addresses, contracts, created FROM ix_presets \
             WHERE ?1 IS NULL OR owner = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![owner], preset)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One preset.
    pub fn preset(&self, id: i64) -> Result<Option<Preset>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, owner, name, addresses, contracts, created FROM ix_presets WHERE id = ?1")?;
        Ok(stmt.query_row(params![id], preset).optional()?)
    }

    /// Replaces a preset's name and lists; false when there is no such preset.
    pub fn preset_update(
        &self,
        id: i64,
        name: &str,
        addresses: &[String],
        contracts: &[String],
    ) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE ix_presets SET name = ?2, addresses = ?3, contracts = ?4 WHERE id = ?1",
            params![id, name, addresses.join(","), contracts.join(",")],
        )?;
        Ok(n > 0)
    }

    /// Deletes a preset; false when there was none.
    pub fn preset_delete(&self, id: i64) -> Result<bool, DbError> {
        let n = self
            .conn()
            .execute("DELETE FROM ix_presets WHERE id = ?1", params![id])?;
        Ok(n > 0)
    }
}

fn preset(r: &rusqlite::Row<'_>) -> rusqlite::Result<Preset> {
    let list = |s: String| -> Vec<String> { s.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect() };
    Ok(Preset {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        addresses: list(r.get(3)?),
        contracts: list(r.get(4)?),
        created: r.get::<_, i64>(5)? as u64,
    })
}

impl Inner {
    /// Up to `limit` of an account's activity keys that `f` keeps, with their kind bits,
    /// strictly after `after` in the order asked (newest first unless `asc`): from the window
    /// and the parts, each part one range of `ix_activity`. `net`'s window must be loaded.
    pub(crate) fn account_keys(
        &self,
        net: &str,
        account: &[u8],
        f: &ActivityFilter,
        asc: bool,
        after: Option<Key>,
        limit: usize,
    ) -> Result<Vec<(Key, u8)>, DbError> {
        let w = self.window(net);
        // The window, then the one being sealed: newest first.
        let layers: Vec<&Recent> = std::iter::once(&*w).chain(self.sealing(net)).collect();
        let mut out: Vec<(Key, u8)> = Vec::new();
        let past = |k: Key| after.is_none_or(|a| if asc { k > a } else { k < a });
        let from_window = |out: &mut Vec<(Key, u8)>, l: &Recent| {
            let room = limit.saturating_sub(out.len());
            let keep = |e: &&Entry| past(e.key()) && window_keeps(l, e, f);
            let entries = l.entries_of(account);
            match asc {
                true => out.extend(entries.iter().filter(keep).take(room).map(|e| (e.key(), e.kind))),
                false => out.extend(entries.iter().rev().filter(keep).take(room).map(|e| (e.key(), e.kind))),
            }
        };
        if !asc {
            for l in &layers {
                from_window(&mut out, l);
            }
        }
        let parts: Vec<_> = match asc {
            true => w.parts.iter().collect(),
            false => w.parts.iter().rev().collect(),
        };
        let (sql, mut args) = part_query(net, account, f, asc, after);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for p in parts {
            if out.len() >= limit {
                break;
            }
            let outside = match f.span {
                Some(Span::Blocks(lo, hi)) => p.last < lo || p.part > hi,
                _ => false,
            };
            let passed = after.is_some_and(|a| if asc { p.last < a.block } else { p.part > a.block });
            if outside || passed {
                continue;
            }
            if let Some(slot) = args.get_mut(1) {
                *slot = Sql::Integer(sql_int(p.part));
            }
            if let Some(slot) = args.last_mut() {
                *slot = Sql::Integer(i64::try_from(limit - out.len()).unwrap_or(i64::MAX));
            }
            let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
                Ok((
                    Key {
                        block: r.get::<_, i64>(0)? as u64,
                        tx_idx: r.get(1)?,
                        log_idx: r.get(2)?,
                    },
                    r.get::<_, u8>(3)?,
                ))
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        if asc {
            for l in layers.iter().rev() {
                from_window(&mut out, l);
            }
        }
        Ok(out)
    }

    /// Where a tx is, by its hash: the window's, then each part's hash rows, newest first.
    /// `net`'s window must be loaded.
    pub(crate) fn locate(&self, net: &str, hash: &[u8]) -> Result<Option<(u64, u32)>, DbError> {
        let w = self.window(net);
        if let Some(at) = w
            .locate(hash)
            .or_else(|| self.sealing(net).and_then(|s| s.locate(hash)))
        {
            return Ok(Some(at));
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT block, idx FROM ix_tx_hashes WHERE net = ?1 AND part = ?2 AND hash = ?3")?;
        for p in w.parts.iter().rev() {
            let at = stmt
                .query_row(params![net, sql_int(p.part), hash], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, u32>(1)?))
                })
                .optional()?;
            if at.is_some() {
                return Ok(at);
            }
        }
        Ok(None)
    }
}

/// Whether `f` keeps a window entry: what [`part_query`]'s conditions say of a part's row.
fn window_keeps(w: &Recent, e: &Entry, f: &ActivityFilter) -> bool {
    if e.kind & f.kinds == 0 || e.dir & f.dir == 0 || (f.exclude_zero_klay && e.kind == KIND_KLAY && e.zero) {
        return false;
    }
    let inside = match f.span {
        None => true,
        Some(Span::Blocks(lo, hi)) => (lo..=hi).contains(&e.block),
        Some(Span::Times(lo, hi)) => (sql_int(lo)..=sql_int(hi)).contains(&w.time(e.block)),
    };
    if !inside {
        return false;
    }
    f.contracts.is_empty()
        || (f.contracts_keep_klay && e.kind == KIND_KLAY)
        || w.contract(e)
            .is_some_and(|c| f.contracts.iter().any(|x| x.as_slice() == &c[..]))
}

/// One part's range of an account's `ix_activity` rows that `f` keeps, after `after`, in the
/// order asked: `?1` net, `?2` the part, `?3` the account, the last argument the limit (the
/// caller sets the part and the limit).
pub(crate) fn part_query(
    net: &str,
    account: &[u8],
    f: &ActivityFilter,
    asc: bool,
    after: Option<Key>,
) -> (String, Vec<Sql>) {
    let mut sql = String::from(
        "SELECT block, tx_idx, log_idx, kind FROM ix_activity WHERE net = ?1 AND part = ?2 AND account = ?3 \
         AND (kind & ?4) != 0 AND (dir & ?5) != 0",
    );
    let mut args: Vec<Sql> = vec![
        Sql::Text(net.to_owned()),
        Sql::Null,
        Sql::Blob(account.to_vec()),
        Sql::Integer(i64::from(f.kinds)),
        Sql::Integer(i64::from(f.dir)),
    ];
    if f.exclude_zero_klay {
        sql.push_str(" AND NOT (kind = 1 AND zero = 1)");
    }
    if let Some(k) = after {
        let at = args.len();
        let cmp = if asc { ">" } else { "<" };
        sql.push_str(&format!(
            " AND (block, tx_idx, log_idx) {cmp} (?{}, ?{}, ?{})",
            at + 1,
            at + 2,
            at + 3
        ));
        args.extend([
            Sql::Integer(sql_int(k.block)),
            Sql::Integer(i64::from(k.tx_idx)),
            Sql::Integer(k.log_idx),
        ]);
    }
    if let Some(span) = f.span {
        let (column, lo, hi) = match span {
            Span::Blocks(lo, hi) => ("block", lo, hi),
            Span::Times(lo, hi) => ("ts", lo, hi),
        };
        let at = args.len();
        sql.push_str(&format!(" AND {column} BETWEEN ?{} AND ?{}", at + 1, at + 2));
        args.extend([Sql::Integer(sql_int(lo)), Sql::Integer(sql_int(hi))]);
    }
    if !f.contracts.is_empty() {
        let at = args.len();
        let list: Vec<String> = (0..f.contracts.len()).map(|i| format!("?{}", at + 1 + i)).collect();
        let keep = if f.contracts_keep_klay { "kind = 1 OR " } else { "" };
        sql.push_str(&format!(" AND ({keep}contract IN ({}))", list.join(", ")));
        args.extend(f.contracts.iter().map(|c| Sql::Blob(c.clone())));
    }
    let d = if asc { "ASC" } else { "DESC" };
    sql.push_str(&format!(
        " ORDER BY block {d}, tx_idx {d}, log_idx {d} LIMIT ?{}",
        args.len() + 1
    ));
    args.push(Sql::Integer(0));
    (sql, args)
}
