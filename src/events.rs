//! Subscriptions (`*_subscribe` over WebSocket) and kengate-owned polling filters, generated
//! from the **served head**: block N is announced only once every in-sync node has it, in
//! block order, each block once per subscriber, with no gaps, whatever nodes join, lag or
//! die. One upstream fetch per block per data kind (Klaytn header, Ethereum header, logs),
//! whatever the number of subscribers.
//!
//! ```text
//! served head ─► feed: block N ─► fetch (routing core) ─► BlockEvent ─┬─► fan-out: one pass over the live subscriptions ─► connection queues
//!                                                                    └─► polling filters (buffered changes)
//! node pools ─► pending watcher (newPendingTransactions, de-duplicated) ─► the same two
//! ```
//!
//! It talks to the rest of kengate through [`Fetch`] (how to read through the routing core)
//! and [`EventOp`]s; it knows nothing of HTTP, of the proxy or of access keys beyond an
//! owner label.

mod fanout;
mod feed;
pub mod filter;
mod polling;
mod session;

pub use fanout::Overflow;
pub use feed::spawn;
pub use session::Session;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::config::EventsConfig;
use crate::jsonrpc::{codes, split_params, RpcError};
use crate::methods::EventOp;

/// How the event feed reads through the routing core (implemented by the proxy's gateway).
pub trait Fetch: Send + Sync + 'static {
    /// One JSON-RPC call, routed and retried like a client's; its `result` JSON, or why not.
    fn call(
        &self,
        method: &'static str,
        params: String,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + '_>>;
    /// Follows the served head.
    fn served(&self) -> watch::Receiver<u64>;
    /// The node software's rules the network follows (filter bounds differ).
    fn dialect(&self) -> crate::methods::Dialect;
}

/// The namespace a call came in, which decides notification and header formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ns {
    /// `klay_`: Klaytn header objects.
    Klay,
    /// `kaia_`: the same objects as `klay_`.
    Kaia,
    /// `eth_`: Ethereum header objects.
    Eth,
}

impl Ns {
    /// From a method name's prefix.
    pub fn of(method: &str) -> Ns {
        if method.starts_with("eth_") {
            Ns::Eth
        } else if method.starts_with("kaia_") {
            Ns::Kaia
        } else {
            Ns::Klay
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Ns::Klay => "klay",
            Ns::Kaia => "kaia",
            Ns::Eth => "eth",
        }
    }
}

/// One block as subscribers see it: the data kinds someone wanted when it was fetched.
#[derive(Debug)]
pub struct BlockEvent {
    /// Block number.
    pub number: u64,
    /// Block hash (`0x…`), when a header was fetched.
    pub hash: Option<String>,
    /// `klay_getHeaderByNumber` (what `klay_`/`kaia_` `newHeads` send).
    pub klay_header: Option<Bytes>,
    /// `eth_getHeaderByNumber` (what `eth_` `newHeads` sends).
    pub eth_header: Option<Bytes>,
    /// The block's logs in log-index order.
    pub logs: Option<Arc<Vec<filter::Log>>>,
}

/// How many live consumers want each data kind (the feed fetches only those).
#[derive(Debug, Default)]
struct Demand {
    klay_heads: AtomicUsize,
    eth_heads: AtomicUsize,
    logs: AtomicUsize,
    hashes: AtomicUsize,
    pending: AtomicUsize,
}

/// Which demand counter a consumer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    KlayHeads,
    EthHeads,
    Logs,
    Hashes,
    Pending,
    Nothing,
}

impl Demand {
    fn counter(&self, w: Want) -> Option<&AtomicUsize> {
        match w {
            Want::KlayHeads => Some(&self.klay_heads),
            Want::EthHeads => Some(&self.eth_heads),
            Want::Logs => Some(&self.logs),
            Want::Hashes => Some(&self.hashes),
            Want::Pending => Some(&self.pending),
            Want::Nothing => None,
        }
    }

    fn wants(&self, w: Want) -> bool {
        self.counter(w).is_some_and(|c| c.load(Ordering::SeqCst) > 0)
    }
}

/// Labels of upstream fetches by data kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Event counters, registered in the network's metrics registry.
#[derive(Debug, Clone, Default)]
pub struct EventCounters {
    subscriptions: Gauge,
    filters: Gauge,
    blocks: Counter,
    notifications: Counter,
    fetches: Family<KindLabels, Counter>,
    slow_closes: Counter,
    head_lag: Gauge,
}

