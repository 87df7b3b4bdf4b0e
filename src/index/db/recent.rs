//! The index's newest window, held in memory: the account entries, tx hashes and NFT
//! transfers of the blocks written since the last seal, and the FT / MT balances their
//! transfers moved, until `window_transfers` transfers and txs are in it. Then it is sealed, on
//! the sealer's thread ([`super::sealer`]) while a new window fills: entries, hashes and NFT
//! transfers go into the sealed file as a part of their own (`ix_activity`, `ix_tx_hashes` and
//! `ix_nft_moves` rows under one `part`, written in key order: appends, never touched again),
//! the balances are written once each. Nothing here is durable on its own: the rows it is made
//! of are in the position-keyed tables, and a restart makes it again from the blocks above the
//! last part (and the balances from the transfers above the point they were last written at).
//!
//! This is what keeps the random-keyed structures out of each batch's commit: an index keyed by
//! account, hash or token takes a page write per row once it outgrows the cache (BENCHMARKS.md,
//! "Where a batch's writes go"), while a part is written once, in order. Reads go through the
//! window first, then the one being sealed if any, then the parts, newest first; a read of
//! balances waits for the seal and writes the window's balances first.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::super::extract::{Address, Hash, Kind};
use super::holdings::{settle_balances, Last};
use super::reads::Key;
use super::{kind_bit, sql_int, word, DbError, DIR_FROM, DIR_TO, INTERNAL_LOG, KIND_KLAY};

/// No contract (a KLAY entry).
const NO_CONTRACT: u32 = u32::MAX;

/// One account's entry: an `ix_activity` row without its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub block: u64,
    pub tx_idx: u32,
    /// -1 a tx's KLAY, -2 the KLAY its calls moved, else the log.
    pub log_idx: i32,
    /// Into [`Recent::contracts`]; [`NO_CONTRACT`] for none.
    contract: u32,
    /// Kind bit.
    pub kind: u8,
    /// Direction bits.
    pub dir: u8,
    /// A KLAY entry of zero value.
    pub zero: bool,
}

impl Entry {
    pub(crate) fn key(&self) -> Key {
        Key {
            block: self.block,
            tx_idx: self.tx_idx,
            log_idx: i64::from(self.log_idx),
        }
    }
}

/// One `ix_activity` row as a batch (or a rebuild) makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Activity {
    pub account: Address,
    pub block: u64,
    pub tx_idx: u32,
    pub log_idx: i64,
    pub kind: u8,
    pub contract: Option<Address>,
    pub dir: u8,
    pub zero: bool,
}

/// A sealed part: its rows are under `part` (the first block of its window), its window ends
/// at `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub part: u64,
    pub last: u64,
}

/// A network's window and the parts sealed before it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recent {
    /// The first block of the window (the next part's id).
    pub from: u64,
    /// The parts, oldest first.
    pub parts: Vec<Part>,
    accounts: HashMap<Address, Vec<Entry>>,
    hashes: HashMap<Hash, (u64, u32)>,
    /// Each NFT's transfers, oldest first.
    nft_moves: HashMap<(Address, [u8; 32]), Vec<Key>>,
    contracts: Vec<Address>,
    contract_ids: HashMap<Address, u32>,
    /// Block times of the window, in block order.
    times: Vec<(u64, i64)>,
    /// Transfers and txs the window holds (what the seal is measured in).
    pub transfers: u64,
    /// Entries the window holds.
    pub entries: usize,
    /// The FT and MT balances its transfers moved, not yet in the file.
    pub balances: super::Balances,
}

impl Recent {
    /// An empty window starting at `from`, after `parts`.
    pub(crate) fn new(from: u64, parts: Vec<Part>) -> Self {
        Self {
            from,
            parts,
            ..Self::default()
        }
    }

    /// Adds a block's time (blocks in order).
    pub(crate) fn add_block(&mut self, block: u64, ts: i64) {
        self.times.push((block, ts));
    }

