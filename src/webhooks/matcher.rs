//! Which events a block and a transaction record make for which webhooks. Pure: the feeds
//! (`source.rs`) read blocks, balances and records, and store what this returns.

use ruint::aliases::U256;
use serde_json::{json, Value};

use super::model::{Event, Filter, Hook, Kind};
use crate::events::filter::Log;
use crate::index::extract::{BlockRows, Kind as TransferKind, Transfer};
use crate::jsonrpc::set_member;
use crate::store::{TxRecord, TxStatus};
use crate::txpath::lifecycle::hex;

/// What a block holds, as the webhooks see it.
pub struct BlockData<'a> {
    /// Its txs and transfers.
    pub rows: &'a BlockRows,
    /// Its logs.
    pub logs: &'a [Log],
    /// Its internal KLAY transfers, when the index has them.
    pub internal: &'a [Transfer],
}

fn kind_name(k: TransferKind) -> &'static str {
    k.as_str()
}

/// The transfer as an `address_activity` event.
fn transfer_json(t: &Transfer, me: &[u8; 20]) -> Value {
    let direction = match (t.from == *me, t.to == *me) {
        (true, true) => "self",
        (true, false) => "out",
        _ => "in",
    };
    let mut v = json!({
        "kind": kind_name(t.kind),
        "direction": direction,
        "transactionHash": hex(&t.tx_hash),
        "transactionIndex": t.tx_index,
        "from": hex(&t.from),
        "to": hex(&t.to),
        "value": t.value.to_string(),
    });
    if let Some(i) = t.log_index {
        set_member(&mut v, "logIndex", json!(i));
    }
    if let Some(c) = &t.contract {
        set_member(&mut v, "contract", json!(hex(c)));
    }
    if let Some(id) = t.token_id {
        set_member(&mut v, "tokenId", json!(id.to_string()));
    }
    if t.batch_pos > 0 {
        set_member(&mut v, "batchIndex", json!(t.batch_pos));
    }
    v
}

/// The events `block` makes for `hooks` (block-fed kinds; balance thresholds excepted, see
/// [`touched`]), each webhook's in block order: transfers by tx and log index, logs by log
/// index. Webhooks made after the block see nothing of it.
pub fn block_events(hooks: &[Hook], b: &BlockData<'_>, now: u64) -> Vec<Event> {
    let n = b.rows.number;
    let mut out = Vec::new();
    for h in hooks.iter().filter(|h| n > h.from_block) {
        match &h.filter {
            Filter::Activity {
                address,
                kinds,
                contracts,
            } => {
                let mut moves: Vec<&Transfer> = b.rows.transfers.iter().chain(b.internal.iter()).collect();
                moves.sort_by_key(|t| {
                    (
                        t.tx_index,
                        t.log_index.map_or(-1, i64::from) - i64::from(t.kind == TransferKind::Internal),
                        t.batch_pos,
                    )
                });
                for t in moves {
                    if t.from != *address && t.to != *address {
                        continue;
                    }
                    // No kinds: all but internal transfers (those are asked for by name).
                    let wanted = match kinds.is_empty() {
                        true => t.kind != TransferKind::Internal,
                        false => kinds.iter().any(|k| k == kind_name(t.kind)),
                    };
                    if !wanted {
                        continue;
                    }
                    if let (false, Some(c)) = (contracts.is_empty(), &t.contract) {
                        if !contracts.contains(c) {
                            continue;
                        }
                    }
                    let key = format!(
                        "a:{}:{}:{}:{}",
                        hex(&t.tx_hash),
                        kind_name(t.kind),
                        t.log_index.map_or(-1, i64::from),
                        t.batch_pos
                    );
                    out.push(Event::new(h, &key, Some(n), now, transfer_json(t, address)));
                }
            }
            Filter::Log(_, criteria) => {
                for (i, log) in b.logs.iter().enumerate() {
                    if criteria.matches(n, log) {
                        let raw: Value = serde_json::from_slice(&log.raw).unwrap_or(Value::Null);
                        let key = format!("l:{}:{i}", hex(&b.rows.hash));
                        out.push(Event::new(h, &key, Some(n), now, json!({ "log": raw })));
                    }
                }
            }
            Filter::None if h.kind == Kind::NewBlock => {
                let event = json!({
                    "number": n,
                    "hash": hex(&b.rows.hash),
                    "parentHash": hex(&b.rows.parent),
                    "timestamp": b.rows.timestamp,
                    "transactionCount": b.rows.txs.len(),
                });
                out.push(Event::new(h, &format!("n:{n}"), Some(n), now, event));
            }
            _ => {}
        }
    }
    out
}

