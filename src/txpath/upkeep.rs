//! Background upkeep of the write path, once a second, per sender with unmined txs:
//! records receipts (InBlock) and pool sightings (Pending); drops txs whose nonce another tx
//! used (Dropped); and when the node that accepted unmined txs leaves the in-sync set, or a
//! pending tx leaves its node's pool without a block, re-submits them in nonce order to the
//! sender's home node ("already known" / "nonce too low" there mean the tx is in hand:
//! success; any other refusal: Dropped with the node's reason). At start, unfinished lifecycle records
//! are loaded back, so in-flight txs of a previous run are re-checked (and re-sent).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::home::{home_node, sender_key};
use super::lifecycle::Lifecycle;
use super::lifecycle::{Mined, Transition};
use super::senders::{Addr, Kept, Senders};
use crate::cluster::{Cluster, ClusterView, NodeId, NodeState};
use crate::jsonrpc::parse_quantity;
use crate::jsonrpc::{self, hex, unhex};
use crate::routing::{highest, NodeSet};

const EVERY: Duration = Duration::from_secs(1);

/// What the upkeep works on: one network's nodes and write state. `proxy::Gateway`
/// implements it; the upkeep names no more of the gateway than this, so `txpath` stays below
/// `proxy`.
pub trait WritePath: Send + Sync + 'static {
    /// The nodes and the published view.
    fn cluster(&self) -> &Cluster;
    /// Per-sender ordering and read-your-writes state.
    fn senders(&self) -> &Senders;
    /// The transaction lifecycle records.
    fn lifecycle(&self) -> &Lifecycle;
    /// Timeout of one upstream call.
    fn upstream_timeout(&self) -> Duration;
    /// Counts a re-submission to a sender's home node (a retry, reason `resubmit`).
    fn resubmitted(&self);
}

/// Starts the upkeep loop.
pub fn spawn(gw: Arc<impl WritePath>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            let view = gw.cluster().view();
            for sender in gw.senders().all() {
                upkeep_sender(gw.as_ref(), &view, &sender).await;
            }
            gw.senders().prune();
        }
    })
}

/// Loads unfinished lifecycle records of a previous run back into the sender state.
pub async fn restore(gw: &impl WritePath) {
    let records = match gw.lifecycle().unfinished().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not load unfinished transactions");
            return;
        }
    };
    let count = records.len();
    for rec in records {
        let (Some(sender), Some(hash)) = (unhex::<20>(&rec.sender), unhex::<32>(&rec.hash)) else {
            continue;
        };
        let node = rec
            .node
            .as_deref()
            .and_then(|recorded| {
                // A node name; records made before names were kept hold the node's URL.
                gw.cluster()
                    .nodes
                    .iter()
                    .position(|n| n.name == recorded || n.http == recorded)
            })
            .unwrap_or(usize::MAX);
        let body = Bytes::from(rec.request.into_bytes());
        gw.senders().lock(&sender).await.forwarded(
            rec.nonce,
            Kept {
                hash,
                body,
                node,
                pending_seen: false,
            },
        );
        if node != usize::MAX {
            gw.senders().remember(hash, node);
        }
    }
    if count > 0 {
        tracing::info!(count, "re-checking transactions left in flight by the previous run");
    }
}