    /// The last block whose time is held.
    pub(crate) fn times_last(&self) -> Option<u64> {
        self.times.last().map(|(b, _)| *b)
    }

    /// Adds an NFT's transfer (blocks in order).
    pub(crate) fn add_nft_move(&mut self, contract: Address, id: [u8; 32], at: Key) {
        let list = self.nft_moves.entry((contract, id)).or_default();
        let i = list.partition_point(|k| *k < at);
        list.insert(i, at);
    }

    /// An NFT's transfers in the window, oldest first.
    pub(crate) fn nft_moves_of(&self, contract: &[u8], id: &[u8]) -> &[Key] {
        let (Ok(c), Ok(i)) = (<Address>::try_from(contract), <[u8; 32]>::try_from(id)) else {
            return &[];
        };
        self.nft_moves.get(&(c, i)).map_or(&[], Vec::as_slice)
    }

    /// The window's NFT transfers in `ix_nft_moves`'s key order (contract, id, newest first).
    pub(crate) fn sealed_nft_moves(&self) -> Vec<(&(Address, [u8; 32]), &Key)> {
        let mut tokens: Vec<&(Address, [u8; 32])> = self.nft_moves.keys().collect();
        tokens.sort_unstable();
        tokens
            .into_iter()
            .flat_map(|t| self.nft_moves.get(t).into_iter().flatten().rev().map(move |k| (t, k)))
            .collect()
    }

    /// Adds a tx's hash.
    pub(crate) fn add_hash(&mut self, hash: Hash, block: u64, idx: u32) {
        self.hashes.insert(hash, (block, idx));
    }

    /// Adds a batch's activity rows, blocks after every entry held; an account on both sides
    /// of one entry gets one entry with both directions.
    pub(crate) fn absorb(&mut self, rows: Vec<Activity>) {
        for r in merge(rows) {
            let contract = match r.contract {
                None => NO_CONTRACT,
                Some(c) => *self.contract_ids.entry(c).or_insert_with(|| {
                    self.contracts.push(c);
                    u32::try_from(self.contracts.len() - 1).unwrap_or(NO_CONTRACT)
                }),
            };
            // Merged rows come newest first per account: entries are kept oldest first.
            let list = self.accounts.entry(r.account).or_default();
            let e = Entry {
                block: r.block,
                tx_idx: r.tx_idx,
                log_idx: i32::try_from(r.log_idx).unwrap_or(i32::MAX),
                contract,
                kind: r.kind,
                dir: r.dir,
                zero: r.zero,
            };
            let at = list.partition_point(|x| x.key() < e.key());
            list.insert(at, e);
            self.entries += 1;
        }
    }

    /// An account's entries, oldest first.
    pub(crate) fn entries_of(&self, account: &[u8]) -> &[Entry] {
        <&Address>::try_from(account)
            .ok()
            .and_then(|a| self.accounts.get(a))
            .map_or(&[], Vec::as_slice)
    }

    /// Where a tx of the window is, by its hash.
    pub(crate) fn locate(&self, hash: &[u8]) -> Option<(u64, u32)> {
        <&Hash>::try_from(hash).ok().and_then(|h| self.hashes.get(h)).copied()
    }

    /// An entry's token contract.
    pub(crate) fn contract(&self, e: &Entry) -> Option<&Address> {
        self.contracts.get(usize::try_from(e.contract).ok()?)
    }

    /// A window block's time.
    pub(crate) fn time(&self, block: u64) -> i64 {
        let at = self.times.partition_point(|(b, _)| *b < block);
        self.times.get(at).filter(|(b, _)| *b == block).map_or(0, |(_, t)| *t)
    }

