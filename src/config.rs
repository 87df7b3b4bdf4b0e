//! Configuration: `proxy.toml` (every setting, documented field by field) merged with the
//! CLI's node list, then validated into errors that name the offending key.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod redact;

pub use redact::shown as shown_url;

/// Most nodes one network may front: node sets are one `u64` bitmap (`routing::NodeSet`).
pub const MAX_NODES: usize = 64;

/// A configuration problem, always naming the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// IO error.
        source: std::io::Error,
    },
    /// TOML syntax or type error (toml's message names the key and line).
    #[error("{path}: {message}")]
    Parse {
        /// File path.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: {key}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `cluster.max_lag`.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Everything kengate can be told.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on for JSON-RPC (HTTP and WebSocket), REST, `/health`, `/ready` — and,
    /// unless `admin_listen` is set, `/status`, `/metrics` and `/admin/keys`.
    pub listen: SocketAddr,
    /// The private admin surface (default `127.0.0.1:9545`): `/status`, `/metrics` (with
    /// per-key series) and `/admin/keys` are served here only (plus `/health`, `/ready`), and
    /// `listen` answers 404 for them. `"off"` (`None`): served on `listen`, behind the admin
    /// token when one is set.
    #[serde(deserialize_with = "admin_listen")]
    pub admin_listen: Option<SocketAddr>,
    /// The upstream nodes (replaced by `--node` flags when given): the cluster of the
    /// network named in [`Config::network`]. Leave empty when `networks` lists the clusters.
    pub nodes: Vec<NodeConfig>,
    /// Name and chain id of the cluster in `nodes`.
    pub network: NetworkInfo,
    /// Several clusters behind one kengate (e.g. cypress and baobab), each picked by path
    /// `/v1/{name}` or by the `x-chain-id` header. Alternative to `nodes`.
    pub networks: Vec<NetworkConfig>,
    /// Head tracking, health and retry settings.
    pub cluster: ClusterConfig,
    /// Request size limits.
    pub limits: LimitsConfig,
    /// Method policy overrides.
    pub methods: MethodsConfig,
    /// The write path.
    pub writes: WritesConfig,
    /// Where kengate keeps its data.
    pub store: StoreConfig,
    /// The final-data cache and request coalescing.
    pub cache: CacheConfig,
    /// Access tokens, admin token, trusted proxies.
    pub auth: AuthConfig,
    /// Token-bucket throttling per credential and per client IP.
    pub throttle: ThrottleConfig,
    /// WebSocket subscriptions and kengate-owned polling filters.
    pub events: EventsConfig,
    /// TLS on `listen` (HTTPS and WSS); off unless `cert` and `key` are set.
    pub tls: TlsConfig,
    /// Which browser origins may call the JSON-RPC and REST paths (CORS); none by default.
    pub cors: CorsConfig,
    /// The drain on SIGTERM / SIGINT.
    pub drain: DrainConfig,
    /// The embedded index of transactions and transfers (off by default).
    pub index: IndexConfig,
    /// Webhooks: events POSTed to registered URLs (off by default).
    pub webhooks: WebhooksConfig,
}

/// Webhooks (`webhooks/`): event subscriptions delivered to URLs, durable in their own SQLite
/// file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Serve `/v1/{network}/webhooks` and deliver.
    pub enabled: bool,
    /// Let webhook URLs reach loopback, private, link-local and metadata addresses (off: an
    /// SSRF guard; the tests turn it on to deliver to 127.0.0.1).
    pub allow_private: bool,
    /// The waits between retries of an event, in seconds; when they run out the webhook is
    /// paused as failing. Default: 10 s, 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h,
    /// 8 h (about 24 h in all).
    pub retry_schedule_s: Vec<u64>,
    /// How long a receiver has to answer a POST (ms).
    pub timeout_ms: u64,
    /// Deliveries in flight at once, all webhooks together.
    pub concurrency: usize,
    /// Webhooks an access key may have.
    pub max_per_key: u64,
    /// Deliveries per second to one access key's webhooks.
    pub events_per_second: u32,
    /// Delivered events (and their attempts) are kept this many days for `deliveries` and
    /// `replay`, then forgotten; undelivered ones are kept until delivered or deleted.
    pub retention_days: u64,
    /// The webhooks' file; default `webhooks.db` beside the store's file.
    pub path: Option<std::path::PathBuf>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_private: false,
            retry_schedule_s: vec![10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800],
            timeout_ms: 10_000,
            concurrency: 32,
            max_per_key: 100,
            events_per_second: 100,
            retention_days: 7,
            path: None,
        }
    }
}

impl WebhooksConfig {
    /// The webhooks' file for a store at `store`.
    pub fn file(&self, store: &std::path::Path) -> std::path::PathBuf {
        self.path.clone().unwrap_or_else(|| store.with_file_name("webhooks.db"))
    }
}

