//! The feeds that fill the outbox. Per network, a block feed follows the served head through
//! `events::Fetch` (never a block some node lacks), reads each block and its receipts once,
//! reads the balances threshold webhooks need at that block, and stores the block's events
//! with its position in one transaction. One transaction feed reads the store's changed tx
//! records in change order and holds back a mined tx until its block is at or below its
//! network's served head. Both start, the first time, from now: webhooks tell what happens
//! after they are made.

use std::sync::Arc;
use std::time::Duration;

use ruint::aliases::U256;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use super::db::HookDb;
use super::matcher::{block_events, crossing, touched, tx_events, BlockData};
use super::model::{Event, Filter, Hook};
use super::{now_ms, Hooks};
use crate::events::filter::{parse_logs, Log};
use crate::events::Fetch;
use crate::index::extract::{internal_transfers, BlockRows, Transfer};
use crate::index::ingest;
use crate::store::{Store, TxStatus};
use crate::txpath::lifecycle::hex;

/// The block feed's name in `wh_feeds`.
const BLOCKS: &str = "blocks";
/// The transaction feed's.
const TXS: &str = "txs";

/// Follows `net`'s served head and queues its webhooks' block events.
pub(super) async fn blocks(net: String, fetch: Arc<dyn Fetch>, db: Arc<HookDb>, hooks: Arc<Hooks>, wake: Arc<Notify>) {
    let mut served = fetch.served();
    let mut backoff = Duration::from_millis(200);
    loop {
        let head = *served.borrow_and_update();
        if head == 0 {
            if served.changed().await.is_err() {
                return;
            }
            continue;
        }
        let position = match blocking(&db, {
            let net = net.clone();
            move |db| db.position(&net, BLOCKS)
        })
        .await
        {
            Ok(Some(p)) => p,
            // The first time: from the head on.
            Ok(None) => {
                let net2 = net.clone();
                if let Err(e) = blocking(&db, move |db| db.commit(&net2, BLOCKS, head, &[], &[], now_ms())).await {
                    tracing::warn!(network = %net, error = %e, "webhooks: cannot store the block feed's start");
                    tokio::time::sleep(backoff).await;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(network = %net, error = %e, "webhooks: cannot read the block feed's position");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if position >= head {
            if served.changed().await.is_err() {
                return;
            }
            continue;
        }
        let n = position + 1;
        let wanted: Vec<Hook> = hooks.of(&net, true);
        match block(&net, &*fetch, &db, &wanted, n).await {
            Ok(added) => {
                backoff = Duration::from_millis(200);
                if added > 0 {
                    wake.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(network = %net, block = n, error = %e, "webhooks: a block could not be read; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    db: &Arc<HookDb>,
    f: impl FnOnce(&HookDb) -> Result<T, super::db::DbError> + Send + 'static,
) -> Result<T, String> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Block `n`'s events for `hooks`, stored with the feed's position; how many were new.
async fn block(net: &str, fetch: &dyn Fetch, db: &Arc<HookDb>, hooks: &[Hook], n: u64) -> Result<usize, String> {
    let now = now_ms();
    let mut events: Vec<Event> = Vec::new();
    let mut sides: Vec<(String, bool)> = Vec::new();
    let live: Vec<Hook> = hooks.iter().filter(|h| n > h.from_block).cloned().collect();
    if !live.is_empty() {
        let (rows, logs) = read_block(fetch, n).await?;
        // Tracing replays the block on a node: only for a webhook that names `internal`.
        let wants_internal = live.iter().any(|h| match &h.filter {
            Filter::Activity { kinds, .. } => kinds.iter().any(|k| k == "internal"),
            _ => false,
        });
        let internal = match wants_internal && !rows.txs.is_empty() {
            true => read_internal(fetch, &rows).await,
            false => Vec::new(),
        };
        events = block_events(
            &live,
            &BlockData {
                rows: &rows,
                logs: &logs,
                internal: &internal,
            },
            now,
        );
        for h in touched(&live, &rows, &internal) {
            let balance = balance_at(fetch, h, n).await?;
            let id = h.id.clone();
            let before = blocking(db, move |db| db.side(&id)).await?;
            let (above, event) = crossing(h, n, balance, before, now);
            sides.push((h.id.clone(), above));
            events.extend(event);
        }
    }
    let net = net.to_owned();
    blocking(db, move |db| db.commit(&net, BLOCKS, n, &events, &sides, now)).await
}

/// A block and its receipts' logs, read like a client's calls.
async fn read_block(fetch: &dyn Fetch, n: u64) -> Result<(BlockRows, Vec<Log>), String> {
    let (rows, receipts) = ingest::read_block(fetch, n).await?;
    #[derive(Deserialize)]
    struct Receipt<'a> {
        #[serde(borrow, default)]
        logs: Vec<&'a RawValue>,
    }
    let list: Vec<Receipt<'_>> = serde_json::from_str(receipts.get()).map_err(|e| format!("receipts: {e}"))?;
    let all: Vec<&RawValue> = list.into_iter().flat_map(|r| r.logs).collect();
    let text = serde_json::to_string(&all).map_err(|e| e.to_string())?;
    let logs = parse_logs(text.as_bytes())?;
    Ok((rows, logs))
}

/// The block's internal KLAY transfers, from the call tracer where the nodes offer it
/// (nothing otherwise: a debug API the nodes keep closed is not an error).
async fn read_internal(fetch: &dyn Fetch, rows: &BlockRows) -> Vec<Transfer> {
    let Ok(traces) = ingest::read_traces(fetch, rows.number).await else {
        return Vec::new();
    };
    let Ok(raw) = ingest::raw(traces) else {
        return Vec::new();
    };
    internal_transfers(&raw, rows).unwrap_or_default()
}

/// A threshold webhook's balance at block `n`: `klay_getBalance`, or the token's `balanceOf`.
async fn balance_at(fetch: &dyn Fetch, h: &Hook, n: u64) -> Result<U256, String> {
    let Filter::Balance { address, token, .. } = &h.filter else {
        return Ok(U256::ZERO);
    };
    let at = format!("{n:#x}");
    let reply = match token {
        None => {
            fetch
                .call("klay_getBalance", json!([hex(address), at]).to_string())
                .await?
        }
        Some(c) => {
            let data = format!("0x70a08231{:0>64}", &hex(address)[2..]);
            fetch
                .call("klay_call", json!([{"to": hex(c), "data": data}, at]).to_string())
                .await?
        }
    };
    let text: String = serde_json::from_slice(&reply).map_err(|e| format!("a balance: {e}"))?;
    let digits = text.trim_start_matches("0x");
    // `balanceOf` answers a 32-byte word; a token that answers nothing reads as zero.
    U256::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16).map_err(|e| format!("a balance: {e}"))
}

/// Reads the store's changed tx records and queues the tx-fed webhooks' events.
pub(super) async fn txs(
    store: Arc<dyn Store>,
    db: Arc<HookDb>,
    hooks: Arc<Hooks>,
    served: Vec<(String, tokio::sync::watch::Receiver<u64>)>,
    wake: Arc<Notify>,
) {
    let first = served.first().map(|(n, _)| n.clone()).unwrap_or_default();
    let tick = Duration::from_millis(250);
    loop {
        tokio::time::sleep(tick).await;
        let position = match blocking(&db, |db| db.position("", TXS)).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                let st = store.clone();
                let Ok(Ok(last)) = tokio::task::spawn_blocking(move || st.last_tx_change()).await else {
                    continue;
                };
                let _ = blocking(&db, move |db| db.commit("", TXS, last, &[], &[], now_ms())).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot read the tx feed's position");
                continue;
            }
        };
        let st = store.clone();
        let changes = match tokio::task::spawn_blocking(move || st.txs_changed_after(position, 500)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "webhooks: cannot read changed tx records");
                continue;
            }
            Err(_) => continue,
        };
        if changes.is_empty() {
            continue;
        }
        let now = now_ms();
        let mut events = Vec::new();
        let mut upto = position;
        for (seq, rec) in &changes {
            let net = if rec.network.is_empty() {
                first.as_str()
            } else {
                rec.network.as_str()
            };
            // A mined tx is told once its block is readable through kengate.
            if rec.status == TxStatus::InBlock {
                let head = served.iter().find(|(n, _)| n == net).map_or(0, |(_, w)| *w.borrow());
                if rec.block_number.is_some_and(|b| b > head) {
                    break;
                }
            }
            events.extend(tx_events(&hooks.of(net, false), rec, now));
            upto = *seq;
        }
        if upto == position {
            continue;
        }
        match blocking(&db, move |db| db.commit("", TXS, upto, &events, &[], now)).await {
            Ok(added) if added > 0 => wake.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot store tx events; retrying"),
        }
    }
}
