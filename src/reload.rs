//! Live reload of `proxy.toml`, on SIGHUP and when the file changes (checked every second).
//! The new file is read and validated whole; an invalid one is refused with its one-line
//! error and the running configuration kept. A valid one is applied part by part without
//! dropping a connection:
//! - a network whose nodes, cluster, method, cache or write settings changed gets a new
//!   gateway, built beside the old one (nodes both have keep what is known of them, the served
//!   head never goes back) and swapped in; calls in flight finish on the old one, which is
//!   stopped once nothing uses it;
//! - access keys and throttles: new rules for the next request (buckets start full);
//! - limits, CORS, the drain: for the next connection, request or message.
//!
//! What needs a restart (`listen`, `admin_listen`, `store`, networks added, removed or
//! renamed, TLS file paths, `events`) is named in a warning and otherwise left as it was.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, NetworkConfig};
use crate::server::ServerSettings;
use crate::txpath::lifecycle::Lifecycle;
use crate::{App, StartError};

/// Where a new configuration comes from: a file, with what the command line set on top.
pub struct Source {
    /// `proxy.toml`.
    pub path: PathBuf,
    /// The command line's overrides (`--node`, `--listen`, ...), applied to every reading.
    pub overrides: Box<dyn Fn(&mut Config) + Send + Sync>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Source {
    fn read(&self) -> Result<Config, ConfigError> {
        let mut c = Config::from_file(&self.path)?;
        (self.overrides)(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// Modification time and length: what the watch compares.
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Networks that got a new gateway.
    pub networks: Vec<String>,
    /// Whether access keys and throttles were replaced.
    pub access: bool,
    /// Whether limits, CORS or the drain changed.
    pub server: bool,
    /// Keys that changed but need a restart.
    pub needs_restart: Vec<&'static str>,
}

/// The running configuration and what a reload replaces.
#[derive(Debug)]
pub struct Live {
    app: Arc<App>,
    server: Arc<ArcSwap<ServerSettings>>,
    /// The configuration in force, and each network's gateway tasks. A tokio Mutex: one
    /// reload at a time, held across the write-state restore; nothing on the request path
    /// takes it.
    state: tokio::sync::Mutex<State>,
    /// The access upkeep task (replaced with the rules).
    access_upkeep: Mutex<Option<JoinHandle<()>>>,
    /// Gateways swapped out, stopped once unused.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    config: Config,
    tasks: Vec<crate::GatewayTasks>,
}

impl Live {
    /// The running kengate as `config` started it; `tasks` are each network's gateway tasks.
    pub(crate) fn new(
        app: Arc<App>,
        server: Arc<ArcSwap<ServerSettings>>,
        config: Config,
        tasks: Vec<crate::GatewayTasks>,
    ) -> Arc<Self> {
        let upkeep = app.access().spawn_upkeep();
        Arc::new(Self {
            app,
            server,
            state: tokio::sync::Mutex::new(State { config, tasks }),
            access_upkeep: Mutex::new(Some(upkeep)),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Reloads on SIGHUP and when the file changes.
    pub fn spawn(self: Arc<Self>, source: Source) -> JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut stamp = source.stamp();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<()>();
                let why = tokio::select! {
                    () = signalled => "SIGHUP",
                    _ = tick.tick() => {
                        let now = source.stamp();
                        if now.is_none() || now == stamp {
                            continue;
                        }
                        "the file changed"
                    }
                };
                stamp = source.stamp();
                match source.read() {
                    Err(e) => {
                        tracing::error!(trigger = why, error = %e, "configuration not reloaded; the running one is kept")
                    }
                    Ok(config) => match self.apply(config).await {
                        Ok(a) => {
                            tracing::info!(
                                trigger = why, networks = ?a.networks, access = a.access, server = a.server,
                                "configuration reloaded"
                            );
                            if !a.needs_restart.is_empty() {
                                tracing::warn!(keys = ?a.needs_restart, "these changed but take effect only after a restart");
                            }
                        }
                        Err(e) => {
                            tracing::error!(trigger = why, error = %e, "configuration not reloaded; the running one is kept")
                        }
                    },
                }
            }
        })
    }

    /// Applies a validated configuration.
    pub async fn apply(&self, next: Config) -> Result<Applied, StartError> {
        let mut state = self.state.lock().await;
        let prev = &state.config.clone();
        let mut applied = Applied::default();
        for (key, changed) in [
            ("listen", prev.listen != next.listen),
            ("admin_listen", prev.admin_listen != next.admin_listen),
            ("store", prev.store != next.store),
            ("tls", prev.tls != next.tls),
            ("events", prev.events != next.events),
            ("index", prev.index != next.index),
        ] {
            if changed {
                applied.needs_restart.push(key);
            }
        }
        let (old_nets, new_nets) = (prev.networks(), next.networks());
        let same_networks = old_nets.len() == new_nets.len()
            && old_nets
                .iter()
                .zip(&new_nets)
                .all(|(a, b)| a.name == b.name && a.chain_id == b.chain_id);
        // Everything is built before anything is swapped: a build error leaves all as it was.
        let mut built = Vec::new();
        if !same_networks {
            applied.needs_restart.push("networks");
        } else {
            for (i, (old_cfg, new_cfg)) in old_nets.iter().zip(&new_nets).enumerate() {
                if !gateway_changed(prev, &next, old_cfg, new_cfg) {
                    continue;
                }
                let Some(net) = self.app.networks.iter().nth(i) else {
                    continue;
                };
                let old = net.gw();
                let same_nodes = old_cfg.nodes == new_cfg.nodes;
                let lifecycle = Lifecycle::new(self.app.store.clone(), &new_cfg.name, i == 0);
                let gw = crate::build_gateway(
                    &next,
                    new_cfg,
                    lifecycle,
                    crate::Registration::Replacing(&old, same_nodes),
                    self.app.audit.clone(),
                )?;
                // A node both lists have (same settings) keeps its id's observations.
                let map: Vec<Option<usize>> = new_cfg
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        old_cfg
                            .nodes
                            .iter()
                            .enumerate()
                            .position(|(k, o)| o == n && o.name_at(k) == n.name_at(j))
                    })
                    .collect();
                built.push((i, gw, old, map, same_nodes));
            }
        }
        let access = if prev.auth != next.auth || prev.throttle != next.throttle {
            let names: Vec<String> = new_nets.iter().map(|n| n.name.clone()).collect();
            let a = crate::access::Access::new(&next.auth, &next.throttle, &names, self.app.store.clone())
                .map_err(StartError::Access)?;
            // The rule kengate starts by: keys on a public address need a private surface.
            crate::check_admin_surface(&next, &a)?;
            Some(a)
        } else {
            None
        };

        // Swaps.
        for (i, gw, old, map, same_nodes) in built {
            // Network `i` has its gateway and its tasks' place (both made at start, one per network).
            let (Some(net), Some(slot)) = (self.app.networks.iter().nth(i), state.tasks.get_mut(i)) else {
                continue;
            };
            if !same_nodes {
                // The write state is rebuilt from the store, as after a restart.
                crate::txpath::upkeep::restore(gw.as_ref()).await;
            }
            let tasks = crate::gateway_tasks(&net.current, &gw, &next);
            // The old tracker's served head stops where the new one starts: a call that began
            // on the old gateway never saw a head the new one is below.
            old.cluster().tracker.freeze();
            gw.cluster().tracker.carry_from(&old.cluster().tracker, &map);
            net.events.set_node_ws(crate::node_ws(&gw));
            net.current.swap(gw);
            let old_tasks = std::mem::replace(slot, tasks);
            self.retire(old, old_tasks);
            tracing::info!(network = %net.name, nodes = map.len(), "new gateway in place");
            applied.networks.push(net.name.clone());
        }
        if let Some(a) = access {
            self.app.access.store(Arc::new(a));
            let upkeep = self.app.access().spawn_upkeep();
            if let Some(old) = self
                .access_upkeep
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .replace(upkeep)
            {
                old.abort();
            }
            applied.access = true;
        }
        let server = crate::server_settings(&next);
        if prev.limits != next.limits || prev.cors != next.cors || prev.drain != next.drain {
            self.server.store(Arc::new(server));
            applied.server = true;
        }
        state.config = next;
        Ok(applied)
    }

