//! The holdings the index derives from transfers: FT and MT balances, folded in the window
//! (each one's transfers composed, [`super::clamp`]) and written into the sealed file when it
//! is sealed or before a read of balances; NFT owners, MT ids and supplies and FT supplies,
//! moved per batch (small tables, or few rows).

use rusqlite::{params, Connection, OptionalExtension};

use super::super::extract::{BlockRows, Hash};
use super::{clamp, sql_int, word, DbError, TokenUri};

/// Writes a window's balances into the sealed file and records that the balances there are
/// those at `upto` (the window had every transfer up to it above the last mark).
pub(super) fn settle_balances(tx: &Connection, net: &str, balances: &Balances, upto: u64) -> Result<(), DbError> {
    balances.flush(tx, net)?;
    tx.execute(
        "INSERT INTO ix_holdings (net, block) VALUES (?1, ?2) ON CONFLICT (net) DO UPDATE SET block = excluded.block",
        params![net, super::sql_int(upto)],
    )?;
    Ok(())
}

/// Which balance: FT balances are MT balances of id 0 in their own table. Ordered as the
/// tables' primary keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct BalanceKey {
    multi: bool,
    contract: super::super::extract::Address,
    id: [u8; 32],
    holder: super::super::extract::Address,
}

/// What the window's transfers did to a balance.
#[derive(Debug, Clone)]
struct Balance {
    /// Every transfer in order, as one function of the stored balance.
    moves: clamp::Clamp,
    last: Last,
}

/// The FT and MT balances the window moved, folded in memory: each one's transfers composed in
/// order (exactly as one statement per transfer would move it, never below zero) without
/// reading it, then read and written once, in key order, by [`flush`](Self::flush) — when the
/// window is sealed, or when a read of balances comes first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Balances {
    moved: std::collections::BTreeMap<BalanceKey, Balance>,
}

impl Balances {
    /// Nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.moved.is_empty()
    }

    /// Balances to write.
    pub(crate) fn len(&self) -> usize {
        self.moved.len()
    }

    /// Moves `value` of `(multi, contract, id)` from `last.from` to `last.to`; mints come from
    /// and burns go to the zero address, which holds nothing.
    pub(super) fn transfer(
        &mut self,
        (multi, contract, id): (bool, super::super::extract::Address, [u8; 32]),
        value: ruint::aliases::U256,
        last: Last,
    ) {
        for (who, add) in [(last.from, false), (last.to, true)] {
            if who == [0; 20] {
                continue;
            }
            let key = BalanceKey {
                multi,
                contract,
                id,
                holder: who,
            };
            let b = self.moved.entry(key).or_insert(Balance {
                moves: clamp::Clamp::default(),
                last,
            });
            b.moves.then(add, value);
            b.last = last;
        }
    }

    /// Writes every moved balance: the stored one (zero when none) moved by the window's
    /// transfers, by an upsert that leaves the holder index alone, or a delete when it came to
    /// zero.
    fn flush(&self, tx: &Connection, net: &str) -> Result<(), DbError> {
        let mut get_ft =
            tx.prepare_cached("SELECT balance FROM ix_ft_balances WHERE net = ?1 AND contract = ?2 AND holder = ?3")?;
        let mut get_mt = tx.prepare_cached(
            "SELECT balance FROM ix_mt_balances WHERE net = ?1 AND contract = ?2 AND token_id = ?3 AND holder = ?4",
        )?;
        let mut put_ft = tx.prepare_cached(
            "INSERT INTO ix_ft_balances (net, contract, holder, balance, updated, last_tx, last_from, last_to) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (net, contract, holder) DO UPDATE SET \
             balance = excluded.balance, updated = excluded.updated, last_tx = excluded.last_tx, \
             last_from = excluded.last_from, last_to = excluded.last_to",
        )?;
        let mut put_mt = tx.prepare_cached(
            "INSERT INTO ix_mt_balances (net, contract, token_id, holder, balance, updated, last_tx, last_from, \
             last_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (net, contract, token_id, holder) \
             DO UPDATE SET balance = excluded.balance, updated = excluded.updated, last_tx = excluded.last_tx, \
             last_from = excluded.last_from, last_to = excluded.last_to",
        )?;
        let mut del_ft =
            tx.prepare_cached("DELETE FROM ix_ft_balances WHERE net = ?1 AND contract = ?2 AND holder = ?3")?;
        let mut del_mt = tx.prepare_cached(
            "DELETE FROM ix_mt_balances WHERE net = ?1 AND contract = ?2 AND token_id = ?3 AND holder = ?4",
        )?;
        for (k, b) in &self.moved {
            let (c, id, h) = (&k.contract[..], &k.id[..], &k.holder[..]);
            let stored: Option<Vec<u8>> = match k.multi {
                false => get_ft.query_row(params![net, c, h], |r| r.get(0)).optional()?,
                true => get_mt.query_row(params![net, c, id, h], |r| r.get(0)).optional()?,
            };
            let had = stored.is_some();
            let amount = b.moves.apply(word(stored));
            if amount.is_zero() {
                if had {
                    match k.multi {
                        false => del_ft.execute(params![net, c, h])?,
                        true => del_mt.execute(params![net, c, id, h])?,
                    };
                }
                continue;
            }
            let amount = amount.to_be_bytes::<32>();
            let l = &b.last;
            let (lt, lf, lto) = (&l.tx[..], &l.from[..], &l.to[..]);
            match k.multi {
                false => put_ft.execute(params![net, c, h, &amount[..], l.ts, lt, lf, lto])?,
                true => put_mt.execute(params![net, c, id, h, &amount[..], l.ts, lt, lf, lto])?,
            };
        }
        Ok(())
    }
}

/// The transfer that last touched a holding.
#[derive(Debug, Clone, Copy)]
pub(super) struct Last {
    pub(super) ts: i64,
    pub(super) tx: Hash,
    pub(super) from: super::super::extract::Address,
    pub(super) to: super::super::extract::Address,
}

/// Moves what one transfer moved in the derived holdings: FT balances per holder (and the
/// token's supply), the owner of each NFT, MT balances per (token id, holder) and each MT id's
/// supply. Mints come from and burns go to the zero address, which holds nothing. A balance
/// never goes below zero (a contract that lies, or history before `start_block`, which the
/// holdings then do not reflect); empty ones go.
pub(super) fn holdings(
    tx: &rusqlite::Transaction<'_>,
    net: &str,
    b: &BlockRows,
    t: &super::super::extract::Transfer,
    uris: &[TokenUri],
    balances: &mut Balances,
) -> Result<(), DbError> {
    use super::super::extract::Kind;
    let (Some(contract), zero) = (t.contract.as_ref(), [0u8; 20]) else {
        return Ok(());
    };
    let last = Last {
        ts: sql_int(b.timestamp),
        tx: t.tx_hash,
        from: t.from,
        to: t.to,
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
            balances.transfer((multi, *contract, id), t.value, last);
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