async fn upkeep_sender(gw: &impl WritePath, view: &ClusterView, sender: &Addr) {
    let mut turn = gw.senders().lock(sender).await;
    if turn.unmined.is_empty() {
        return;
    }
    let Some(highest) = highest(view, NodeSet::default()) else {
        return;
    };
    // The mined nonce count first, receipts second (same node): a nonce below the count
    // with no receipt then really was taken by another tx, never by a race with our own.
    let count = mined_nonce_count(gw, highest, sender).await;
    let kept: Vec<(u64, [u8; 32])> = turn.unmined.iter().map(|(n, k)| (*n, k.hash)).collect();
    let hashes: Vec<[u8; 32]> = kept.iter().map(|(_, h)| *h).collect();
    let Some(receipts) = batch(gw, highest, "klay_getTransactionReceipt", &hashes).await else {
        return;
    };
    for ((nonce, hash), receipt) in kept.iter().zip(receipts) {
        let transition = match receipt.as_ref().and_then(mined) {
            Some(m) => Transition::InBlock(m),
            None if count.is_some_and(|c| *nonce < c) => Transition::Dropped {
                reason: "replaced: another transaction with the same nonce was mined".into(),
            },
            None => continue,
        };
        record(gw, *hash, transition).await;
        turn.unmined.remove(nonce);
        gw.senders().forget(hash);
    }
    if turn.unmined.is_empty() {
        return;
    }
    // Pool sightings, asked of the node holding each tx: seen → Pending; seen before and gone
    // now (without a receipt: the node restarted or evicted it) → sent again below.
    let held: Vec<(u64, NodeId, [u8; 32])> = turn
        .unmined
        .iter()
        .filter(|(_, k)| view.nodes.get(k.node).is_some_and(|n| n.is_up()))
        .map(|(n, k)| (*n, k.node, k.hash))
        .collect();
    for (nonce, node, hash) in held {
        let Some(Some(tx)) = batch(gw, node, "klay_getTransactionByHash", &[hash])
            .await
            .and_then(|v| v.into_iter().next())
        else {
            continue;
        };
        let Some(k) = turn.unmined.get_mut(&nonce) else {
            continue;
        };
        match (tx.is_null(), k.pending_seen) {
            (false, false) => {
                k.pending_seen = true;
                record(gw, hash, Transition::Pending).await;
            }
            (true, true) => {
                tracing::info!(tx = %hex(&hash), node, "a pending tx left its node's pool without a block; sending it again");
                k.node = usize::MAX;
                k.pending_seen = false;
            }
            _ => {}
        }
    }
    resubmit_if_home_left(gw, view, sender, &mut turn.unmined).await;
}

async fn resubmit_if_home_left(
    gw: &impl WritePath,
    view: &ClusterView,
    sender: &Addr,
    unmined: &mut std::collections::BTreeMap<u64, Kept>,
) {
    let in_sync = |id: NodeId| view.nodes.get(id).is_some_and(|n| n.state == NodeState::InSync);
    if unmined.values().all(|k| in_sync(k.node)) {
        return;
    }
    let Some(home) = home_node(view, &gw.cluster().keys, sender_key(sender), NodeSet::default()) else {
        return;
    };
    let Some(node) = gw.cluster().nodes.get(home) else {
        return;
    };
    for k in unmined.values_mut().filter(|k| k.node != DROPPED) {
        if in_sync(k.node) && k.node == home {
            continue;
        }
        match node
            .post(&gw.cluster().client, k.body.clone(), gw.upstream_timeout())
            .await
        {
            Ok(reply) if accepted(&reply) => {
                tracing::info!(node = home, tx = %hex(&k.hash), "re-submitted an unmined tx to the sender's home node");
                gw.resubmitted();
                k.node = home;
                gw.senders().remember(k.hash, home);
                record(
                    gw,
                    k.hash,
                    Transition::Submitted {
                        node: node.name.clone(),
                    },
                )
                .await;
            }
            Ok(reply) => {
                // The node refuses it outright: it will not be mined through kengate.
                let reason = refusal(&reply);
                tracing::warn!(node = home, tx = %hex(&k.hash), %reason, "re-submission refused; dropped");
                record(gw, k.hash, Transition::Dropped { reason }).await;
                gw.senders().forget(&k.hash);
                k.node = DROPPED;
            }
            Err(e) => {
                tracing::debug!(error = %e, "re-submission failed; will retry");
                break;
            }
        }
    }
    unmined.retain(|_, k| k.node != DROPPED);
}

/// Marks a kept tx the node refused on re-submission; removed after the pass.
const DROPPED: NodeId = usize::MAX - 1;