/// The embedded index (`index/`): every transaction and KLAY / token transfer of the blocks
/// kengate follows, kept in its own SQLite file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Index the networks kengate fronts.
    pub enabled: bool,
    /// Where a network's index starts the first time: `"first"` (block 0, the default: the
    /// history APIs answer for the whole chain, and a young or private chain is quick to
    /// read), `"now"` (the served head at start: no backfill), or a block number.
    pub start_block: StartBlock,
    /// Blocks written per store transaction.
    pub batch: u64,
    /// Blocks read at once while catching up.
    pub concurrency: usize,
    /// Also index the KLAY contracts send while a tx runs (internal transfers), from
    /// `debug_traceBlockByNumber` with the call tracer: off by default, because it replays every
    /// block with transactions on a node (its CPU, and a debug API the node must open); turned
    /// off with a warning if the nodes refuse it.
    pub internal: bool,
    /// SQLite's page cache for each index file (the index file's and the sealed file's), MiB
    /// (64): the pages a batch of blocks touches stay in memory for the next one.
    pub cache_mib: u64,
    /// How much of the index file reads map instead of copying page by page, MiB (1024; 0:
    /// none). Mapped pages are the OS page cache's, shared and reclaimable, not kengate's heap.
    pub mmap_mib: u64,
    /// Transfers and txs of the newest blocks whose account entries, hashes, NFT transfers and
    /// moved balances are held in memory (200,000: a few tens of MiB) before they are sealed
    /// into the sealed file (`index.sealed.db` beside the index file) in key order, as a part of
    /// their own, on a thread of its own while the next window fills; a restart reads them
    /// again from the file. Larger: fewer parts for a read to look through, more memory.
    pub window_transfers: u64,
    /// The index file; default `index.db` beside the store's file (the sealed file goes
    /// beside it: `index.sealed.db`).
    pub path: Option<std::path::PathBuf>,
}

/// `index.start_block`: a name or a number.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StartBlock {
    /// `"first"` or `"now"`.
    Named(String),
    /// A block number.
    Number(u64),
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            start_block: StartBlock::Named("first".into()),
            batch: 100,
            concurrency: 8,
            internal: false,
            cache_mib: 64,
            mmap_mib: 1024,
            window_transfers: 200_000,
            path: None,
        }
    }
}

impl IndexConfig {
    /// The index file for a store at `store`.
    pub fn file(&self, store: &std::path::Path) -> std::path::PathBuf {
        self.path.clone().unwrap_or_else(|| store.with_file_name("index.db"))
    }
}

/// What happens between SIGTERM (or SIGINT) and exit: `/ready` answers 503 at once, the
/// listeners close, HTTP requests in flight are answered, WebSocket sessions are served for
/// `ws_grace_ms` and then closed with 1001 "going away".
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    /// How long WebSocket sessions keep being served after the drain starts, in ms (time for
    /// clients to reconnect elsewhere).
    pub ws_grace_ms: u64,
    /// The longest drain, in ms: connections still open then are closed.
    pub timeout_ms: u64,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            ws_grace_ms: 2_000,
            timeout_ms: 30_000,
        }
    }
}

/// TLS on the public listener: PEM files, re-read when they change (no restart).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain (PEM, leaf first).
    pub cert: Option<std::path::PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<std::path::PathBuf>,
}

impl TlsConfig {
    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }
}

/// Cross-origin calls from browsers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call (`https://app.example.com`, exact match), or `["*"]` for any.
    /// Empty: no CORS headers at all (browsers refuse cross-origin calls).
    pub allowed_origins: Vec<String>,
    /// Let pages send credentials (cookies, HTTP auth) and read the answer: only with listed
    /// origins, never with `*` (the spec forbids it).
    pub allow_credentials: bool,
    /// How long a browser may reuse a preflight answer, in seconds.
    pub max_age_secs: u32,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
}

/// WebSocket subscriptions and polling filters, all generated from the served head.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Most subscriptions one WebSocket connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Most subscriptions plus polling filters one access key (or, with auth off, one
    /// network's anonymous callers together) may hold.
    pub max_per_key: usize,
    /// Messages queued for one WebSocket connection; a subscriber that falls this far behind
    /// is disconnected (close code 1008) instead of growing memory.
    pub send_queue: usize,
    /// A polling filter not polled for this long is removed, in ms (geth: 5 minutes).
    pub filter_idle_timeout_ms: u64,
    /// Most unread changes one polling filter keeps (the oldest are dropped beyond it).
    pub max_filter_changes: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_subscriptions_per_connection: 1000,
            max_per_key: 100_000,
            send_queue: 4096,
            filter_idle_timeout_ms: 5 * 60 * 1000,
            max_filter_changes: 10_000,
        }
    }
}

/// Name and chain id of the single cluster given by `nodes`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkInfo {
    /// Path segment `/v1/{name}` and the label in metrics and credentials.
    pub name: String,
    /// Chain id matched against `x-chain-id`; learned from the nodes (`klay_chainID`) when absent.
    pub chain_id: Option<u64>,
}

impl Default for NetworkInfo {
    fn default() -> Self {
        Self {
            name: "klaytn".into(),
            chain_id: None,
        }
    }
}

