//! kengate: one consistent JSON-RPC endpoint in front of a cluster of Klaytn/Kaia endpoint
//! nodes (KENs) that sit at different heights.
//!
//! # Layout
//! - [`config`]: `proxy.toml` + CLI node list, validated.
//! - [`jsonrpc`]: wire types only — borrowed requests, raw responses, error codes.
//! - [`methods`]: THE method table — class, block-param position, default policy.
//! - [`cluster`]: node clients, head tracking, health; publishes an immutable `ClusterView`.
//! - [`routing`]: pure rules — (call, class, view) → plan; node choice per attempt.
//! - [`proxy`]: the per-call pipeline and retries; transport-agnostic.
//! - [`server`]: HTTP/WS accept loop, limits, admin endpoints; the only module that knows HTTP.
//!   Nothing depends on it.
//! - [`access`]: client IP, access keys, rate limits, key management; speaks its own types.
//! - [`rawtx`]: raw transaction decoding — pure and total.
//! - [`txpath`]: the write path — sender home node, per-sender ordering, tx lifecycle.
//! - [`metrics`]: Prometheus registry.
//! - [`store`]: the storage interface (embedded SQLite); the tx lifecycle lives there.
//! - [`networks`]: one gateway per cluster; picks a request's network by path or chain id.
//! - [`events`]: subscriptions and kengate-owned polling filters, fed by the served head.
//! - [`reload`]: live reload of `proxy.toml` (SIGHUP and a file watch).
//! - [`index`]: the embedded index of blocks, txs and token transfers, and its query APIs.
//! - [`webhooks`]: webhooks fed by the served head and the tx records; outbox and delivery.
//!
//! Which module may import which: the table in `tests/it/architecture.rs` (no cycles).
//!
//! The hot path reads top to bottom: `server/front.rs` (a plain JSON-RPC POST, without hyper) →
//! `server::rpc_body` → `proxy::Gateway::handle_streaming` → `routing::plan` → `proxy::forward`
//! → `cluster::Node::fetch` → `cluster/relay.rs`.

// No `unwrap()` / `expect()` and no panicking index or slice outside tests: a failure is a
// typed error, never a panic (clippy.toml allows all three in `#[cfg(test)]` code).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod access;
pub mod cluster;
pub mod config;
pub mod events;
pub mod index;
pub mod jsonrpc;
pub mod methods;
pub mod metrics;
pub mod networks;
pub mod proxy;
pub mod rawtx;
pub mod reload;
pub mod routing;
pub mod server;
pub mod store;
pub mod txpath;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::access::{Access, AccessError};
use crate::cluster::{Cluster, Node, Tracker, UpstreamClient};
use crate::config::{Config, ConfigError, NetworkConfig, NodeConfig};
use crate::metrics::{Audit, Metrics};
use crate::networks::{Network, Networks};
use crate::proxy::Gateway;
use crate::server::ServerSettings;
use crate::store::{SqliteStore, Store, StoreError};
use crate::txpath::lifecycle::Lifecycle;

/// Why kengate could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Access control could not be set up (admin token, keys).
    #[error("access control: {0}")]
    Access(AccessError),
    /// The admin listener could not be bound.
    #[error("binding admin_listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("{path}: {source}")]
    Store {
        /// The store file.
        path: String,
        /// Why.
        source: StoreError,
    },
}

/// kengate assembled: every network's pipeline, the shared store and the metrics registry.
#[derive(Debug)]
pub struct App {
    /// The clusters and their gateways.
    pub networks: Arc<Networks>,
    /// Every metric (networks' under a `network` label).
    pub registry: prometheus_client::registry::Registry,
    /// The embedded store shared by all networks.
    pub store: Arc<dyn Store>,
    /// Access keys, client IPs, throttling (replaced whole by a reload).
    pub access: ArcSwap<Access>,
    /// The per-key request audit.
    pub audit: Arc<Audit>,
    /// The listener's counters (connections and bodies refused at the edge).
    pub edge: Arc<metrics::EdgeCounters>,
    /// The embedded index, when `[index] enabled`.
    pub index: Option<Arc<index::Index>>,
    /// The webhooks, when `[webhooks] enabled`.
    pub webhooks: Option<Arc<webhooks::Webhooks>>,
}

