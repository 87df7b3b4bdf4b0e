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
//! - [`server`]: HTTP/WS accept loop, limits, admin endpoints. Nothing depends on it.
//! - [`txpath`]: the write path — tx decoding, sender home node, per-sender ordering.
//! - [`metrics`]: Prometheus registry.
//! - [`store`]: the storage interface (embedded SQLite); the tx lifecycle lives there.
//!
//! The hot path reads top to bottom: `server::rpc` → `proxy::Gateway::handle_body` →
//! `routing::plan` → `proxy::forward` → `cluster::Node::post`.

pub mod cluster;
pub mod config;
pub mod jsonrpc;
pub mod methods;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod store;
pub mod txpath;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::cluster::{Cluster, Node, Tracker, UpstreamClient};
use crate::config::{Config, ConfigError};
use crate::methods::MethodTable;
use crate::metrics::Metrics;
use crate::proxy::{Coalescer, FilterRegistry, FinalCache, Gateway, Settings};
use crate::server::ServerSettings;
use crate::store::{SqliteStore, StoreError};
use crate::txpath::lifecycle::Lifecycle;
use crate::txpath::senders::Senders;

/// Why kengate could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("{path}: {source}")]
    Store {
        /// The store file.
        path: String,
        /// Why.
        source: StoreError,
    },
}

/// Builds the gateway from a validated config (no IO; background tasks not yet started).
pub fn build_gateway(config: &Config) -> Result<Arc<Gateway>, StartError> {
    config.validate()?;
    let mut nodes = Vec::with_capacity(config.nodes.len());
    for (id, n) in config.nodes.iter().enumerate() {
        let http = n.http.parse().map_err(|_| ConfigError::Invalid {
            key: format!("nodes[{id}].http"),
            reason: "not a URL".into(),
        })?;
        nodes.push(Arc::new(Node::new(id, http, n.ws.clone())));
    }
    let names = config.nodes.iter().map(|n| n.http.clone()).collect();
    let cluster = Arc::new(Cluster {
        tracker: Tracker::new(nodes.len(), config.cluster.max_lag),
        keys: nodes
            .iter()
            .map(|n| txpath::home::node_key(&n.http.to_string()))
            .collect(),
        nodes,
        client: UpstreamClient::new(),
    });
    let store = SqliteStore::open(&config.store.path).map_err(|source| StartError::Store {
        path: config.store.path.display().to_string(),
        source,
    })?;
    Ok(Arc::new(Gateway {
        lifecycle: Lifecycle::new(Arc::new(store)),
        cluster,
        methods: MethodTable::new(&config.methods.allow, &config.methods.deny),
        filters: FilterRegistry::default(),
        cache: FinalCache::new(config.cache.max_bytes),
        coalescer: Coalescer::default(),
        senders: Senders::new(Duration::from_millis(config.writes.gap_wait_ms)),
        metrics: Arc::new(Metrics::new(names)),
        settings: Settings::from_config(config),
    }))
}

/// Runs kengate on `listener` until `shutdown` resolves: starts head tracking, serves
/// requests, then stops background tasks.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let gw = build_gateway(&config)?;
    let mut tasks = cluster::spawn_head_watchers(&gw.cluster, &config.cluster);
    txpath::upkeep::restore(&gw).await;
    tasks.push(txpath::upkeep::spawn(gw.clone()));
    let settings = ServerSettings {
        max_body_bytes: config.limits.max_body_bytes,
        ws_max_in_flight: config.limits.ws_max_in_flight,
    };
    server::serve(listener, gw, settings, shutdown).await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}
