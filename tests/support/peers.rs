//! eRPC and proxyd, the peer proxies, as baselines beside nginx: started by a test over the same
//! ENs when their binaries are there (`ERPC_BIN` / `PROXYD_BIN`, else what
//! `../shared/peers/build.sh` puts in `$KENGATE_HOME/peers/bin`; `scripts/bench` runs it), skipped
//! with a note otherwise. Their results are findings to print, never assertions: a peer that shows
//! the split brain is what kengate exists for.
//!
//! Each runs as its users would run it in front of a cluster: eRPC with its defaults (score-based
//! selection, no cache) and `httpHostV4`; proxyd with one weighted backend group and every method
//! the clients use mapped (it refuses unmapped ones).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running peer proxy; killed when dropped.
pub struct Peer {
    /// `eRPC` or `proxyd`.
    pub name: &'static str,
    /// Its JSON-RPC URL.
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Methods mapped in proxyd: what the e2e scenarios and the clients (caver-js, ethers-ext) call.
const METHODS: &[&str] = &[
    "blockNumber",
    "chainId",
    "chainID",
    "gasPrice",
    "maxPriorityFeePerGas",
    "feeHistory",
    "getBalance",
    "getCode",
    "getTransactionCount",
    "call",
    "estimateGas",
    "getBlockByNumber",
    "getBlockByHash",
    "getBlockReceipts",
    "getTransactionByHash",
    "getTransactionReceipt",
    "getLogs",
    "sendRawTransaction",
    "syncing",
    "accounts",
];

fn binary(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let home = std::env::var("KENGATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kengate"));
    Some(home.join("peers/bin").join(name)).filter(|p| p.exists())
}

impl Peer {
    /// Every peer whose binary is there, each over `upstreams` (`http://host:port`); the notes
    /// say which were skipped and why.
    pub async fn all(upstreams: &[String], chain_id: u64) -> (Vec<Peer>, Vec<String>) {
        let mut peers = Vec::new();
        let mut notes = Vec::new();
        for start in [Peer::erpc, Peer::proxyd] {
            match start(upstreams, chain_id) {
                Ok(p) => match p.ready().await {
                    Ok(()) => peers.push(p),
                    Err(e) => notes.push(format!("{}: {e}", p.name)),
                },
                Err(e) => notes.push(e),
            }
        }
        (peers, notes)
    }

    fn erpc(upstreams: &[String], chain_id: u64) -> Result<Peer, String> {
        let bin = binary("ERPC_BIN", "erpc").ok_or("eRPC: not built (../shared/peers/build.sh)")?;
        let port = super::free_port();
        let mut yaml = format!(
            "logLevel: warn\nserver:\n  httpHostV4: 127.0.0.1\n  httpPortV4: {port}\n  waitBeforeShutdown: 0s\n  \
             waitAfterShutdown: 0s\nmetrics:\n  enabled: false\nprojects:\n  - id: main\n    networks:\n      \
             - architecture: evm\n        evm:\n          chainId: {chain_id}\n    upstreams:\n"
        );
        for (i, u) in upstreams.iter().enumerate() {
            yaml += &format!(
                "      - id: en{}\n        type: evm\n        endpoint: {u}\n        evm:\n          chainId: {chain_id}\n",
                i + 1
            );
        }
        Self::spawn("eRPC", bin, port, "erpc.yaml", &yaml, &format!("/main/evm/{chain_id}"))
    }

    fn proxyd(upstreams: &[String], _chain_id: u64) -> Result<Peer, String> {
        let bin = binary("PROXYD_BIN", "proxyd").ok_or("proxyd: not built (../shared/peers/build.sh)")?;
        let port = super::free_port();
        let mut toml = format!(
            "[server]\nrpc_host = \"127.0.0.1\"\nrpc_port = {port}\nmax_body_size_bytes = 10485760\n\n\
             [backend]\nresponse_timeout_seconds = 10\n\n[backends]\n"
        );
        let mut names = Vec::new();
        for (i, u) in upstreams.iter().enumerate() {
            toml += &format!("[backends.en{}]\nrpc_url = \"{u}\"\nws_url = \"\"\n", i + 1);
            names.push(format!("\"en{}\"", i + 1));
        }
        toml += &format!(
            "\n[backend_groups]\n[backend_groups.main]\nbackends = [{}]\nweighted_routing = true\n\n[rpc_method_mappings]\n",
            names.join(",")
        );
        for ns in ["klay", "kaia", "eth"] {
            for m in METHODS {
                toml += &format!("{ns}_{m} = \"main\"\n");
            }
        }
        toml += "net_version = \"main\"\nweb3_clientVersion = \"main\"\n";
        Self::spawn("proxyd", bin, port, "proxyd.toml", &toml, "/")
    }

    fn spawn(
        name: &'static str,
        bin: PathBuf,
        port: u16,
        file: &str,
        config: &str,
        path: &str,
    ) -> Result<Peer, String> {
        let dir = std::env::temp_dir().join(format!("kengate-peer-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{name}: {e}"))?;
        let conf = dir.join(file);
        std::fs::write(&conf, config).map_err(|e| format!("{name}: {e}"))?;
        let log = std::fs::File::create(dir.join("log")).map_err(|e| format!("{name}: {e}"))?;
        let child = Command::new(&bin)
            .arg(&conf)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{name}: {} did not start: {e}", bin.display()))?;
        Ok(Peer {
            name,
            url: format!("http://127.0.0.1:{port}{path}"),
            child,
            dir,
        })
    }

    /// Waits (30 s at most) until it answers a JSON-RPC call.
    async fn ready(&self) -> Result<(), String> {
        let http = super::client::Http::default();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if http.post_opt(&self.url, body).await == Some(200) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(format!("no answer in 30 s ({})", tail.join(" | ")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
