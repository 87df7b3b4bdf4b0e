//! The networks kengate fronts — one [`Gateway`] per cluster (e.g. cypress and baobab) —
//! and how a request picks one: by path `/v1/{name}`, by the `x-chain-id` header (the KAS
//! convention, a decimal or `0x` chain id), or as the only network configured.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use thiserror::Error;
use tokio::sync::watch;

use crate::events::Hub;
use crate::jsonrpc::{parse_quantity, UpstreamReply};
use crate::proxy::Gateway;

/// The path segment of the KAS Node API (`{url}/v1/klaytn`).
pub const KAS_PATH: &str = "klaytn";

/// One cluster behind kengate.
#[derive(Debug)]
pub struct Network {
    /// Path segment and label.
    pub name: String,
    /// Configured, or learned from the nodes; 0 while unknown.
    chain_id: AtomicU64,
    /// Its request pipeline, replaced whole by a reload.
    pub current: Arc<Current>,
    /// Its subscriptions and polling filters.
    pub events: Arc<Hub>,
}

/// A network's gateway as of now: a reload swaps in a new one (new nodes, methods, settings)
/// while calls in flight finish on the one they started with. The served head clients and
/// the event feed follow is the network's, and never goes back across a swap.
#[derive(Debug)]
pub struct Current {
    gw: ArcSwap<Gateway>,
    served: watch::Sender<u64>,
}

impl Current {
    /// Starts with `gw`.
    pub fn new(gw: Arc<Gateway>) -> Arc<Self> {
        let served = watch::channel(gw.cluster().view().served_head).0;
        Arc::new(Self {
            gw: ArcSwap::new(gw),
            served,
        })
    }

    /// The gateway a new call uses.
    pub fn gw(&self) -> Arc<Gateway> {
        self.gw.load_full()
    }

    /// Puts `next` in place; returns the one it replaces.
    pub fn swap(&self, next: Arc<Gateway>) -> Arc<Gateway> {
        self.gw.swap(next)
    }