/// One cluster of several behind kengate.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Path segment `/v1/{name}`: lowercase letters, digits and `-`.
    pub name: String,
    /// Chain id matched against `x-chain-id`; learned from the nodes when absent.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// The cluster's nodes.
    pub nodes: Vec<NodeConfig>,
}

/// The final-data cache (Klaytn has immediate finality: everything at or below the served
/// head is final) and coalescing of identical in-flight reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Upper bound of cached answers, in bytes (keys and values); 0 turns the cache off.
    pub max_bytes: u64,
    /// Send identical in-flight reads upstream once and share the answer.
    pub coalesce: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            coalesce: true,
        }
    }
}

/// Access control: who may call, from where.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require a credential on every JSON-RPC and API request.
    pub enabled: bool,
    /// Bearer token that guards the admin REST API (`/admin/keys`); unset: the admin API is
    /// off. The env var `KENGATE_ADMIN_TOKEN` overrides it.
    pub admin_token: Option<String>,
    /// Peers (CIDRs) whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// Credentials declared here (in addition to those in the store, managed by
    /// `kengate keys` and the admin API).
    pub keys: Vec<KeyConfig>,
}

/// What an access key may do and how fast: one shape wherever a key is declared
/// (`auth.keys`), created (`kengate keys create`, `POST /admin/keys`), stored or listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScope {
    /// Free text (at most 200 characters, no control characters).
    #[serde(default)]
    pub label: String,
    /// Networks it may use; empty: all.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Method groups (`read`: every call but a tx submission; `write`: tx submission) or
    /// method names (`klay_x` also allows `kaia_x`, and the other way round); empty: both
    /// groups, i.e. every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Client IPs or CIDRs (IPv4 or IPv6) it may be used from; empty: any.
    #[serde(default)]
    pub ip_allow: Vec<String>,
    /// Calls per second (a batch counts its calls; 0: unlimited); absent: `throttle.per_key`.
    #[serde(default)]
    pub rps: Option<u32>,
    /// Bucket size; absent: `throttle.per_key`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// A credential declared in `proxy.toml`: its id, its secret (in clear text or as a hash) and
/// its scope. Written as one table, the scope's fields inline (`[[auth.keys]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "KeyConfigToml")]
pub struct KeyConfig {
    /// Access key id (Basic user name; the part before `.` in a token).
    pub id: String,
    /// The secret in clear text, or
    pub secret: Option<String>,
    /// its SHA-256 in hex.
    pub secret_sha256: Option<String>,
    /// What it may do.
    pub scope: KeyScope,
    /// A disabled key is refused.
    pub enabled: bool,
    /// Unix time (seconds) after which the key is refused.
    pub expires_at: Option<i64>,
}

/// `[[auth.keys]]` as written: [`KeyConfig`] with [`KeyScope`]'s fields inline, and unknown
/// keys refused (serde cannot refuse them through `flatten`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfigToml {
    id: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_sha256: Option<String>,
    #[serde(default)]
    label: String,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    ip_allow: Vec<String>,
    #[serde(default)]
    rps: Option<u32>,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    expires_at: Option<i64>,
}

impl From<KeyConfigToml> for KeyConfig {
    fn from(t: KeyConfigToml) -> Self {
        Self {
            id: t.id,
            secret: t.secret,
            secret_sha256: t.secret_sha256,
            scope: KeyScope {
                label: t.label,
                networks: t.networks,
                methods: t.methods,
                ip_allow: t.ip_allow,
                rps: t.rps,
                burst: t.burst,
            },
            enabled: t.enabled,
            expires_at: t.expires_at,
        }
    }
}

fn yes() -> bool {
    true
}

impl KeyConfig {
    /// A key with a clear-text secret, allowed everything (every network, method and IP, the
    /// default rate), enabled and without expiry; set the other fields with struct update.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: Some(secret.into()),
            secret_sha256: None,
            scope: KeyScope::default(),
            enabled: true,
            expires_at: None,
        }
    }
}

/// Token buckets. A rate of 0 means unlimited.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Per client IP.
    pub per_ip: RateConfig,
    /// Per credential without limits of its own.
    pub per_key: RateConfig,
    /// Cost of one call of a method (default 1), e.g. `{ eth_getLogs = 10 }`.
    pub method_weights: std::collections::BTreeMap<String, u32>,
    /// Failed authentications per client address (auth on): past the burst, the address is
    /// refused (429) before its credential is looked at until the bucket refills.
    pub auth_failures_per_ip: RateConfig,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let heavy = ["klay_getLogs", "kaia_getLogs", "eth_getLogs"];
        Self {
            per_ip: RateConfig::default(),
            per_key: RateConfig::default(),
            // The REST history reads up to 1,000 rows of the store.
            method_weights: heavy
                .iter()
                .chain(&["kengate_listTransactions"])
                .map(|m| (m.to_string(), 10))
                .collect(),
            auth_failures_per_ip: RateConfig { rps: 1, burst: 30 },
        }
    }
}

/// One token bucket: `rps` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Sustained calls per second; 0: unlimited.
    pub rps: u32,
    /// Bucket size; 0: equal to `rps`.
    pub burst: u32,
}