impl App {
    /// The access rules as of now.
    pub fn access(&self) -> Arc<Access> {
        self.access.load_full()
    }
}

/// Builds kengate from a config (validated here; no IO beyond opening the store; background
/// tasks not yet started).
pub fn build(config: &Config) -> Result<App, StartError> {
    config.validate()?;
    let store: Arc<dyn Store> =
        Arc::new(
            SqliteStore::open(&config.store.path).map_err(|source| StartError::Store {
                path: config.store.path.display().to_string(),
                source,
            })?,
        );
    let mut registry = metrics::root_registry();
    let audit = Arc::new(Audit::new(&mut registry));
    let edge = Arc::new(metrics::EdgeCounters::new(&mut registry));
    let networks = config.networks();
    let names: Vec<String> = networks.iter().map(|n| n.name.clone()).collect();
    let access = Access::new(&config.auth, &config.throttle, &names, store.clone()).map_err(StartError::Access)?;
    check_admin_surface(config, &access)?;
    let mut list = Vec::new();
    for (i, net) in networks.into_iter().enumerate() {
        let reg = metrics::network_registry(&mut registry, &net.name);
        let lifecycle = Lifecycle::new(store.clone(), &net.name, i == 0);
        let gw = build_gateway(config, &net, lifecycle, Registration::New(reg), audit.clone())?;
        let ws = node_ws(&gw);
        let current = networks::Current::new(gw);
        let events = events::Hub::new(config.events.clone(), current.clone(), ws, reg);
        list.push(Network::new(net.name, net.chain_id, current, events));
    }
    let index = match config.index.enabled {
        true => {
            let file = config.index.file(&config.store.path);
            let nets = list
                .iter()
                .map(|n| (n.name.clone(), n.current.clone() as Arc<dyn events::Fetch>))
                .collect();
            let ix = index::Index::new(&config.index, &file, nets, &mut registry).map_err(|e| StartError::Store {
                path: file.display().to_string(),
                source: store::StoreError::Engine(e.to_string()),
            })?;
            Some(Arc::new(ix))
        }
        false => None,
    };
    let webhooks = match config.webhooks.enabled {
        true => {
            let file = config.webhooks.file(&config.store.path);
            let fail = |e: String| StartError::Store {
                path: file.display().to_string(),
                source: store::StoreError::Engine(e),
            };
            // Receivers are verified against the system's trust roots.
            let tls =
                cluster::client_config(&config::NodeTlsConfig::default(), true).map_err(|e| fail(e.to_string()))?;
            let sender = webhooks::send::HttpSender::new(
                tls,
                Duration::from_millis(config.webhooks.timeout_ms),
                config.webhooks.allow_private,
            );
            let nets = list
                .iter()
                .map(|n| webhooks::Net {
                    name: n.name.clone(),
                    fetch: n.current.clone() as Arc<dyn events::Fetch>,
                })
                .collect();
            let wh = webhooks::Webhooks::new(&config.webhooks, &file, nets, store.clone(), Arc::new(sender))
                .map_err(|e| fail(e.to_string()))?;
            wh.register(&mut registry);
            Some(Arc::new(wh))
        }
        false => None,
    };
    Ok(App {
        index,
        webhooks,
        networks: Arc::new(Networks::new(list)),
        registry,
        store,
        access: ArcSwap::from_pointee(access),
        audit,
        edge,
    })
}