    /// Stops a swapped-out gateway: its upkeep at once (the new one took over), its head
    /// tracking once no call uses it (bounded: a minute).
    fn retire(&self, old: Arc<crate::proxy::Gateway>, tasks: crate::GatewayTasks) {
        tasks.upkeep.abort();
        let handle = tokio::spawn(async move {
            let since = Instant::now();
            while Arc::strong_count(&old) > 1 && since.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for t in tasks.tracking {
                t.abort();
            }
        });
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|h| !h.is_finished());
        retired.push(handle);
    }

    /// Stops every task it owns (at shutdown).
    pub fn stop(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            for t in state.tasks.drain(..) {
                t.upkeep.abort();
                t.tracking.iter().for_each(JoinHandle::abort);
            }
        }
        if let Some(t) = self.access_upkeep.lock().unwrap_or_else(PoisonError::into_inner).take() {
            t.abort();
        }
        for t in self.retired.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            t.abort();
        }
    }
}

/// Whether a network's gateway must be rebuilt.
fn gateway_changed(prev: &Config, next: &Config, old: &NetworkConfig, new: &NetworkConfig) -> bool {
    old.nodes != new.nodes
        || prev.cluster != next.cluster
        || prev.methods != next.methods
        || prev.cache != next.cache
        || prev.writes != next.writes
        || prev.limits.max_batch != next.limits.max_batch
        || prev.limits.stream_over_bytes != next.limits.stream_over_bytes
}