/// The embedded store.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite file holding the transaction lifecycle (created on first start); `--data-dir DIR`
    /// sets it to `DIR/kengate.db`.
    pub path: std::path::PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "kengate-data/kengate.db".into(),
        }
    }
}

/// The write path.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WritesConfig {
    /// How long a tx whose nonce is ahead of the sender's next expected nonce waits for the
    /// gap to fill before it is forwarded anyway (the node then queues it), in ms.
    pub gap_wait_ms: u64,
}

impl Default for WritesConfig {
    fn default() -> Self {
        Self { gap_wait_ms: 2000 }
    }
}

/// One upstream node.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// JSON-RPC over HTTP, e.g. `http://127.0.0.1:8551`.
    pub http: String,
    /// WebSocket endpoint for `newHeads`, e.g. `ws://127.0.0.1:8552` (optional: polling
    /// alone works, a subscription only makes head changes visible sooner).
    #[serde(default)]
    pub ws: Option<String>,
    /// Its name in metrics, logs, `/status`, errors and tx records (default `en1`, `en2`, …
    /// by position). Letters, digits, `-`, `_`, `.`; unique within the network.
    #[serde(default)]
    pub name: Option<String>,
    /// Hide the URLs' paths wherever they are shown (a provider that puts the key in the path).
    /// Userinfo, query values and fragments are always hidden.
    #[serde(default)]
    pub secret_path: bool,
    /// TLS to this node (`https://`, `wss://`): its own CA and a client certificate.
    #[serde(default)]
    pub tls: NodeTlsConfig,
}

/// TLS settings of one node; without them an `https://` node is verified against the system
/// trust roots and kengate shows no client certificate.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeTlsConfig {
    /// CA certificate(s) (PEM) the node's certificate must chain to, instead of the system roots.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) for a node that asks for one (mTLS), with `key`.
    pub cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<std::path::PathBuf>,
}

impl NodeTlsConfig {
    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

impl NodeConfig {
    /// The node's name: configured, or `en<position + 1>`.
    pub fn name_at(&self, position: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("en{}", position + 1))
    }
}

/// Head tracking, health and retries.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Blocks a node may trail the highest node and still count as in sync.
    pub max_lag: u64,
    /// Interval of the `klay_blockNumber` poll per node, in ms (also the liveness probe).
    pub poll_interval_ms: u64,
    /// Timeout of one poll, in ms; a node that misses it is marked down until it answers.
    pub probe_timeout_ms: u64,
    /// Follow heads over WS `newHeads` where a node has a WS URL.
    pub ws_heads: bool,
    /// Timeout of one upstream attempt, in ms.
    pub upstream_timeout_ms: u64,
    /// Extra attempts on other nodes after a transport failure of an idempotent read.
    pub max_retries: u32,
    /// Extra attempts on higher nodes after a `null` answer to a by-hash lookup.
    pub null_retries: u32,
    /// How long a call that no node can take right now (none in sync, none with its block,
    /// the sender's nodes all failed) waits for one to return before it gets an error, in ms.
    pub node_wait_ms: u64,
    /// Outlier ejection.
    pub ejection: EjectionConfig,
}

/// Outlier ejection: a node whose error rate or latency over the last 10 s stands out from
/// the other nodes' is taken out of rotation for `base_ms` (doubling while it keeps standing
/// out, up to `max_ms`), then let back in when its probes look like the others' again.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EjectionConfig {
    /// Judge the nodes at all.
    pub enabled: bool,
    /// Calls in the window below which a node is not judged (probes count: 4 a second).
    pub min_calls: u64,
    /// Error rate (percent) from which a node stands out — when it is also more than twice
    /// the other nodes' median.
    pub error_percent: u64,
    /// Mean latency this many times the other nodes' median stands out ...
    pub latency_factor: u64,
    /// ... when it is also at least this many ms.
    pub min_latency_ms: u64,
    /// The first ejection lasts this long, in ms.
    pub base_ms: u64,
    /// The longest ejection, in ms.
    pub max_ms: u64,
    /// At most this share of the nodes (percent, at least one node) is out at once; the last
    /// node in sync is never ejected.
    pub max_ejected_percent: u8,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_calls: 20,
            error_percent: 50,
            latency_factor: 5,
            min_latency_ms: 100,
            base_ms: 10_000,
            max_ms: 300_000,
            max_ejected_percent: 34,
        }
    }
}

/// Request limits.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body (or WS message) accepted, in bytes; larger → HTTP 413.
    pub max_body_bytes: usize,
    /// Most calls in one batch.
    pub max_batch: usize,
    /// Most calls in flight on one WebSocket connection.
    pub ws_max_in_flight: usize,
    /// A client must send its request headers within this many ms (slowloris guard).
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line + headers), in bytes; larger → HTTP 431.
    pub max_header_bytes: usize,
    /// A request body must arrive whole within this many ms (HTTP 408 and close after it).
    pub body_timeout_ms: u64,
    /// ... and may pause at most this many ms between two reads.
    pub body_idle_timeout_ms: u64,
    /// Most client connections open at once (more are answered 503 and closed).
    pub max_connections: usize,
    /// Most client connections from one address (the TCP peer: behind a load balancer, the
    /// balancer's; size it for that).
    pub max_connections_per_ip: usize,
    /// Bytes of request bodies being read or handled, all clients together (over it: 503).
    pub max_buffered_body_bytes: usize,
    /// A single HTTP call's reply larger than this many bytes is passed on as the node sends
    /// it, not held whole (when kengate need not read it; 0: always whole).
    pub stream_over_bytes: usize,
}