impl EventCounters {
    fn register(&self, r: &mut Registry) {
        r.register(
            "subscriptions",
            "Live WebSocket subscriptions",
            self.subscriptions.clone(),
        );
        r.register(
            "polling_filters",
            "Live kengate-owned polling filters",
            self.filters.clone(),
        );
        r.register(
            "event_blocks",
            "Blocks announced to subscribers and filters",
            self.blocks.clone(),
        );
        r.register(
            "notifications",
            "Subscription notifications queued to connections",
            self.notifications.clone(),
        );
        r.register(
            "event_fetches",
            "Upstream calls of the event feed, by data kind (one per block per kind)",
            self.fetches.clone(),
        );
        r.register(
            "slow_subscriber_closes",
            "WebSocket connections closed because their send queue overflowed",
            self.slow_closes.clone(),
        );
        r.register(
            "event_feed_lag_blocks",
            "Blocks between the served head and the last block announced",
            self.head_lag.clone(),
        );
    }
}

/// One network's event hub.
pub struct Hub {
    cfg: EventsConfig,
    fetch: Arc<dyn Fetch>,
    /// Live subscriptions (the fan-out).
    subscribers: fanout::Subscribers,
    demand: Demand,
    polling: polling::Filters,
    /// Subscriptions + filters per owner (access key id; "" = anonymous). A std Mutex: held
    /// for an increment, never across `.await`.
    per_owner: Mutex<HashMap<String, usize>>,
    /// Node WebSockets the pending watcher subscribes to: URL and TLS; replaced when a reload
    /// changes the network's nodes (the watchers follow it).
    node_ws: tokio::sync::watch::Sender<Arc<Vec<NodeWs>>>,
    counters: EventCounters,
}

/// A node's WebSocket endpoint: where the pending watcher connects, and with what TLS.
#[derive(Debug, Clone)]
pub struct NodeWs {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// TLS for `wss://`.
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Hub {
    /// The node software's rules the network follows.
    pub(crate) fn dialect(&self) -> crate::methods::Dialect {
        self.fetch.dialect()
    }

    /// A hub reading through `fetch`, registering its metrics in `registry`.
    pub fn new(cfg: EventsConfig, fetch: Arc<dyn Fetch>, node_ws: Vec<NodeWs>, registry: &mut Registry) -> Arc<Hub> {
        let counters = EventCounters::default();
        counters.register(registry);
        Arc::new(Hub {
            cfg,
            fetch,
            subscribers: fanout::Subscribers::default(),
            demand: Demand::default(),
            polling: polling::Filters::default(),
            per_owner: Mutex::new(HashMap::new()),
            node_ws: tokio::sync::watch::Sender::new(Arc::new(node_ws)),
            counters,
        })
    }

    /// The network's node WebSockets after a reload: the pending watchers move to them (kept as
    /// they are when the URLs did not change).
    pub fn set_node_ws(&self, list: Vec<NodeWs>) {
        self.node_ws.send_if_modified(|now| {
            let same = now.len() == list.len() && now.iter().zip(&list).all(|(a, b)| a.url == b.url);
            if !same {
                *now = Arc::new(list);
            }
            !same
        });
    }

    /// Handles one event method. `session` is the WebSocket connection (`None` over HTTP);
    /// `owner` the caller's access key id (filters and subscriptions are scoped to it).
    pub async fn call(
        self: &Arc<Self>,
        op: EventOp,
        method: &str,
        params: Option<crate::jsonrpc::RawJson<'_>>,
        owner: Option<&str>,
        session: Option<&Session>,
    ) -> Result<String, RpcError> {
        let ns = Ns::of(method);
        let args = split_params(params).map_err(|_| invalid("non-array args"))?;
        let owner = owner.unwrap_or("");
        match op {
            EventOp::Subscribe => {
                let Some(session) = session else {
                    return Err(RpcError::new(codes::SERVER_ERROR, "notifications not supported"));
                };
                session.subscribe(self, ns, &args, owner)
            }
            EventOp::Unsubscribe => {
                let id = string_arg(&args, 0)?;
                match session.map(|s| s.unsubscribe(&id)) {
                    Some(true) => Ok("true".into()),
                    _ => Err(RpcError::new(codes::SERVER_ERROR, "subscription not found")),
                }
            }
            EventOp::NewBlockFilter => self.new_filter(polling::Kind::Blocks, owner),
            EventOp::NewPendingTransactionFilter => self.new_filter(polling::Kind::Pending, owner),
            EventOp::NewFilter => {
                let raw = args
                    .first()
                    .ok_or_else(|| invalid("missing value for required argument 0"))?;
                let crit = filter::Criteria::parse(raw).map_err(|e| invalid(&format!("invalid argument 0: {e}")))?;
                crit.check(self.dialect())
                    .map_err(|e| RpcError::new(codes::SERVER_ERROR, e))?;
                self.new_filter(polling::Kind::Logs(Box::new(crit), (*raw).to_owned()), owner)
            }
            EventOp::FilterChanges => {
                let id = string_arg(&args, 0)?;
                self.polling.changes(&id, owner).ok_or_else(filter_not_found)
            }
            EventOp::FilterLogs => {
                let id = string_arg(&args, 0)?;
                let crit = self.polling.criteria(&id, owner).ok_or_else(filter_not_found)?;
                // The filter's whole range, read like a client's getLogs (served-head bounds).
                let method = if ns == Ns::Eth { "eth_getLogs" } else { "klay_getLogs" };
                let answer = self.fetch.call(method, format!("[{crit}]")).await;
                // A node's refusal (its error object) is the client's answer, unchanged.
                let bytes = answer.map_err(|e| {
                    serde_json::from_str::<NodeError>(&e)
                        .map(|n| RpcError::new(n.code, n.message))
                        .unwrap_or_else(|_| RpcError::new(codes::SERVER_ERROR, e))
                })?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            EventOp::Uninstall => {
                let id = string_arg(&args, 0)?;
                let removed = self.polling.remove(&id, owner);
                if let Some(want) = removed {
                    self.drop_filter(owner, want);
                }
                Ok(removed.is_some().to_string())
            }
        }
    }

    fn new_filter(&self, kind: polling::Kind, owner: &str) -> Result<String, RpcError> {
        self.reserve(owner)?;
        let want = kind.want();
        let id = self.polling.create(kind, owner, &self.demand, want);
        self.counters
            .filters
            .set(i64::try_from(self.polling.len()).unwrap_or(i64::MAX));
        Ok(format!("\"{id}\""))
    }

    /// Counts one subscription or filter against its owner's limit.
    fn reserve(&self, owner: &str) -> Result<(), RpcError> {
        let mut m = self.per_owner.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(owner.to_owned()).or_insert(0);
        if *n >= self.cfg.max_per_key {
            return Err(RpcError::new(
                codes::LIMIT_EXCEEDED,
                format!(
                    "too many subscriptions and filters for this access key (events.max_per_key = {})",
                    self.cfg.max_per_key
                ),
            ));
        }
        *n += 1;
        Ok(())
    }

    fn release(&self, owner: &str) {
        let mut m = self.per_owner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(owner);
            }
        }
    }

