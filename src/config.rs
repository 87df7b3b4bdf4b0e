//! Configuration: `proxy.toml` (every setting, documented field by field) merged with the
//! CLI's node list, then validated into errors that name the offending key.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use crate::routing::NodeSet;

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
    /// Address to listen on for JSON-RPC (HTTP and WebSocket) and the admin endpoints.
    pub listen: SocketAddr,
    /// The upstream nodes (replaced by `--node` flags when given).
    pub nodes: Vec<NodeConfig>,
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
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// JSON-RPC over HTTP, e.g. `http://127.0.0.1:8551`.
    pub http: String,
    /// WebSocket endpoint for `newHeads`, e.g. `ws://127.0.0.1:8552` (optional: polling
    /// alone works, a subscription only makes head changes visible sooner).
    #[serde(default)]
    pub ws: Option<String>,
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
            nodes: Vec::new(),
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
            methods: MethodsConfig::default(),
            writes: WritesConfig::default(),
            store: StoreConfig::default(),
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
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_batch: 100,
            ws_max_in_flight: 64,
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

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if self.nodes.is_empty() {
            return invalid(
                "nodes",
                "at least one node is required (--node URL or [[nodes]] in proxy.toml)",
            );
        }
        if self.nodes.len() > NodeSet::CAPACITY {
            return invalid("nodes", "at most 64 nodes");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let uri: http::Uri = match n.http.parse() {
                Ok(u) => u,
                Err(_) => return invalid(&format!("nodes[{i}].http"), &format!("not a URL: {:?}", n.http)),
            };
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return invalid(&format!("nodes[{i}].http"), "must be an http:// URL with a host");
            }
            if let Some(ws) = &n.ws {
                if !(ws.starts_with("ws://") || ws.starts_with("wss://")) {
                    return invalid(&format!("nodes[{i}].ws"), "must be a ws:// or wss:// URL");
                }
            }
        }
        let c = &self.cluster;
        if c.poll_interval_ms == 0 {
            return invalid("cluster.poll_interval_ms", "must be > 0");
        }
        if c.probe_timeout_ms == 0 {
            return invalid("cluster.probe_timeout_ms", "must be > 0");
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
        for (key, list) in [
            ("methods.allow", &self.methods.allow),
            ("methods.deny", &self.methods.deny),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|m| m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return invalid(key, &format!("{bad:?} is not a method name"));
            }
        }
        Ok(())
    }
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
    fn example_file_parses_and_validates() {
        let c = Config::from_file(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml"))).unwrap();
        c.validate().unwrap();
        assert_eq!(c.cluster, ClusterConfig::default());
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.writes, WritesConfig::default());
        assert_eq!(c.store, StoreConfig::default());
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
    }
}