/// Method policy: which methods clients may call beyond the defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MethodsConfig {
    /// Methods to allow (e.g. `debug_traceTransaction`); unknown names are forwarded to
    /// any in-sync node.
    pub allow: Vec<String>,
    /// Methods to deny even though allowed by default.
    pub deny: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8545)),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9545))),
            nodes: Vec::new(),
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
            methods: MethodsConfig::default(),
            writes: WritesConfig::default(),
            store: StoreConfig::default(),
            network: NetworkInfo::default(),
            networks: Vec::new(),
            cache: CacheConfig::default(),
            auth: AuthConfig::default(),
            throttle: ThrottleConfig::default(),
            events: EventsConfig::default(),
            tls: TlsConfig::default(),
            cors: CorsConfig::default(),
            drain: DrainConfig::default(),
            index: IndexConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            max_lag: 3,
            poll_interval_ms: 250,
            probe_timeout_ms: 1000,
            ws_heads: true,
            upstream_timeout_ms: 5000,
            max_retries: 2,
            null_retries: 2,
            node_wait_ms: 10_000,
            ejection: EjectionConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_batch: 100,
            ws_max_in_flight: 64,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            body_timeout_ms: 30_000,
            body_idle_timeout_ms: 10_000,
            max_connections: 20_000,
            max_connections_per_ip: 2_000,
            max_buffered_body_bytes: 256 * 1024 * 1024,
            stream_over_bytes: 1024 * 1024,
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "config".into(),
            message: e.message().trim_end().to_owned() + &span_hint(text, e.span()),
        })
    }

    /// Every cluster kengate fronts: the one in `nodes` (named by `network`), then `networks`.
    pub fn networks(&self) -> Vec<NetworkConfig> {
        let mut all = Vec::with_capacity(self.networks.len() + 1);
        if !self.nodes.is_empty() {
            all.push(NetworkConfig {
                name: self.network.name.clone(),
                chain_id: self.network.chain_id,
                nodes: self.nodes.clone(),
            });
        }
        all.extend(self.networks.iter().cloned());
        all
    }

    fn validate_access(&self, networks: &[NetworkConfig]) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| Err(ConfigError::Invalid { key, reason });
        for (i, cidr) in self.auth.trusted_proxies.iter().enumerate() {
            if cidr.parse::<ipnet::IpNet>().is_err() && cidr.parse::<std::net::IpAddr>().is_err() {
                return invalid(format!("auth.trusted_proxies[{i}]"), format!("{cidr:?} is not a CIDR"));
            }
        }
        if self.auth.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return invalid("auth.admin_token".into(), "at least 16 characters".into());
        }
        for (i, k) in self.auth.keys.iter().enumerate() {
            let key = |f: &str| format!("auth.keys[{i}].{f}");
            if !valid_key_id(&k.id) {
                return invalid(key("id"), "letters, digits, '_' and '-', 1-64 characters".into());
            }
            if self.auth.keys.iter().take(i).any(|o| o.id == k.id) {
                return invalid(key("id"), format!("{:?} is declared twice", k.id));
            }
            match (&k.secret, &k.secret_sha256) {
                (Some(s), None) if s.len() >= 16 && !s.contains(char::is_whitespace) => {}
                (Some(_), None) => return invalid(key("secret"), "at least 16 characters, no spaces".into()),
                (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (None, Some(_)) => return invalid(key("secret_sha256"), "64 hex digits".into()),
                _ => return invalid(key("secret"), "give exactly one of secret and secret_sha256".into()),
            }
            if let Some(n) = k
                .scope
                .networks
                .iter()
                .find(|n| !networks.iter().any(|net| &net.name == *n))
            {
                return invalid(key("networks"), format!("no network named {n:?}"));
            }
            if let Some(m) = k.scope.methods.iter().find(|m| !valid_method_name(m)) {
                return invalid(key("methods"), format!("{m:?} is neither a group nor a method name"));
            }
            if let Some(c) = k
                .scope
                .ip_allow
                .iter()
                .find(|c| c.parse::<ipnet::IpNet>().is_err() && c.parse::<std::net::IpAddr>().is_err())
            {
                return invalid(key("ip_allow"), format!("{c:?} is not a CIDR"));
            }
        }
        for (m, w) in &self.throttle.method_weights {
            if !valid_method_name(m) {
                return invalid("throttle.method_weights".into(), format!("{m:?} is not a method name"));
            }
            if *w == 0 {
                return invalid(format!("throttle.method_weights.{m}"), "must be ≥ 1".into());
            }
        }
        Ok(())
    }

    fn validate_cors(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| Err(ConfigError::Invalid { key, reason });
        let c = &self.cors;
        let any = c.allowed_origins.iter().any(|o| o == "*");
        if any && c.allowed_origins.len() > 1 {
            return invalid("cors.allowed_origins".into(), "\"*\" stands alone".into());
        }
        if any && c.allow_credentials {
            return invalid(
                "cors.allow_credentials".into(),
                "not with allowed_origins = [\"*\"] (browsers refuse it): list the origins".into(),
            );
        }
        for (i, o) in c.allowed_origins.iter().enumerate() {
            if o == "*" {
                continue;
            }
            // An origin is scheme://host[:port], nothing else (no path, no trailing slash).
            let uri = o.parse::<http::Uri>().ok();
            let ok = uri.as_ref().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some()
                    // The http crate shows an absent path as "/" (a written one is refused
                    // by the trailing-slash check).
                    && u.path_and_query().is_none_or(|p| p.as_str() == "/")
                    && !o.ends_with('/')
                    && !o.contains('@')
            });
            if !ok {
                return invalid(
                    format!("cors.allowed_origins[{i}]"),
                    format!("{o:?} is not an origin (scheme://host[:port], no path)"),
                );
            }
        }
        Ok(())
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason: reason.into(),
            })
        };
        let e = &self.events;
        for (key, v) in [
            (
                "events.max_subscriptions_per_connection",
                e.max_subscriptions_per_connection,
            ),
            ("events.max_per_key", e.max_per_key),
            ("events.send_queue", e.send_queue),
            ("events.max_filter_changes", e.max_filter_changes),
        ] {
            if v == 0 {
                return invalid(key, "must be > 0");
            }
        }
        if e.filter_idle_timeout_ms == 0 {
            return invalid("events.filter_idle_timeout_ms", "must be > 0");
        }
        if let StartBlock::Named(name) = &self.index.start_block {
            if name != "first" && name != "now" {
                return invalid("index.start_block", "\"first\", \"now\" or a block number");
            }
        }
        if self.index.batch == 0 || self.index.concurrency == 0 {
            return invalid("index", "batch and concurrency must be > 0");
        }
        let w = &self.webhooks;
        if w.timeout_ms == 0 || w.concurrency == 0 || w.events_per_second == 0 {
            return invalid("webhooks", "timeout_ms, concurrency and events_per_second must be > 0");
        }
        if w.retry_schedule_s.len() > 100 || w.retry_schedule_s.iter().any(|s| *s == 0 || *s > 7 * 86_400) {
            return invalid("webhooks.retry_schedule_s", "at most 100 waits, each 1 s to 7 days");
        }
        let networks = self.networks();
        if networks.is_empty() {
            return invalid(
                "nodes",
                "at least one node is required (--node URL, [[nodes]] or [[networks]] in proxy.toml)",
            );
        }
        for (k, net) in networks.iter().enumerate() {
            let prefix = if self.nodes.is_empty() || k > 0 {
                format!("networks[{}].", k - usize::from(!self.nodes.is_empty()))
            } else {
                String::new()
            };
            let name_key = if prefix.is_empty() {
                "network.name".to_owned()
            } else {
                format!("{prefix}name")
            };
            if !valid_network_name(&net.name) {
                return invalid(&name_key, "lowercase letters, digits and '-', 1-32 characters");
            }
            if RESERVED_NETWORK_NAMES.contains(&net.name.as_str()) {
                return invalid(&name_key, &format!("{:?} is reserved", net.name));
            }
            if networks.iter().take(k).any(|o| o.name == net.name) {
                return invalid(&name_key, &format!("network {:?} is declared twice", net.name));
            }
            if let Some(id) = net.chain_id {
                if networks.iter().take(k).any(|o| o.chain_id == Some(id)) {
                    return invalid(&format!("{prefix}chain_id"), &format!("chain id {id} is used twice"));
                }
            }
            if net.nodes.is_empty() {
                return invalid(&format!("{prefix}nodes"), "at least one node is required");
            }
            if net.nodes.len() > MAX_NODES {
                return invalid(&format!("{prefix}nodes"), "at most 64 nodes");
            }
            for (i, n) in net.nodes.iter().enumerate() {
                let uri: http::Uri = match n.http.parse() {
                    Ok(u) => u,
                    Err(_) => {
                        let shown = shown_url(&n.http, n.secret_path);
                        return invalid(&format!("{prefix}nodes[{i}].http"), &format!("not a URL: {shown:?}"));
                    }
                };
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return invalid(
                        &format!("{prefix}nodes[{i}].http"),
                        "must be an http:// or https:// URL with a host",
                    );
                }
                if let Some(ws) = &n.ws {
                    let ok = ws
                        .parse::<http::Uri>()
                        .is_ok_and(|u| matches!(u.scheme_str(), Some("ws" | "wss")) && u.host().is_some());
                    if !ok {
                        return invalid(
                            &format!("{prefix}nodes[{i}].ws"),
                            "must be a ws:// or wss:// URL with a host",
                        );
                    }
                }
                let t = &n.tls;
                if t.cert.is_some() != t.key.is_some() {
                    return invalid(
                        &format!("{prefix}nodes[{i}].tls"),
                        "give both cert and key (the client certificate and its key), or neither",
                    );
                }
                let secure =
                    uri.scheme_str() == Some("https") || n.ws.as_deref().is_some_and(|w| w.starts_with("wss://"));
                if t.is_set() && !secure {
                    return invalid(
                        &format!("{prefix}nodes[{i}].tls"),
                        "set, but neither http nor ws of this node is https:// or wss://",
                    );
                }
                let name = n.name_at(i);
                let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
                if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
                    return invalid(
                        &format!("{prefix}nodes[{i}].name"),
                        "letters, digits, '-', '_' and '.', 1-64 characters",
                    );
                }
                if net.nodes.iter().take(i).enumerate().any(|(j, o)| o.name_at(j) == name) {
                    return invalid(
                        &format!("{prefix}nodes[{i}].name"),
                        &format!("node name {name:?} is used twice in the network"),
                    );
                }
            }
        }
        self.validate_access(&networks)?;
        let c = &self.cluster;
        if c.poll_interval_ms == 0 {
            return invalid("cluster.poll_interval_ms", "must be > 0");
        }
        if c.probe_timeout_ms == 0 {
            return invalid("cluster.probe_timeout_ms", "must be > 0");
        }
        if c.node_wait_ms > 600_000 {
            return invalid("cluster.node_wait_ms", "must be at most 600000 (10 minutes)");
        }
        let e = &c.ejection;
        if e.error_percent == 0 || e.error_percent > 100 {
            return invalid("cluster.ejection.error_percent", "must be 1-100");
        }
        if e.latency_factor < 2 {
            return invalid("cluster.ejection.latency_factor", "must be at least 2");
        }
        if e.base_ms == 0 || e.max_ms < e.base_ms {
            return invalid(
                "cluster.ejection.max_ms",
                "base_ms must be > 0 and max_ms at least base_ms",
            );
        }
        if e.max_ejected_percent > 100 {
            return invalid("cluster.ejection.max_ejected_percent", "must be 0-100");
        }
        if c.upstream_timeout_ms == 0 {
            return invalid("cluster.upstream_timeout_ms", "must be > 0");
        }
        if c.max_retries > 16 || c.null_retries > 16 {
            return invalid("cluster.max_retries", "retries are capped at 16");
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("limits.max_body_bytes", "must be at least 1024");
        }
        if self.limits.max_batch == 0 {
            return invalid("limits.max_batch", "must be > 0");
        }
        if self.limits.ws_max_in_flight == 0 {
            return invalid("limits.ws_max_in_flight", "must be > 0");
        }
        if self.limits.header_read_timeout_ms == 0 {
            return invalid("limits.header_read_timeout_ms", "must be > 0");
        }
        if self.limits.max_header_bytes < 8192 {
            return invalid("limits.max_header_bytes", "must be at least 8192");
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.body_timeout_ms", l.body_timeout_ms),
            ("limits.body_idle_timeout_ms", l.body_idle_timeout_ms),
            ("limits.max_connections", l.max_connections as u64),
            ("limits.max_connections_per_ip", l.max_connections_per_ip as u64),
        ] {
            if v == 0 {
                return invalid(key, "must be > 0");
            }
        }
        if l.max_buffered_body_bytes < l.max_body_bytes {
            return invalid(
                "limits.max_buffered_body_bytes",
                "must be at least limits.max_body_bytes (one whole body must fit)",
            );
        }
        if self.drain.ws_grace_ms > self.drain.timeout_ms {
            return invalid("drain.ws_grace_ms", "must be at most drain.timeout_ms");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return invalid("tls", "give both cert and key, or neither");
        }
        self.validate_cors()?;
        for (key, list) in [
            ("methods.allow", &self.methods.allow),
            ("methods.deny", &self.methods.deny),
        ] {
            if let Some(bad) = list.iter().find(|m| !valid_method_name(m)) {
                return invalid(key, &format!("{bad:?} is not a method name"));
            }
        }
        Ok(())
    }
}