/// Where a gateway's metrics come from.
enum Registration<'a> {
    /// Registered anew (at start).
    New(&'a mut prometheus_client::registry::Registry),
    /// The series of the gateway it replaces (a reload), relabelled for its nodes; whether
    /// the node list is the same (same nodes, same order: node ids mean the same).
    Replacing(&'a Gateway, bool),
}

/// Access keys exist, and /status and /metrics (which name them) would be open on a public
/// address: refused (at start and by a reload) rather than shown.
fn check_admin_surface(config: &Config, access: &Access) -> Result<(), StartError> {
    if access.enabled()
        && !config.listen.ip().is_loopback()
        && config.admin_listen.is_none()
        && !access.admin_configured()
    {
        return Err(StartError::Config(ConfigError::Invalid {
            key: "admin_listen".into(),
            reason: format!(
                "auth is on and listen ({}) is not a loopback address: set admin_listen (a private \
                 address for /status, /metrics, /admin/keys) or auth.admin_token",
                config.listen
            ),
        }));
    }
    Ok(())
}

/// One network's gateway. Replacing one (a reload), it keeps the other's metric series, its
/// cache (same size) and, when the node list is the same, its per-sender write state; its
/// tracker starts from the other's observations of the nodes both have and its served head.
fn build_gateway(
    config: &Config,
    net: &NetworkConfig,
    lifecycle: Lifecycle,
    registration: Registration<'_>,
    audit: Arc<Audit>,
) -> Result<Arc<Gateway>, StartError> {
    let mut nodes = Vec::with_capacity(net.nodes.len());
    let secure =
        |n: &NodeConfig| n.http.starts_with("https://") || n.ws.as_deref().is_some_and(|w| w.starts_with("wss://"));
    // The system roots are read only when a node without a CA of its own needs them.
    let client = UpstreamClient::shared(net.nodes.iter().any(|n| secure(n) && n.tls.ca.is_none())).map_err(|e| {
        ConfigError::Invalid {
            key: "nodes".into(),
            reason: e.to_string(),
        }
    })?;
    for (id, n) in net.nodes.iter().enumerate() {
        let http = n.http.parse().map_err(|_| ConfigError::Invalid {
            key: format!("nodes[{id}].http"),
            reason: "not a URL".into(),
        })?;
        let tls = cluster::client_config(&n.tls, secure(n)).map_err(|e| ConfigError::Invalid {
            key: format!("nodes[{id}].tls"),
            reason: e.to_string(),
        })?;
        let node = Node::new(
            id,
            n.name_at(id),
            (http, n.ws.clone()),
            n.secret_path,
            tls,
            n.tls.is_set(),
        );
        tracing::info!(network = %net.name, node = %node.name, url = %node.shown, ws = ?node.shown_ws, "node");
        nodes.push(Arc::new(node));
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let (old, same_nodes) = match &registration {
        Registration::Replacing(old, same) => (Some(*old), *same),
        Registration::New(_) => (None, false),
    };
    let tracker = match old {
        Some(old) => Tracker::with_counters(
            names.clone(),
            config.cluster.max_lag,
            old.cluster().tracker.timings.clone(),
            old.cluster().tracker.faults.clone(),
        ),
        None => Tracker::new(names.clone(), config.cluster.max_lag),
    };
    let cluster = Arc::new(Cluster {
        tracker,
        keys: nodes
            .iter()
            .map(|n| txpath::home::node_key(&n.http.to_string()))
            .collect(),
        nodes,
        client,
        dialect: Default::default(),
    });
    if let Some(old) = old {
        cluster.carry_software(old.cluster());
    }
    let metrics = match registration {
        Registration::New(registry) => Arc::new(Metrics::new(
            registry,
            names,
            &cluster.tracker.timings,
            &cluster.tracker.faults,
        )),
        Registration::Replacing(old, _) => Arc::new(old.metrics().renamed(names)),
    };
    let replacing = old.map(|old| proxy::Replacing { old, same_nodes });
    Ok(Arc::new(Gateway::new(
        config,
        cluster,
        lifecycle,
        (metrics, audit),
        replacing,
    )))
}

/// The WebSocket endpoints of a gateway's nodes, for its network's pending-tx watchers.
pub(crate) fn node_ws(gw: &Gateway) -> Vec<events::NodeWs> {
    gw.cluster()
        .nodes
        .iter()
        .filter_map(|n| {
            n.ws.clone().map(|url| events::NodeWs {
                url,
                tls: n.ws_tls().clone(),
            })
        })
        .collect()
}

/// Runs kengate on `listener` until `shutdown` resolves: starts head tracking, serves
/// requests, then stops background tasks.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    run_with(config, listener, shutdown, None).await
}

/// [`run`], re-reading the configuration from `reload` on SIGHUP and when its file changes.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    reload: Option<reload::Source>,
) -> Result<(), StartError> {
    let app = Arc::new(build(&config)?);
    let admin = match config.admin_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|source| StartError::Bind {
                addr: addr.to_string(),
                source,
            })?;
            tracing::info!(addr = %l.local_addr().unwrap_or(addr), "admin surface (/status, /metrics, /admin/keys) listening");
            Some(l)
        }
        None => None,
    };
    let tls = match config.tls.enabled() {
        true => Some(server::ServerTls::load(&config.tls).map_err(|e| ConfigError::Invalid {
            key: "tls".into(),
            reason: e.to_string(),
        })?),
        false => None,
    };
    let mut tasks = Vec::new();
    let mut per_network = Vec::new();
    for net in app.networks.iter() {
        let gw = net.gw();
        txpath::upkeep::restore(gw.as_ref()).await;
        per_network.push(gateway_tasks(&net.current, &gw, &config));
        tasks.extend(events::spawn(&net.events));
    }
    if let Some(index) = &app.index {
        tasks.extend(index.spawn());
    }
    if let Some(wh) = &app.webhooks {
        tasks.extend(wh.spawn());
    }
    tasks.extend(
        app.networks
            .spawn_chain_id_probes(Duration::from_millis(config.cluster.probe_timeout_ms)),
    );
    if let Some(tls) = &tls {
        tasks.push(tls.spawn_reload());
    }
    let live = Arc::new(ArcSwap::from_pointee(server_settings(&config)));
    let state = reload::Live::new(app.clone(), live.clone(), config, per_network);
    if let Some(source) = reload {
        tasks.push(state.clone().spawn(source));
    }
    server::serve(listener, admin, app, live, tls, shutdown).await;
    for t in tasks {
        t.abort();
    }
    state.stop();
    Ok(())
}

