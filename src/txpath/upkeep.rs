//! Background upkeep of the write path, once a second: forgets kept txs once they are mined,
//! and when the node that accepted a sender's unmined txs leaves the in-sync set, re-submits
//! them in nonce order to the sender's new home node ("already known" / "nonce too low" there
//! mean the tx is already in hand: success).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::home::{home_node, sender_key};
use super::senders::Addr;
use crate::cluster::{ClusterView, NodeState};
use crate::proxy::Gateway;
use crate::routing::NodeSet;

const EVERY: Duration = Duration::from_secs(1);

/// Starts the upkeep loop.
pub fn spawn(gw: Arc<Gateway>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            let view = gw.cluster.view();
            for sender in gw.senders.all() {
                upkeep_sender(&gw, &view, &sender).await;
            }
            gw.senders.prune();
        }
    })
}

async fn upkeep_sender(gw: &Gateway, view: &ClusterView, sender: &Addr) {
    let mut turn = gw.senders.lock(sender).await;
    if turn.unmined.is_empty() {
        return;
    }
    let kept: Vec<(u64, [u8; 32])> = turn.unmined.iter().map(|(n, k)| (*n, k.hash)).collect();
    if let Some(mined) = mined(gw, view, &kept).await {
        for ((nonce, hash), m) in kept.iter().zip(mined) {
            if m {
                turn.unmined.remove(nonce);
                gw.senders.forget(hash);
            }
        }
    }
    let in_sync = |id: usize| view.nodes.get(id).is_some_and(|n| n.state == NodeState::InSync);
    if turn.unmined.values().all(|k| in_sync(k.node)) {
        return;
    }
    let Some(home) = home_node(view, &gw.cluster.keys, sender_key(sender), NodeSet::default()) else {
        return;
    };
    let node = &gw.cluster.nodes[home];
    for k in turn.unmined.values_mut() {
        if in_sync(k.node) && k.node == home {
            continue;
        }
        match node
            .post(&gw.cluster.client, k.body.clone(), gw.settings.upstream_timeout)
            .await
        {
            Ok(reply) if accepted(&reply) => {
                tracing::info!(
                    node = home,
                    from = k.node,
                    "re-submitted an unmined tx to the sender's new home node"
                );
                gw.metrics.retry("resubmit");
                k.node = home;
                gw.senders.remember(k.hash, home);
            }
            Ok(reply) => {
                tracing::warn!(node = home, reply = %String::from_utf8_lossy(&reply), "re-submission refused");
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "re-submission failed; will retry");
                break;
            }
        }
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

/// For each hash, whether a receipt exists, asked of the highest node in one batch.
async fn mined(gw: &Gateway, view: &ClusterView, kept: &[(u64, [u8; 32])]) -> Option<Vec<bool>> {
    let id = (0..view.nodes.len())
        .filter(|&i| view.nodes[i].is_up())
        .max_by_key(|&i| view.nodes[i].head)?;
    let calls: Vec<Value> = kept
        .iter()
        .enumerate()
        .map(|(i, (_, h))| {
            let hash = format!("0x{}", h.iter().map(|b| format!("{b:02x}")).collect::<String>());
            serde_json::json!({"jsonrpc":"2.0","id":i,"method":"klay_getTransactionReceipt","params":[hash]})
        })
        .collect();
    let body = Bytes::from(Value::Array(calls).to_string());
    let reply = gw.cluster.nodes[id]
        .post(&gw.cluster.client, body, gw.settings.upstream_timeout)
        .await
        .ok()?;
    let replies: Vec<Value> = serde_json::from_slice(&reply).ok()?;
    let mut out = vec![false; kept.len()];
    for r in replies {
        if let (Some(i), Some(res)) = (r["id"].as_u64(), r.get("result")) {
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                *slot = !res.is_null();
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::accepted;

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
}