/// The node's error message, for the Dropped record.
fn refusal(reply: &[u8]) -> String {
    serde_json::from_slice::<Value>(reply)
        .ok()
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(reply).into_owned())
}

async fn record(gw: &impl WritePath, hash: [u8; 32], t: Transition) {
    if let Err(e) = gw.lifecycle().transition(hash, t).await {
        tracing::warn!(error = %e, "could not record a transaction state");
    }
}

/// Whether a node's answer to a re-submission means it now has the tx.
fn accepted(reply: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(reply) else {
        return false;
    };
    match v.get("error") {
        None | Some(Value::Null) => true,
        Some(e) => {
            let msg = e["message"].as_str().unwrap_or("").to_ascii_lowercase();
            ["already known", "known transaction", "nonce too low"]
                .iter()
                .any(|m| msg.contains(m))
        }
    }
}

/// Receipt facts, if the receipt is one.
fn mined(receipt: &Value) -> Option<Mined> {
    let q = |k: &str| receipt.get(k).and_then(Value::as_str).and_then(parse_quantity);
    Some(Mined {
        block: q("blockNumber")?,
        success: q("status") == Some(1),
        gas_used: q("gasUsed").unwrap_or(0),
    })
}

/// The sender's mined nonce count (`getTransactionCount(sender, "latest")`).
async fn mined_nonce_count(gw: &impl WritePath, node: NodeId, sender: &Addr) -> Option<u64> {
    let body = jsonrpc::request(
        "0",
        "klay_getTransactionCount",
        &format!("[\"{}\",\"latest\"]", hex(sender)),
    );
    let reply = gw
        .cluster()
        .nodes
        .get(node)?
        .post(&gw.cluster().client, body, gw.upstream_timeout())
        .await
        .ok()?;
    let v: Value = serde_json::from_slice(&reply).ok()?;
    v.get("result")?.as_str().and_then(parse_quantity)
}

/// One batch of `method(hash)` calls to `node`; per hash its result (`None` when missing).
async fn batch(gw: &impl WritePath, node: NodeId, method: &str, hashes: &[[u8; 32]]) -> Option<Vec<Option<Value>>> {
    let mut body = BytesMut::with_capacity(hashes.len() * 160 + 2);
    body.put_u8(b'[');
    for (i, h) in hashes.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        jsonrpc::put_request(&mut body, &i.to_string(), method, &format!("[\"{}\"]", hex(h)));
    }
    body.put_u8(b']');
    let body = body.freeze();
    let reply = gw
        .cluster()
        .nodes
        .get(node)?
        .post(&gw.cluster().client, body, gw.upstream_timeout())
        .await
        .ok()?;
    let replies: Vec<Value> = serde_json::from_slice(&reply).ok()?;
    let mut out = vec![None; hashes.len()];
    for mut r in replies {
        let Some(i) = r
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
        else {
            continue;
        };
        if let (Some(slot), Some(res)) = (out.get_mut(i), r.get_mut("result")) {
            *slot = Some(res.take());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resubmission_answers() {
        assert!(accepted(br#"{"jsonrpc":"2.0","id":1,"result":"0xab"}"#));
        assert!(accepted(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"already known"}}"#
        ));
        assert!(accepted(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#
        ));
        assert!(!accepted(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"insufficient funds"}}"#
        ));
        assert!(!accepted(b"nope"));
    }

    #[test]
    fn receipts() {
        let r = serde_json::json!({"blockNumber":"0x10","status":"0x1","gasUsed":"0x5208"});
        assert_eq!(
            mined(&r),
            Some(Mined {
                block: 16,
                success: true,
                gas_used: 21000
            })
        );
        let r = serde_json::json!({"blockNumber":"0x10","status":"0x0"});
        assert_eq!(mined(&r).map(|m| m.success), Some(false));
        assert_eq!(mined(&Value::Null), None);
    }
}