    /// A filter is gone (uninstalled or expired): its demand and its owner's count.
    fn drop_filter(&self, owner: &str, want: Want) {
        if let Some(c) = self.demand.counter(want) {
            c.fetch_sub(1, Ordering::SeqCst);
        }
        self.release(owner);
        self.counters
            .filters
            .set(i64::try_from(self.polling.len()).unwrap_or(i64::MAX));
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.filter_idle_timeout_ms)
    }
}

/// A node's JSON-RPC error object.
#[derive(serde::Deserialize)]
struct NodeError {
    code: i64,
    message: String,
}

fn invalid(msg: &str) -> RpcError {
    RpcError::new(codes::INVALID_PARAMS, msg)
}

fn filter_not_found() -> RpcError {
    RpcError::new(codes::SERVER_ERROR, "filter not found")
}

/// Argument `i` as a string (a filter or subscription id), or the node's error for it.
fn string_arg(args: &[&str], i: usize) -> Result<String, RpcError> {
    let raw = args
        .get(i)
        .ok_or_else(|| invalid(&format!("missing value for required argument {i}")))?;
    serde_json::from_str::<String>(raw).map_err(|_| {
        let what = match raw.as_bytes().first() {
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b't' | b'f') => "bool",
            _ => "number",
        };
        invalid(&format!(
            "invalid argument {i}: json: cannot unmarshal {what} into Go value of type rpc.ID"
        ))
    })
}

/// A fresh unguessable id: `0x` + 32 hex digits (128 random bits), like a node's.
fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // No OS randomness: fall back to a seeded PRNG (still unique per process).
        let mut rng = fastrand::Rng::new();
        b.iter_mut().for_each(|x| *x = rng.u8(..));
    }
    let mut s = String::with_capacity(34);
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}
