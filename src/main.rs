//! The `kengate` binary: CLI → config → bind → [`kengate::run`]. Nothing else.

// No `unwrap()` / `expect()` / panicking indexing outside tests (clippy.toml allows them in
// `#[cfg(test)]` code).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kengate::access::cli::KeysCommand;
use kengate::config::{Config, NodeConfig};

/// jemalloc, not the system allocator: glibc's per-thread arenas kept what a burst of large
/// request bodies freed (RSS ~100 MB above its baseline after 40 stalled 5 MiB bodies, growing
/// round after round); jemalloc's background thread hands freed pages back to the OS within
/// about a second (BENCHMARKS.md, "Memory after a burst").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts: a background thread purges pages left unused for
/// a second (`dirty_decay_ms`), then at once (`muzzy_decay_ms`).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

/// One consistent JSON-RPC endpoint in front of a cluster of Klaytn/Kaia endpoint nodes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// proxy.toml with every other setting (see the commented example at the repo root).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Upstream node JSON-RPC HTTP URL; repeat for each node. Replaces [[nodes]] in the config.
    #[arg(long = "node", value_name = "URL")]
    nodes: Vec<String>,
    /// WebSocket URL of the node given by the --node in the same position (optional).
    #[arg(long = "node-ws", value_name = "URL")]
    node_ws: Vec<String>,
    /// Address to listen on (overrides `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The private admin surface (/status, /metrics, /admin/keys), or `off` to serve it on
    /// the public listener (overrides `admin_listen`; default 127.0.0.1:9545).
    #[arg(long, value_name = "ADDR|off")]
    admin_listen: Option<String>,
    /// Blocks a node may trail and stay in sync (overrides `cluster.max_lag`).
    #[arg(long)]
    max_lag: Option<u64>,
    /// Directory for kengate's data (the store file `kengate.db`; overrides `store.path`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Without a command: run the proxy.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage access keys in the store (a running kengate picks changes up within a second).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The embedded index: where each network's stands, or start one again.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Manage webhooks in webhooks.db, as the REST API does (a running kengate picks changes up
    /// within 5 seconds). Prints the API's JSON answer.
    Webhooks {
        /// The network (default: the first one).
        #[arg(long, global = true)]
        network: Option<String>,
        /// Act as this access key (its own webhooks only); default: the operator (all).
        #[arg(long, global = true)]
        key: Option<String>,
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter =
        |default: &str| tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    if cli.command.is_some() {
        // A command's output (a secret, `keys list --json`) stays clean: only warnings, on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(filter("kengate=warn"))
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter("kengate=info")).init();
    }
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if cli.node_ws.len() > cli.nodes.len() {
        bail!(
            "--node-ws given {} times but --node only {}: each --node-ws pairs with the --node in the same position",
            cli.node_ws.len(),
            cli.nodes.len()
        );
    }
    let admin_listen = match cli.admin_listen.as_deref() {
        Some(a) => Some(kengate::config::parse_admin_listen(a).map_err(|e| anyhow::anyhow!("--admin-listen: {e}"))?),
        None => None,
    };
    // The command line's settings, on top of the file's (again at every reload).
    let overrides = {
        let (nodes, node_ws, listen, admin, max_lag, data_dir) = (
            cli.nodes.clone(),
            cli.node_ws.clone(),
            cli.listen,
            admin_listen,
            cli.max_lag,
            cli.data_dir.clone(),
        );
        move |config: &mut Config| {
            if !nodes.is_empty() {
                config.nodes = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, http)| NodeConfig {
                        http: http.clone(),
                        ws: node_ws.get(i).cloned(),
                        ..NodeConfig::default()
                    })
                    .collect();
            }
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(a) = admin {
                config.admin_listen = a;
            }
            if let Some(m) = max_lag {
                config.cluster.max_lag = m;
            }
            if let Some(d) = &data_dir {
                config.store.path = d.join("kengate.db");
            }
        }
    };
    overrides(&mut config);
    if let Some(Command::Keys { command }) = &cli.command {
        return Ok(kengate::access::cli::run(command, &config)?);
    }
    if let Some(Command::Index { command }) = &cli.command {
        return index_command(command, &config);
    }
    if let Some(Command::Webhooks { network, key, command }) = &cli.command {
        return webhooks_command(network.as_deref(), key.as_deref(), command, &config);
    }
    config.validate()?;

    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, nodes = config.nodes.len(), "kengate listening");
        match config.tls.enabled() {
            true => println!("kengate listening on https://{addr} (wss://{addr})"),
            false => println!("kengate listening on http://{addr} (ws://{addr})"),
        }
        // proxy.toml is re-read on SIGHUP and when it changes.
        let reload = cli.config.clone().map(|path| kengate::reload::Source {
            path,
            overrides: Box::new(overrides),
        });
        kengate::run_with(config, listener, shutdown_signal(), reload).await?;
        tracing::info!("kengate stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `kengate index …`.
#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Each network's checkpoint, rows and whether it halted (JSON).
    Status,
    /// Forgets what was indexed for a network; it is indexed again from `index.start_block`
    /// at the next start (stop kengate first).
    Reset {
        /// The network's name (`[network] name` or `[[networks]] name`).
        network: String,
    },
}

