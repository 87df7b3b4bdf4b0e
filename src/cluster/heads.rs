//! Background head tracking per node: a WS `newHeads` subscription where a WS URL is known,
//! and HTTP `klay_blockNumber` polling always (fallback, cross-check and liveness probe,
//! and the first contact that finds out what software the node runs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::tracker::HeadSource;
use super::{Cluster, Node};
use crate::config::ClusterConfig;
use crate::jsonrpc::parse_quantity;

const BLOCK_NUMBER: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[]}"#;
const SUBSCRIBE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"klay_subscribe","params":["newHeads"]}"#;
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Starts the poll (and WS) loop of every node. The handles abort the loops when dropped
/// by the caller's task set.
pub fn spawn_head_watchers(cluster: &Arc<Cluster>, cfg: &ClusterConfig) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for node in &cluster.nodes {
        let poll = Duration::from_millis(cfg.poll_interval_ms);
        let timeout = Duration::from_millis(cfg.probe_timeout_ms);
        tasks.push(tokio::spawn(poll_loop(cluster.clone(), node.clone(), poll, timeout)));
        if let (Some(url), true) = (node.ws.clone(), cfg.ws_heads) {
            tasks.push(tokio::spawn(ws_loop(cluster.clone(), node.clone(), url)));
        }
    }
    tasks
}

async fn poll_loop(cluster: Arc<Cluster>, node: Arc<Node>, every: Duration, timeout: Duration) {
    let mut backoff = every;
    loop {
        let res = node
            .post(&cluster.client, Bytes::from_static(BLOCK_NUMBER), timeout)
            .await;
        let mut head = match &res {
            Ok(body) => parse_hex_result(body).ok_or_else(|| "the probe's answer is not a block number".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        // What it runs is known before its first head counts (and after it was down).
        if head.is_ok() && node.software.get().is_none() {
            match super::software::probe(&node, &cluster.client, timeout).await {
                Ok(d) => cluster.note_software(&node, Some(d)),
                Err(e) => head = Err(format!("rpc_modules: {e}")),
            }
        }
        match head {
            Ok(head) => {
                cluster.tracker.observe_head(node.id, head, HeadSource::Poll);
                node.clear_error();
                backoff = every;
            }
            Err(reason) => {
                cluster.tracker.observe_down(node.id, &reason);
                // It may come back running other software (an upgrade).
                cluster.note_software(&node, None);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Consecutive failures after which a broken subscription is reported at warn (one blip is
/// normal: a node restarting).
const WS_WARN_AFTER: u32 = 3;

async fn ws_loop(cluster: Arc<Cluster>, node: Arc<Node>, url: String) {
    let mut backoff = Duration::from_millis(250);
    let mut failures = 0u32;
    loop {
        let res = follow_new_heads(&cluster, &node, &url).await;
        node.set_ws_subscribed(false);
        match res {
            Ok(()) => {
                backoff = Duration::from_millis(250);
                failures = 0;
                node.set_ws_error(None);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                // At warn when it persists (then once a minute at the 4 s backoff), else debug;
                // `/status` shows it at once. Polling carries on meanwhile.
                if failures == WS_WARN_AFTER || (failures > WS_WARN_AFTER && failures.is_multiple_of(15)) {
                    tracing::warn!(node = %node.name, failures, error = %e, "newHeads subscription keeps failing; following the head by polling");
                } else {
                    tracing::debug!(node = %node.name, error = %e, "newHeads subscription ended");
                }
                node.set_ws_error(Some(e));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn follow_new_heads(cluster: &Cluster, node: &Node, url: &str) -> Result<(), String> {
    let mut ws = super::tls::connect_ws(url, node.ws_tls(), Duration::from_secs(3)).await?;
    ws.send(Message::text(SUBSCRIBE)).await.map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        let text = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        if let Some(head) = parse_head_notification(text.as_bytes()) {
            // Counts once polling has found out what the node runs.
            if node.software.get().is_some() {
                cluster.tracker.observe_head(node.id, head, HeadSource::Subscription);
            }
        } else if text.contains("\"error\"") {
            return Err(format!("subscribe refused: {text}"));
        } else {
            // The reply to klay_subscribe: the subscription id.
            node.set_ws_subscribed(true);
            node.set_ws_error(None);
        }
    }
    Ok(())
}

/// Reads `{"result":"0x.."}` as a number.
pub(crate) fn parse_hex_result(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct R<'a> {
        #[serde(borrow)]
        result: Option<&'a str>,
    }
    let r: R<'_> = serde_json::from_slice(body).ok()?;
    parse_quantity(r.result?)
}

/// Reads the block number of a `newHeads` notification.
fn parse_head_notification(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Notification<'a> {
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        result: Option<Header<'a>>,
    }
    #[derive(Deserialize)]
    struct Header<'a> {
        #[serde(borrow)]
        number: Option<&'a str>,
    }
    let n: Notification<'_> = serde_json::from_slice(body).ok()?;
    parse_quantity(n.params?.result?.number?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        assert_eq!(
            parse_hex_result(br#"{"jsonrpc":"2.0","id":1,"result":"0x1f"}"#),
            Some(31)
        );
        assert_eq!(parse_hex_result(br#"{"jsonrpc":"2.0","id":1,"error":{}}"#), None);
        assert_eq!(parse_hex_result(b"garbage"), None);
        let n = br#"{"jsonrpc":"2.0","method":"klay_subscription","params":{"subscription":"0xab","result":{"number":"0x10","hash":"0x00"}}}"#;
        assert_eq!(parse_head_notification(n), Some(16));
        assert_eq!(
            parse_head_notification(br#"{"jsonrpc":"2.0","id":1,"result":"0xab"}"#),
            None
        );
    }
}