    /// Carries `gw`'s served head into the network's (only forward); runs until aborted.
    pub fn follow(self: &Arc<Self>, gw: &Gateway) -> tokio::task::JoinHandle<()> {
        let (me, mut rx) = (self.clone(), gw.cluster().tracker.subscribe_served());
        tokio::spawn(async move {
            loop {
                let head = *rx.borrow_and_update();
                me.served.send_if_modified(|s| {
                    let raise = head > *s;
                    *s = (*s).max(head);
                    raise
                });
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// The event feed reads through whichever gateway is current.
impl crate::events::Fetch for Current {
    fn call(
        &self,
        method: &'static str,
        params: String,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + '_>> {
        Box::pin(async move {
            let gw = self.gw();
            crate::events::Fetch::call(&*gw, method, params).await
        })
    }

    fn served(&self) -> watch::Receiver<u64> {
        self.served.subscribe()
    }

    fn dialect(&self) -> crate::methods::Dialect {
        self.gw().cluster().dialect()
    }
}

impl Network {
    /// A network; `chain_id` as configured (learned later when `None`).
    pub fn new(name: String, chain_id: Option<u64>, current: Arc<Current>, events: Arc<Hub>) -> Self {
        Self {
            name,
            chain_id: AtomicU64::new(chain_id.unwrap_or(0)),
            current,
            events,
        }
    }

    /// The gateway a new call uses.
    pub fn gw(&self) -> Arc<Gateway> {
        self.current.gw()
    }

    /// The chain id, once known.
    pub fn chain_id(&self) -> Option<u64> {
        Some(self.chain_id.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }
}

/// Why a request matched no network: answered with a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetworkError {
    /// `/v1/{name}` names no configured network.
    #[error("unknown network {0:?}")]
    UnknownName(String),
    /// `x-chain-id` matches no configured network.
    #[error("no network with chain id {0} is served here")]
    UnknownChainId(u64),
    /// `x-chain-id` is not a number.
    #[error("x-chain-id must be a decimal or 0x-hex chain id")]
    BadChainId,
    /// `x-chain-id` contradicts the network named in the path.
    #[error("x-chain-id {given} does not match network {network} (chain id {expected})")]
    Mismatch {
        /// The header's chain id.
        given: u64,
        /// The path's network.
        network: String,
        /// Its chain id.
        expected: u64,
    },
    /// Several networks and nothing picks one.
    #[error("several networks are served here: use /v1/{{network}} ({names}) or the x-chain-id header")]
    Ambiguous {
        /// The choices.
        names: String,
    },
}

/// Every network, in configuration order.
#[derive(Debug)]
pub struct Networks {
    list: Vec<Network>,
}

impl Networks {
    /// From built networks (at least one).
    pub fn new(list: Vec<Network>) -> Self {
        Self { list }
    }

    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &Network> {
        self.list.iter()
    }

    /// The first configured.
    pub fn first(&self) -> Option<&Network> {
        self.list.first()
    }

    /// By path name.
    pub fn by_name(&self, name: &str) -> Option<&Network> {
        self.list.iter().find(|n| n.name == name)
    }

    /// Picks the network of a request from its path segment and `x-chain-id` header.
    pub fn select(&self, path_name: Option<&str>, x_chain_id: Option<&[u8]>) -> Result<&Network, NetworkError> {
        let chain = match x_chain_id {
            None => None,
            Some(raw) => Some(parse_chain_id(raw).ok_or(NetworkError::BadChainId)?),
        };
        // `/v1/klaytn` is where caver-js-ext-kas posts whatever the chain: unless a network
        // has that name, it picks nothing and `x-chain-id` decides.
        let path_name = path_name.filter(|n| *n != KAS_PATH || self.by_name(n).is_some());
        if let Some(name) = path_name {
            let net = self
                .by_name(name)
                .ok_or_else(|| NetworkError::UnknownName(name.to_owned()))?;
            return match (chain, net.chain_id()) {
                (Some(given), Some(expected)) if given != expected => Err(NetworkError::Mismatch {
                    given,
                    network: net.name.clone(),
                    expected,
                }),
                _ => Ok(net),
            };
        }
        if let Some(given) = chain {
            if let Some(net) = self.list.iter().find(|n| n.chain_id() == Some(given)) {
                return Ok(net);
            }
            // One network whose chain id is not known yet: let the nodes decide.
            return match self.list.as_slice() {
                [only] if only.chain_id().is_none() => Ok(only),
                _ => Err(NetworkError::UnknownChainId(given)),
            };
        }
        match self.list.as_slice() {
            [only] => Ok(only),
            all => Err(NetworkError::Ambiguous {
                names: all.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Learns each network's chain id from its nodes (`klay_chainID`) where not configured,
    /// and warns when a configured one disagrees with the nodes.
    pub fn spawn_chain_id_probes(self: &Arc<Self>, timeout: Duration) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.list.len())
            .map(|i| {
                let nets = self.clone();
                tokio::spawn(async move {
                    let Some(net) = nets.list.get(i) else { return };
                    loop {
                        if let Some(id) = probe_chain_id(&net.gw(), timeout).await {
                            match net.chain_id() {
                                None => {
                                    net.chain_id.store(id, Ordering::Relaxed);
                                    tracing::info!(network = %net.name, chain_id = id, "learned the chain id");
                                }
                                Some(cfg) if cfg != id => tracing::warn!(
                                    network = %net.name,
                                    configured = cfg,
                                    nodes = id,
                                    "the configured chain id differs from the nodes' klay_chainID"
                                ),
                                Some(_) => {}
                            }
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            })
            .collect()
    }
}

async fn probe_chain_id(gw: &Gateway, timeout: Duration) -> Option<u64> {
    let body = bytes::Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"klay_chainID","params":[]}"#);
    for node in &gw.cluster().nodes {
        let Ok(reply) = node.post(&gw.cluster().client, body.clone(), timeout).await else {
            continue;
        };
        let id = UpstreamReply::parse(&reply)
            .ok()
            .and_then(|r| r.result)
            .and_then(|r| crate::jsonrpc::json_str(r.get()))
            .and_then(parse_quantity);
        if id.is_some() {
            return id;
        }
    }
    None
}

/// `8217`, `0x2019` → 8217.
pub fn parse_chain_id(raw: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if s.starts_with("0x") || s.starts_with("0X") {
        return parse_quantity(&s.to_ascii_lowercase());
    }
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids() {
        assert_eq!(parse_chain_id(b"8217"), Some(8217));
        assert_eq!(parse_chain_id(b" 1001 "), Some(1001));
        assert_eq!(parse_chain_id(b"0x2019"), Some(8217));
        assert_eq!(parse_chain_id(b"0X3E9"), Some(1001));
        for bad in [&b""[..], b"abc", b"-1", b"0x", b"\xff", b"99999999999999999999999"] {
            assert_eq!(parse_chain_id(bad), None, "{bad:?}");
        }
    }
}