fn index_command(command: &IndexCommand, config: &Config) -> anyhow::Result<()> {
    let file = config.index.file(&config.store.path);
    let db = kengate::index::IndexDb::open(&file).with_context(|| format!("opening {}", file.display()))?;
    match command {
        IndexCommand::Status => {
            let mut out = Vec::new();
            for net in config.networks() {
                let cp = db.checkpoint(&net.name)?;
                let (txs, transfers) = db.counts(&net.name)?;
                let (parts, window) = db.window_state(&net.name)?;
                out.push(serde_json::json!({
                    "network": net.name,
                    "indexed_head": cp.as_ref().map(|c| c.number),
                    "halted": cp.and_then(|c| c.halted),
                    "txs": txs,
                    "transfers": transfers,
                    "parts": parts,
                    "window_held": window,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        IndexCommand::Reset { network } => {
            if !config.networks().iter().any(|n| &n.name == network) {
                bail!("no network named {network:?} in the configuration");
            }
            db.reset(network)?;
            eprintln!("index of {network} reset: indexed again from index.start_block at the next start");
        }
    }
    Ok(())
}

/// `kengate webhooks …`.
#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// The webhooks (of `--key`, or all).
    List,
    /// One webhook.
    Show {
        /// Its id (`wh_…`).
        id: String,
    },
    /// Makes a webhook; prints its signing secret (shown once).
    Create {
        /// Where events are POSTed.
        #[arg(long)]
        url: String,
        /// address_activity, log, tx_status, failed_tx, balance_threshold or new_block.
        #[arg(long = "type")]
        kind: String,
        /// The filter, as JSON (README "Webhooks").
        #[arg(long)]
        filter: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Changes a webhook's url, filter or description.
    Update {
        /// Its id.
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        filter: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Stops deliveries (events are kept).
    Pause {
        /// Its id.
        id: String,
    },
    /// Delivers again, backlog first (also a webhook paused as failing).
    Resume {
        /// Its id.
        id: String,
    },
    /// A new signing secret (printed).
    RotateSecret {
        /// Its id.
        id: String,
    },
    /// Queues a test event.
    Test {
        /// Its id.
        id: String,
    },
    /// Recent events and their delivery attempts.
    Deliveries {
        /// Its id.
        id: String,
    },
    /// Delivers again from an event on (same ids).
    Replay {
        /// Its id.
        id: String,
        /// The first event to deliver again (`evt_…`).
        #[arg(long)]
        from: String,
    },
    /// Deletes a webhook and its events.
    Delete {
        /// Its id.
        id: String,
    },
}

/// Never sends: the CLI only changes the file; the running kengate delivers.
struct NoSender;

impl kengate::webhooks::deliver::Sender for NoSender {
    fn post<'a>(
        &'a self,
        _: &'a str,
        _: Vec<(&'static str, String)>,
        _: String,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<kengate::webhooks::deliver::Answer, String>> + Send + 'a>,
    > {
        Box::pin(async { Err("the CLI does not deliver".to_owned()) })
    }
}

fn webhooks_command(
    network: Option<&str>,
    key: Option<&str>,
    command: &WebhooksCommand,
    config: &Config,
) -> anyhow::Result<()> {
    use kengate::jsonrpc::set_member;
    use kengate::webhooks::api::{answer, Owner, Request};
    use serde_json::{json, Value};
    let nets = config.networks();
    let network = match network {
        Some(n) if nets.iter().any(|x| x.name == n) => n.to_owned(),
        Some(n) => bail!("no network named {n:?} in the configuration"),
        None => nets
            .first()
            .map(|n| n.name.clone())
            .context("no network in the configuration")?,
    };
    let file = config.webhooks.file(&config.store.path);
    let store: std::sync::Arc<dyn kengate::store::Store> = std::sync::Arc::new(
        kengate::store::SqliteStore::open(&config.store.path)
            .with_context(|| format!("opening {}", config.store.path.display()))?,
    );
    let wh = kengate::webhooks::Webhooks::new(
        &config.webhooks,
        &file,
        Vec::new(),
        store,
        std::sync::Arc::new(NoSender),
    )
    .with_context(|| format!("opening {}", file.display()))?;
    let parse = |f: &Option<String>| -> anyhow::Result<Option<Value>> {
        f.as_deref()
            .map(|t| serde_json::from_str(t).context("--filter is not JSON"))
            .transpose()
    };
    let (method, path, body) = match command {
        WebhooksCommand::List => ("GET", String::new(), Value::Null),
        WebhooksCommand::Show { id } => ("GET", format!("/{id}"), Value::Null),
        WebhooksCommand::Create {
            url,
            kind,
            filter,
            description,
        } => {
            let mut b = json!({"url": url, "type": kind});
            if let Some(f) = parse(filter)? {
                set_member(&mut b, "filter", f);
            }
            if let Some(d) = description {
                set_member(&mut b, "description", json!(d));
            }
            ("POST", String::new(), b)
        }
        WebhooksCommand::Update {
            id,
            url,
            filter,
            description,
        } => {
            let mut b = json!({});
            if let Some(u) = url {
                set_member(&mut b, "url", json!(u));
            }
            if let Some(f) = parse(filter)? {
                set_member(&mut b, "filter", f);
            }
            if let Some(d) = description {
                set_member(&mut b, "description", json!(d));
            }
            ("PATCH", format!("/{id}"), b)
        }
        WebhooksCommand::Pause { id } => ("POST", format!("/{id}/pause"), Value::Null),
        WebhooksCommand::Resume { id } => ("POST", format!("/{id}/resume"), Value::Null),
        WebhooksCommand::RotateSecret { id } => ("POST", format!("/{id}/rotate-secret"), Value::Null),
        WebhooksCommand::Test { id } => ("POST", format!("/{id}/test"), Value::Null),
        WebhooksCommand::Deliveries { id } => ("GET", format!("/{id}/deliveries"), Value::Null),
        WebhooksCommand::Replay { id, from } => ("POST", format!("/{id}/replay"), json!({"from": from})),
        WebhooksCommand::Delete { id } => ("DELETE", format!("/{id}"), Value::Null),
    };
    let body = match body {
        Value::Null => Vec::new(),
        b => b.to_string().into_bytes(),
    };
    let reply = answer(
        &wh,
        &Request {
            method,
            path: &path,
            query: "",
            body: &body,
            network: &network,
            owner: match key {
                Some(k) => Owner::Key(k),
                None => Owner::Admin,
            },
        },
    );
    let v: Value = serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body.clone()));
    println!("{}", serde_json::to_string_pretty(&v)?);
    if reply.status >= 400 {
        bail!("HTTP {} (as the API would answer)", reply.status);
    }
    Ok(())
}
