//! The event feed of one network: follows the served head and announces every block after
//! the one it started at, in order and exactly once, with the data kinds someone wants,
//! each fetched once through the routing core (so only from nodes that have the block).
//! Also: the pending-transaction watcher (nodes' `newPendingTransactions`, de-duplicated)
//! and the sweeper of idle polling filters.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::filter::parse_logs;
use super::{BlockEvent, Hub, KindLabels, Want};

/// Starts the feed, the pending watchers (one per node with a WS URL) and the sweeper.
pub fn spawn(hub: &Arc<Hub>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(follow(hub.clone())), tokio::spawn(sweep(hub.clone()))];
    tasks.push(tokio::spawn(pending_watchers(hub.clone())));
    tasks
}

/// One [`watch_pending`] per node WebSocket of the network, started again on the new list
/// when a reload changes it.
async fn pending_watchers(hub: Arc<Hub>) {
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let mut list = hub.node_ws.subscribe();
    loop {
        let nodes = list.borrow_and_update().clone();
        let mut watchers = tokio::task::JoinSet::new();
        for node in nodes.iter().cloned() {
            watchers.spawn(watch_pending(hub.clone(), node, seen.clone()));
        }
        // The hub holds the sender for as long as this task holds the hub.
        if list.changed().await.is_err() {
            return;
        }
        watchers.abort_all();
    }
}

async fn follow(hub: Arc<Hub>) {
    let mut served = hub.fetch.served();
    // The first block announced is the one after the served head when the feed starts.
    let mut next: Option<u64> = None;
    loop {
        let head = *served.borrow_and_update();
        if head > 0 {
            let mut n = *next.get_or_insert(head + 1);
            while n <= head {
                let ev = block(&hub, n).await;
                hub.polling.ingest(&ev, hub.cfg.max_filter_changes);
                hub.subscribers.block(&ev, hub.cfg.send_queue, &hub.counters);
                hub.counters.blocks.inc();
                n += 1;
                let now = *served.borrow();
                hub.counters
                    .head_lag
                    .set(i64::try_from(now.saturating_sub(n - 1)).unwrap_or(i64::MAX));
            }
            next = Some(n);
        }
        if served.changed().await.is_err() {
            return;
        }
    }
}

/// Block `n` with the data kinds wanted now, retried until every kind is read: the block is
/// at or below the served head, so in-sync nodes have it; a failure is a passing fault.
async fn block(hub: &Hub, n: u64) -> BlockEvent {
    let d = &hub.demand;
    let klay = d.wants(Want::KlayHeads) || d.wants(Want::Hashes);
    let eth = d.wants(Want::EthHeads);
    let logs = d.wants(Want::Logs);
    let num = format!("\"{n:#x}\"");
    let mut backoff = Duration::from_millis(100);
    loop {
        let get = |kind: &'static str, method: &'static str, params: String, on: bool| async move {
            if !on {
                return Ok(None);
            }
            hub.counters.fetches.get_or_create(&KindLabels { kind }).inc();
            match hub.fetch.call(method, params).await {
                Ok(b) if &b[..] == b"null" => Err(format!("{method} of block {n}: null")),
                Ok(b) => Ok(Some(b)),
                Err(e) => Err(format!("{method} of block {n}: {e}")),
            }
        };
        let (k, e, l) = tokio::join!(
            get("klay_header", "klay_getHeaderByNumber", format!("[{num}]"), klay),
            get("eth_header", "eth_getHeaderByNumber", format!("[{num}]"), eth),
            get(
                "logs",
                "klay_getLogs",
                format!("[{{\"fromBlock\":{num},\"toBlock\":{num}}}]"),
                logs
            ),
        );
        let parsed = l.and_then(|l| l.map(|b| parse_logs(&b).map(Arc::new)).transpose());
        match (k, e, parsed) {
            (Ok(klay_header), Ok(eth_header), Ok(logs)) => {
                let hash = klay_header.as_ref().or(eth_header.as_ref()).and_then(hash_of);
                return BlockEvent {
                    number: n,
                    hash,
                    klay_header,
                    eth_header,
                    logs,
                };
            }
            (k, e, l) => {
                let why = [k.err(), e.err(), l.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(block = n, error = %why, "event feed: retrying a block");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn hash_of(header: &Bytes) -> Option<String> {
    #[derive(Deserialize)]
    struct H {
        hash: String,
    }
    serde_json::from_slice::<H>(header).ok().map(|h| h.hash)
}

/// Pending tx hashes already announced (bounded: the oldest are forgotten first).
#[derive(Debug, Default)]
struct Seen {
    set: HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
}

/// How many pending hashes are remembered for de-duplication.
const SEEN_MAX: usize = 100_000;

impl Seen {
    fn first_time(&mut self, h: &Arc<str>) -> bool {
        if !self.set.insert(h.clone()) {
            return false;
        }
        self.order.push_back(h.clone());
        if self.order.len() > SEEN_MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Follows one node's `newPendingTransactions` while anyone wants pending hashes.
async fn watch_pending(hub: Arc<Hub>, node: super::NodeWs, seen: Arc<std::sync::Mutex<Seen>>) {
    const SUBSCRIBE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"klay_subscribe","params":["newPendingTransactions"]}"#;
    loop {
        if !hub.demand.wants(Want::Pending) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let Ok(mut ws) = crate::cluster::connect_ws(&node.url, &node.tls, Duration::from_secs(3)).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if ws.send(Message::text(SUBSCRIBE)).await.is_err() {
            continue;
        }
        while hub.demand.wants(Want::Pending) {
            let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
                Ok(_) => break,
            };
            let Some(hash) = pending_hash(msg.as_bytes()) else {
                continue;
            };
            let hash: Arc<str> = Arc::from(hash.to_ascii_lowercase());
            let fresh = seen.lock().map(|mut s| s.first_time(&hash)).unwrap_or(false);
            if fresh {
                hub.polling.ingest_pending(&hash, hub.cfg.max_filter_changes);
                hub.subscribers.pending(&hash, hub.cfg.send_queue, &hub.counters);
            }
        }
        let _ = ws.close(None).await;
    }
}

fn pending_hash(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct N {
        params: P,
    }
    #[derive(Deserialize)]
    struct P {
        result: String,
    }
    serde_json::from_slice::<N>(body).ok().map(|n| n.params.result)
}

/// Removes polling filters nobody polled for the idle timeout.
async fn sweep(hub: Arc<Hub>) {
    let idle = hub.idle_timeout();
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(15));
    loop {
        tokio::time::sleep(every).await;
        for (owner, want) in hub.polling.sweep(idle) {
            hub.drop_filter(&owner, want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_hashes_are_new_once() {
        let mut s = Seen::default();
        let a: Arc<str> = Arc::from("0xa");
        assert!(s.first_time(&a));
        assert!(!s.first_time(&a));
        assert_eq!(
            pending_hash(
                br#"{"jsonrpc":"2.0","method":"klay_subscription","params":{"subscription":"0x1","result":"0xAB"}}"#
            ),
            Some("0xAB".into())
        );
        assert_eq!(pending_hash(br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#), None);
    }
}
