//! What software each node runs — Klaytn v1 or Kaia v2, read from its `rpc_modules` — and
//! the network's method dialect that follows from it (`methods::Dialect`).
//!
//! A network speaks Kaia (sends `kaia_x` upstream as sent, uses the v2 method table) only
//! while every node whose software is known is a Kaia node; one Klaytn node (a cluster
//! half-way through an upgrade) makes it speak Klaytn, whose `klay_` spelling both serve.
//! A node's software is probed before its first head counts, and again after it was down
//! (it may come back upgraded), so no call reaches a node in a dialect it does not speak.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::{Node, UpstreamClient, UpstreamErrorKind};
use crate::methods::Dialect;

const MODULES: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"rpc_modules","params":[]}"#;

/// A dialect, or not known yet, in one atomic byte.
#[derive(Debug, Default)]
pub struct DialectCell(AtomicU8);

impl DialectCell {
    /// The value, `None` while not known.
    pub fn get(&self) -> Option<Dialect> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(Dialect::Klaytn),
            2 => Some(Dialect::Kaia),
            _ => None,
        }
    }

    /// Stores a value; returns whether it changed.
    pub fn set(&self, d: Option<Dialect>) -> bool {
        let v = match d {
            None => 0,
            Some(Dialect::Klaytn) => 1,
            Some(Dialect::Kaia) => 2,
        };
        self.0.swap(v, Ordering::Relaxed) != v
    }
}

/// Asks a node which namespaces it serves. A node that answers but not with a module list
/// (an error, an HTTP refusal from a proxy in front of it that allows only some methods)
/// counts as Klaytn: the spelling every node understands. `Err` only when the node did not
/// answer at all (it is down, whatever it runs).
pub async fn probe(node: &Node, client: &UpstreamClient, timeout: Duration) -> Result<Dialect, String> {
    match node.post(client, Bytes::from_static(MODULES), timeout).await {
        Ok(body) => Ok(from_modules(&body)),
        Err(e) if matches!(e.kind, UpstreamErrorKind::Connect | UpstreamErrorKind::Timeout) => Err(e.to_string()),
        Err(_) => Ok(Dialect::Klaytn),
    }
}

/// Reads an `rpc_modules` reply: Kaia when it lists the `kaia` namespace.
fn from_modules(body: &[u8]) -> Dialect {
    #[derive(Deserialize)]
    struct Reply {
        result: Option<std::collections::HashMap<String, serde::de::IgnoredAny>>,
    }
    match serde_json::from_slice::<Reply>(body) {
        Ok(Reply { result: Some(m) }) if m.contains_key("kaia") => Dialect::Kaia,
        _ => Dialect::Klaytn,
    }
}

/// The network's dialect from its nodes' (unknown ones aside): Kaia only when at least one
/// node is known and every known node is a Kaia node.
pub fn network_dialect(nodes: impl IntoIterator<Item = Option<Dialect>>) -> Dialect {
    let mut kaia = false;
    for d in nodes.into_iter().flatten() {
        match d {
            Dialect::Klaytn => return Dialect::Klaytn,
            Dialect::Kaia => kaia = true,
        }
    }
    match kaia {
        true => Dialect::Kaia,
        false => Dialect::Klaytn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_module_lists() {
        let kaia =
            br#"{"jsonrpc":"2.0","id":1,"result":{"admin":"1.0","eth":"1.0","kaia":"1.0","net":"1.0","rpc":"1.0"}}"#;
        let klaytn = br#"{"jsonrpc":"2.0","id":1,"result":{"eth":"1.0","klay":"1.0","net":"1.0","rpc":"1.0"}}"#;
        assert_eq!(from_modules(kaia), Dialect::Kaia);
        assert_eq!(from_modules(klaytn), Dialect::Klaytn);
        assert_eq!(
            from_modules(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#),
            Dialect::Klaytn
        );
        assert_eq!(from_modules(b"<html>"), Dialect::Klaytn);
    }

    #[test]
    fn one_klaytn_node_makes_the_network_speak_klaytn() {
        use Dialect::{Kaia, Klaytn};
        assert_eq!(network_dialect([]), Klaytn);
        assert_eq!(network_dialect([None, None]), Klaytn);
        assert_eq!(network_dialect([Some(Kaia), None]), Kaia);
        assert_eq!(network_dialect([Some(Kaia), Some(Kaia)]), Kaia);
        assert_eq!(network_dialect([Some(Kaia), Some(Klaytn), Some(Kaia)]), Klaytn);
    }

    #[test]
    fn cell_reports_changes() {
        let c = DialectCell::default();
        assert_eq!(c.get(), None);
        assert!(c.set(Some(Dialect::Kaia)));
        assert!(!c.set(Some(Dialect::Kaia)));
        assert_eq!(c.get(), Some(Dialect::Kaia));
        assert!(c.set(None));
        assert_eq!(c.get(), None);
    }
}