/// The balance-threshold webhooks whose address a block touched: a tx it sent, received or
/// paid the fee of (KLAY), or a transfer of its token to or from it.
pub fn touched<'h>(hooks: &'h [Hook], rows: &BlockRows, internal: &[Transfer]) -> Vec<&'h Hook> {
    hooks
        .iter()
        .filter(|h| rows.number > h.from_block)
        .filter(|h| match &h.filter {
            Filter::Balance {
                address, token: None, ..
            } => {
                rows.txs.iter().any(|t| {
                    t.from == *address
                        || t.to == Some(*address)
                        || t.fee_payer == Some(*address)
                        || t.contract_created == Some(*address)
                }) || internal.iter().any(|t| t.from == *address || t.to == *address)
            }
            Filter::Balance {
                address,
                token: Some(c),
                ..
            } => rows
                .transfers
                .iter()
                .any(|t| t.contract == Some(*c) && (t.from == *address || t.to == *address)),
            _ => false,
        })
        .collect()
}

/// A threshold webhook's balance read at block `n`: its side now (at or above the
/// threshold), and the event when it changed side. The first reading only sets the side.
pub fn crossing(h: &Hook, n: u64, balance: U256, before: Option<bool>, now: u64) -> (bool, Option<Event>) {
    let Filter::Balance {
        address,
        token,
        threshold,
    } = &h.filter
    else {
        return (false, None);
    };
    let above = balance >= *threshold;
    let event = match before {
        Some(b) if b != above => {
            let mut v = json!({
                "address": hex(address),
                "balance": balance.to_string(),
                "threshold": threshold.to_string(),
                "crossed": if above { "above" } else { "below" },
            });
            if let Some(t) = token {
                set_member(&mut v, "token", json!(hex(t)));
            }
            Some(Event::new(h, &format!("b:{n}"), Some(n), now, v))
        }
        _ => None,
    };
    (above, event)
}

/// The states a record has reached, in lifecycle order, with when.
fn reached(r: &TxRecord) -> Vec<(TxStatus, u64)> {
    [
        (TxStatus::Submitted, r.submitted_at),
        (TxStatus::Pending, r.pending_at),
        (TxStatus::InBlock, r.in_block_at),
        (TxStatus::Rejected, r.rejected_at),
        (TxStatus::Dropped, r.dropped_at),
    ]
    .into_iter()
    .filter_map(|(s, at)| at.map(|a| (s, a)))
    .collect()
}

fn record_json(r: &TxRecord) -> Value {
    json!({
        "hash": r.hash,
        "sender": r.sender,
        "nonce": r.nonce,
        "status": r.status.as_str(),
        "blockNumber": r.block_number,
        "success": r.success,
        "gasUsed": r.gas_used,
        "error": r.error,
    })
}

/// The events a transaction record makes for the tx-fed webhooks of its network: one per
/// state it reached since the webhook was made (`tx_status`), and one when it failed
/// (`failed_tx`: mined with status 0, rejected or dropped). A record seen again makes the
/// same ids.
pub fn tx_events(hooks: &[Hook], r: &TxRecord, now: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for h in hooks {
        let Filter::Txs {
            hash,
            sender,
            key,
            statuses,
        } = &h.filter
        else {
            continue;
        };
        let mine = hash.as_ref().is_some_and(|x| *x == r.hash)
            || sender.as_ref().is_some_and(|s| *s == r.sender)
            || key.as_ref().is_some_and(|k| r.key.as_ref() == Some(k));
        if !mine {
            continue;
        }
        match h.kind {
            Kind::TxStatus => {
                for (status, at) in reached(r) {
                    if at < h.created || (!statuses.is_empty() && !statuses.contains(&status)) {
                        continue;
                    }
                    let mut v = record_json(r);
                    set_member(&mut v, "status", json!(status.as_str()));
                    set_member(&mut v, "at", json!(at));
                    let block = (status == TxStatus::InBlock).then_some(r.block_number).flatten();
                    out.push(Event::new(
                        h,
                        &format!("t:{}:{}", r.hash, status.as_str()),
                        block,
                        now,
                        v,
                    ));
                }
            }
            Kind::FailedTx => {
                let (why, at) = match (r.success, r.rejected_at, r.dropped_at) {
                    (Some(false), _, _) => ("reverted", r.in_block_at),
                    (_, Some(at), _) => ("rejected", Some(at)),
                    (_, _, Some(at)) => ("dropped", Some(at)),
                    _ => continue,
                };
                if at.is_some_and(|a| a < h.created) {
                    continue;
                }
                let mut v = record_json(r);
                set_member(&mut v, "reason", json!(why));
                let block = (why == "reverted").then_some(r.block_number).flatten();
                out.push(Event::new(h, &format!("f:{}", r.hash), block, now, v));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