    /// The window's activity rows in `ix_activity`'s key order (account, newest first), with
    /// their block times.
    pub(crate) fn sealed_activity(&self) -> Vec<(&Address, &Entry, i64)> {
        let mut accounts: Vec<&Address> = self.accounts.keys().collect();
        accounts.sort_unstable();
        let mut out = Vec::with_capacity(self.entries);
        for a in accounts {
            for e in self.accounts.get(a).into_iter().flatten().rev() {
                out.push((a, e, self.time(e.block)));
            }
        }
        out
    }

    /// The window's tx hashes in key order.
    pub(crate) fn sealed_hashes(&self) -> Vec<(&Hash, u64, u32)> {
        let mut out: Vec<(&Hash, u64, u32)> = self.hashes.iter().map(|(h, (b, i))| (h, *b, *i)).collect();
        out.sort_unstable_by_key(|x| x.0);
        out
    }
}

/// Sorts rows in `ix_activity`'s key order (account, then newest first) and merges an
/// account's two rows for one entry (it sent and received) into one with both directions.
fn merge(mut rows: Vec<Activity>) -> Vec<Activity> {
    use std::cmp::Reverse;
    rows.sort_unstable_by_key(|r| (r.account, Reverse(r.block), Reverse(r.tx_idx), Reverse(r.log_idx)));
    let mut out: Vec<Activity> = Vec::with_capacity(rows.len());
    for r in rows {
        match out.last_mut() {
            Some(l) if (l.account, l.block, l.tx_idx, l.log_idx) == (r.account, r.block, r.tx_idx, r.log_idx) => {
                l.dir |= r.dir;
            }
            _ => out.push(r),
        }
    }
    out
}

// ---- the window and the file ----------------------------------------------------------