/// What one gateway runs in the background.
#[derive(Debug)]
struct GatewayTasks {
    /// The write path's upkeep (holds the gateway).
    upkeep: tokio::task::JoinHandle<()>,
    /// Head tracking, outlier ejection, and its served head carried into the network's.
    tracking: Vec<tokio::task::JoinHandle<()>>,
}

fn gateway_tasks(current: &Arc<networks::Current>, gw: &Arc<Gateway>, config: &Config) -> GatewayTasks {
    let mut tracking = cluster::spawn_head_watchers(gw.cluster(), &config.cluster);
    tracking.extend(cluster::spawn_ejector(gw.cluster(), config.cluster.ejection.clone()));
    tracking.push(current.follow(gw));
    GatewayTasks {
        upkeep: txpath::upkeep::spawn(gw.clone()),
        tracking,
    }
}

/// The HTTP-level settings of a config.
fn server_settings(config: &Config) -> ServerSettings {
    ServerSettings {
        max_body_bytes: config.limits.max_body_bytes,
        ws_max_in_flight: config.limits.ws_max_in_flight,
        header_read_timeout: Duration::from_millis(config.limits.header_read_timeout_ms),
        max_header_bytes: config.limits.max_header_bytes,
        ws_send_queue: config.events.send_queue,
        ws_max_subscriptions: config.events.max_subscriptions_per_connection,
        edge: server::EdgeLimits {
            max_connections: config.limits.max_connections,
            max_connections_per_ip: config.limits.max_connections_per_ip,
            body_timeout: Duration::from_millis(config.limits.body_timeout_ms),
            body_idle_timeout: Duration::from_millis(config.limits.body_idle_timeout_ms),
            max_buffered_body_bytes: config.limits.max_buffered_body_bytes,
        },
        cors: server::Cors::new(&config.cors),
        drain: server::DrainSettings {
            ws_grace: Duration::from_millis(config.drain.ws_grace_ms),
            timeout: Duration::from_millis(config.drain.timeout_ms),
        },
    }
}