/// `admin_listen`: an address, or `"off"`.
fn admin_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    parse_admin_listen(&s).map_err(serde::de::Error::custom)
}

/// `"off"` → `None`, else a socket address (the `--admin-listen` flag takes the same).
pub fn parse_admin_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    match s.trim() {
        "off" => Ok(None),
        a => a
            .parse()
            .map(Some)
            .map_err(|_| format!("{s:?} is neither an address (127.0.0.1:9545) nor \"off\"")),
    }
}

/// Path segments that are not network names.
pub const RESERVED_NETWORK_NAMES: &[&str] = &["tx", "admin", "health", "ready", "status", "metrics"];

fn valid_network_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An access key id: letters, digits, `_` and `-` (never `.` or `:`, which separate it from
/// the secret in tokens and Basic credentials).
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_method_name(m: &str) -> bool {
    !m.is_empty() && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// " at line N: `the line`" — so the one-line error shows the key even when toml's message
/// (e.g. "invalid type: string, expected u64") does not.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else { return String::new() };
    let start = text.floor_char_boundary(span.start.min(text.len()));
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    format!(" at line {line_no}: `{line}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let r = Config::from_toml(text).and_then(|c| c.validate().map(|_| c));
        r.expect_err("should fail").to_string()
    }

    #[test]
    fn a_declared_key_takes_its_scope_inline_and_refuses_unknown_fields() {
        let node = "[[nodes]]\nhttp = \"http://127.0.0.1:8551\"\n";
        let key = "[auth]\nenabled = true\n[[auth.keys]]\nid = \"k1\"\nsecret = \"k1-secret-0123456789\"\n";
        let c = Config::from_toml(&format!("{key}label = \"ci\"\nmethods = [\"read\"]\nrps = 5\n{node}")).unwrap();
        let k = c.auth.keys.first().unwrap();
        assert_eq!(
            k.scope,
            KeyScope {
                label: "ci".into(),
                methods: vec!["read".into()],
                rps: Some(5),
                ..KeyScope::default()
            }
        );
        assert!(k.enabled);
        let e = Config::from_toml(&format!("{key}lable = \"typo\"\n{node}")).unwrap_err();
        assert!(e.to_string().contains("lable"), "{e}");
    }

    #[test]
    fn example_file_parses_and_validates() {
        let c = Config::from_file(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml"))).unwrap();
        c.validate().unwrap();
        assert_eq!(c.cluster, ClusterConfig::default());
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.writes, WritesConfig::default());
        assert_eq!(c.store, StoreConfig::default());
    }

    #[test]
    fn the_admin_surface_is_private_by_default_and_can_be_turned_off() {
        let node = "[[nodes]]\nhttp = \"http://127.0.0.1:8551\"\n";
        assert_eq!(
            Config::default().admin_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9545)))
        );
        let c = Config::from_toml(&format!("admin_listen = \"off\"\n{node}")).unwrap();
        assert_eq!(c.admin_listen, None);
        let c = Config::from_toml(&format!("admin_listen = \"10.0.0.1:9000\"\n{node}")).unwrap();
        assert_eq!(c.admin_listen, Some("10.0.0.1:9000".parse().unwrap()));
        assert!(err(&format!("admin_listen = \"nowhere\"\n{node}")).contains("admin_listen"));
    }

    #[test]
    fn cors_origins_are_origins() {
        let node = "[[nodes]]\nhttp = \"http://127.0.0.1:8551\"\n";
        let ok = |origins: &str| {
            let c = Config::from_toml(&format!("{node}[cors]\nallowed_origins = {origins}\n")).unwrap();
            c.validate().map(|_| ())
        };
        ok(r#"["http://127.0.0.1:43997", "https://app.example.com"]"#).unwrap();
        ok(r#"["*"]"#).unwrap();
        for bad in [
            r#"["http://a.example/"]"#,
            r#"["http://a.example/path"]"#,
            r#"["http://a.example?x=1"]"#,
            r#"["a.example"]"#,
            r#"["*", "http://a.example"]"#,
        ] {
            let e = ok(bad).expect_err(bad).to_string();
            assert!(e.contains("cors.allowed_origins"), "{bad}: {e}");
        }
        let e = err(&format!(
            "{node}[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n"
        ));
        assert!(e.contains("cors.allow_credentials"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let node = "[[nodes]]\nhttp = \"http://127.0.0.1:8551\"\n";
        assert!(err("").contains("nodes"));
        assert!(err("[[nodes]]\nhttp = \"ftp://x\"").contains("nodes[0].http"));
        assert!(err(&format!("{node}[cluster]\npoll_interval_ms = 0")).contains("cluster.poll_interval_ms"));
        assert!(err(&format!("{node}[cluster]\nmax_lag = \"three\"")).contains("max_lag"));
        assert!(err(&format!("{node}[cluster]\nmax_lagg = 3")).contains("max_lagg"));
        assert!(err(&format!("{node}[methods]\nallow = [\"a b\"]")).contains("methods.allow"));
        assert!(err(&format!("{node}[limits]\nmax_batch = 0")).contains("limits.max_batch"));
        assert!(err("listen = \"nope\"").contains("listen"));
        let named = |a: &str, b: &str| {
            format!(
                "[[nodes]]\nhttp = \"http://a:1\"\nname = \"{a}\"\n[[nodes]]\nhttp = \"http://b:1\"\nname = \"{b}\"\n"
            )
        };
        assert!(err(&named("en1", "en1")).contains("nodes[1].name"));
        assert!(err(&named("en 1", "b")).contains("nodes[0].name"));
        // The default name of the second node is en2.
        assert!(
            err("[[nodes]]\nhttp = \"http://a:1\"\nname = \"en2\"\n[[nodes]]\nhttp = \"http://b:1\"\n")
                .contains("used twice")
        );
        // A malformed URL is quoted without its credentials.
        let e = err("[[nodes]]\nhttp = \"http://u:s3cret@a b\"");
        assert!(e.contains("nodes[0].http") && !e.contains("s3cret"), "{e}");
    }
}