/// A network's window, from the rows above its last part.
pub(crate) fn rebuild(conn: &Connection, net: &str) -> Result<Recent, DbError> {
    let parts: Vec<Part> = conn
        .prepare_cached("SELECT part, last_block FROM ix_parts WHERE net = ?1 ORDER BY part")?
        .query_map(params![net], |r| {
            Ok(Part {
                part: r.get::<_, i64>(0)? as u64,
                last: r.get::<_, i64>(1)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    let from = parts.last().map_or(0, |p| p.last + 1);
    let mut w = Recent::new(from, parts);
    let mut rows = Vec::new();
    let mut txs = conn.prepare_cached(
        "SELECT block, idx, ts, hash, sender, recipient, created, value FROM ix_txs \
         WHERE net = ?1 AND block >= ?2 ORDER BY block, idx",
    )?;
    let mut q = txs.query(params![net, sql_int(from)])?;
    while let Some(r) = q.next()? {
        let (block, idx, ts) = (r.get::<_, i64>(0)? as u64, r.get::<_, u32>(1)?, r.get::<_, i64>(2)?);
        if w.times_last() != Some(block) {
            w.add_block(block, ts);
        }
        w.add_hash(blob(r.get(3)?), block, idx);
        let to: Option<Vec<u8>> = r.get::<_, Option<Vec<u8>>>(5)?.or(r.get(6)?);
        let value: Vec<u8> = r.get(7)?;
        tx_activity(
            block,
            idx,
            blob(r.get(4)?),
            to.map(blob),
            value.iter().all(|b| *b == 0),
            &mut rows,
        );
        w.transfers += 1;
    }
    let mut transfers = conn.prepare_cached(
        "SELECT block, tx_idx, log_idx, pos, kind, contract, sender, recipient, token_id FROM ix_transfers \
         WHERE net = ?1 AND block >= ?2",
    )?;
    let mut q = transfers.query(params![net, sql_int(from)])?;
    while let Some(r) = q.next()? {
        let kind = Kind::from_name(&r.get::<_, String>(4)?).unwrap_or(Kind::Klay);
        let (block, tx_idx, log_idx) = (r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?);
        let contract = r.get::<_, Option<Vec<u8>>>(5)?.map(blob);
        transfer_activity(
            block,
            tx_idx,
            kind,
            log_idx,
            r.get(3)?,
            contract,
            blob(r.get(6)?),
            blob(r.get(7)?),
            &mut rows,
        );
        if let (Kind::Nft, Some(c), Some(id)) = (kind, contract, r.get::<_, Option<Vec<u8>>>(8)?) {
            w.add_nft_move(c, blob(id), Key { block, tx_idx, log_idx });
        }
        w.transfers += 1;
    }
    w.absorb(rows);
    // The balances moved since they were last written.
    let settled: i64 = conn
        .query_row("SELECT block FROM ix_holdings WHERE net = ?1", params![net], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(-1);
    let mut moves = conn.prepare_cached(
        "SELECT ts, tx_hash, kind, contract, sender, recipient, value, token_id FROM ix_transfers \
         WHERE net = ?1 AND block > ?2 AND kind IN ('ft', 'mt') ORDER BY block, tx_idx, log_idx, pos",
    )?;
    let mut q = moves.query(params![net, settled])?;
    while let Some(r) = q.next()? {
        let multi = r.get::<_, String>(2)? == "mt";
        let Some(contract) = r.get::<_, Option<Vec<u8>>>(3)?.map(blob) else {
            continue;
        };
        let id = match multi {
            true => blob(r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default()),
            false => [0; 32],
        };
        let last = Last {
            ts: r.get(0)?,
            tx: blob(r.get(1)?),
            from: blob(r.get(4)?),
            to: blob(r.get(5)?),
        };
        w.balances.transfer((multi, contract, id), word(r.get(6)?), last);
    }
    Ok(w)
}

/// A fixed-size key from a stored blob (zero-padded or cut if the file holds another size).
fn blob<const N: usize>(v: Vec<u8>) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(v) {
        *o = b;
    }
    out
}

/// A tx's KLAY entries: one for its sender and one for its recipient (or the contract it
/// created). KAS lists every tx as a KLAY transfer, zero-valued and failed ones too, and
/// `txlist` reads them back.
pub(crate) fn tx_activity(
    block: u64,
    idx: u32,
    from: Address,
    to: Option<Address>,
    zero: bool,
    out: &mut Vec<Activity>,
) {
    for (who, dir) in [(Some(from), DIR_FROM), (to, DIR_TO)] {
        let Some(account) = who else { continue };
        out.push(Activity {
            account,
            block,
            tx_idx: idx,
            log_idx: -1,
            kind: KIND_KLAY,
            contract: None,
            dir,
            zero,
        });
    }
}

/// A transfer row's entries: one per token event (a batch's first id stands for it), and one
/// per tx for the KLAY its calls moved (all of them, under log -2); `log` is the row's
/// `ix_transfers.log_idx`. The zero address has none.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transfer_activity(
    block: u64,
    tx_idx: u32,
    kind: Kind,
    log: i64,
    pos: u32,
    contract: Option<Address>,
    from: Address,
    to: Address,
    out: &mut Vec<Activity>,
) {
    let log_idx = match kind {
        Kind::Internal => INTERNAL_LOG,
        _ if log >= 0 && pos == 0 => log,
        _ => return,
    };
    for (account, dir) in [(from, DIR_FROM), (to, DIR_TO)] {
        if account == [0; 20] {
            continue;
        }
        out.push(Activity {
            account,
            block,
            tx_idx,
            log_idx,
            kind: kind_bit(kind),
            contract,
            dir,
            zero: false,
        });
    }
}

/// Seals `w` into a part: its entries, hashes and NFT transfers written under `part` = its
/// first block, in key order, the part recorded as ending at `last`, and its balances written.
pub(crate) fn seal(tx: &rusqlite::Transaction<'_>, net: &str, w: &Recent, last: u64) -> Result<(), DbError> {
    let started = std::time::Instant::now();
    let part = sql_int(w.from);
    let mut put = tx.prepare_cached(
        "INSERT INTO ix_activity (net, part, account, block, tx_idx, log_idx, kind, contract, dir, zero, ts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let rows = w.sealed_activity();
    for (account, e, ts) in &rows {
        put.execute(params![
            net,
            part,
            &account[..],
            sql_int(e.block),
            e.tx_idx,
            e.log_idx,
            e.kind,
            w.contract(e).map(|c| &c[..]),
            e.dir,
            e.zero,
            ts
        ])?;
    }
    let activity_done = started.elapsed();
    let mut put = tx.prepare_cached(
        "INSERT INTO ix_nft_moves (net, part, contract, token_id, block, tx_idx, log_idx) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for ((contract, id), at) in w.sealed_nft_moves() {
        put.execute(params![
            net,
            part,
            &contract[..],
            &id[..],
            sql_int(at.block),
            at.tx_idx,
            at.log_idx
        ])?;
    }
    let mut put =
        tx.prepare_cached("INSERT INTO ix_tx_hashes (net, part, hash, block, idx) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let hashes = w.sealed_hashes();
    for (hash, block, idx) in &hashes {
        put.execute(params![net, part, &hash[..], sql_int(*block), idx])?;
    }
    tx.execute(
        "INSERT INTO ix_parts (net, part, last_block, entries, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![net, part, sql_int(last), rows.len() as i64, hashes.len() as i64],
    )?;
    let indexes_done = started.elapsed();
    let (entries, hashes) = (rows.len(), hashes.len());
    drop(rows);
    let balances = w.balances.len();
    settle_balances(tx, net, &w.balances, last)?;
    tracing::debug!(
        network = net,
        part,
        last,
        entries,
        hashes,
        balances,
        activity_ms = activity_done.as_millis() as u64,
        hashes_and_nfts_ms = (indexes_done - activity_done).as_millis() as u64,
        balances_ms = (started.elapsed() - indexes_done).as_millis() as u64,
        "index: window sealed (before its commit)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: u8, block: u64, log_idx: i64, dir: u8) -> Activity {
        Activity {
            account: [account; 20],
            block,
            tx_idx: 0,
            log_idx,
            kind: 2,
            contract: Some([9; 20]),
            dir,
            zero: false,
        }
    }

    #[test]
    fn entries_are_kept_oldest_first_and_sealed_newest_first_per_account() {
        let mut r = Recent::new(1, Vec::new());
        r.add_block(1, 100);
        r.add_block(2, 200);
        r.absorb(vec![row(1, 1, 0, 1), row(2, 1, 0, 2), row(1, 1, 0, 2), row(1, 1, 3, 1)]);
        r.absorb(vec![row(1, 2, 0, 1)]);
        let keys: Vec<(u64, i32, u8)> = r
            .entries_of(&[1; 20])
            .iter()
            .map(|e| (e.block, e.log_idx, e.dir))
            .collect();
        assert_eq!(
            keys,
            [(1, 0, 3), (1, 3, 1), (2, 0, 1)],
            "a sender-and-recipient entry once"
        );
        assert_eq!(r.entries, 4);
        let sealed: Vec<(u8, u64, i32, i64)> = r
            .sealed_activity()
            .iter()
            .map(|(a, e, ts)| (a[0], e.block, e.log_idx, *ts))
            .collect();
        assert_eq!(sealed, [(1, 2, 0, 200), (1, 1, 3, 100), (1, 1, 0, 100), (2, 1, 0, 100)]);
        assert_eq!(r.contract(&r.entries_of(&[2; 20])[0]), Some(&[9; 20]));
        assert!(r.entries_of(&[3; 20]).is_empty() && r.entries_of(b"short").is_empty());
        r.add_hash([7; 32], 2, 0);
        assert_eq!(
            (r.locate(&[7; 32]), r.locate(&[8; 32]), r.locate(b"x")),
            (Some((2, 0)), None, None)
        );
    }
}
