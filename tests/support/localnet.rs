//! The real local cluster started by `scripts/localnet up` — Klaytn v1.12.1, or Kaia v2.2.1
//! when `KENGATE_LOCALNET_FLAVOUR=kaia` (run dir `.localnet-kaia`; `LOCALNET_DIR` overrides
//! either, as for `scripts/localnet`, which `ctl` runs with the same environment): its ENs, chain id, funded
//! accounts, and the lag/fault controls. A test that needs it fails (never skips) with the
//! command to run when the cluster is not up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// A funded test account.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub address: String,
    #[serde(rename = "privateKey")]
    pub private_key: String,
}

/// The running cluster.
#[derive(Debug, Clone)]
pub struct Localnet {
    pub repo: PathBuf,
    pub en_http: Vec<String>,
    pub en_ws: Vec<String>,
    pub chain_id: u64,
    pub accounts: Vec<Account>,
    /// The accounts file (`LOCALNET_ACCOUNTS`), for client programs.
    pub accounts_path: PathBuf,
    /// `klaytn` (v1.12.1) or `kaia` (v2.2.1): which node software the cluster runs.
    pub flavour: String,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Localnet {
    /// The cluster of the flavour `KENGATE_LOCALNET_FLAVOUR` names (default klaytn).
    pub fn load() -> Localnet {
        Self::load_flavour(&std::env::var("KENGATE_LOCALNET_FLAVOUR").unwrap_or_else(|_| "klaytn".into()))
    }

    /// Reads the env file `scripts/localnet --flavour FLAVOUR up` wrote and checks EN1 answers.
    /// `LOCALNET_DIR` is the run dir of the flavour `KENGATE_LOCALNET_FLAVOUR` names, as for
    /// `scripts/localnet`.
    pub fn load_flavour(flavour: &str) -> Localnet {
        let repo = repo_root();
        let chosen = std::env::var("KENGATE_LOCALNET_FLAVOUR").unwrap_or_else(|_| "klaytn".into());
        let default_dir = match flavour {
            "kaia" => ".localnet-kaia",
            _ => ".localnet",
        };
        let dir = match std::env::var("LOCALNET_DIR") {
            Ok(d) if chosen == flavour => PathBuf::from(d),
            _ => repo.join(default_dir),
        };
        let env_path = dir.join("env");
        let how = format!(
            "the local {flavour} cluster is not up: start it with `scripts/localnet --flavour {flavour} up` (scripts/test does this for you)"
        );
        let text = std::fs::read_to_string(&env_path)
            .unwrap_or_else(|e| panic!("{how}\n  (cannot read {}: {e})", env_path.display()));
        let env: HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .copied()
                .unwrap_or_else(|| panic!("{} lacks {k}", env_path.display()))
        };
        let list = |k: &str| get(k).split(',').map(str::to_owned).collect::<Vec<_>>();
        let accounts_path = PathBuf::from(get("LOCALNET_ACCOUNTS"));
        let accounts: Vec<Account> = serde_json::from_slice(
            &std::fs::read(&accounts_path).unwrap_or_else(|e| panic!("{how}\n  ({}: {e})", accounts_path.display())),
        )
        .expect("accounts.json");
        let net = Localnet {
            repo,
            en_http: list("LOCALNET_EN_HTTP"),
            en_ws: list("LOCALNET_EN_WS"),
            chain_id: get("LOCALNET_CHAIN_ID").parse().expect("chain id"),
            accounts,
            accounts_path,
            flavour: env.get("LOCALNET_FLAVOUR").copied().unwrap_or("klaytn").to_owned(),
        };
        assert_eq!(
            net.flavour,
            flavour,
            "{} holds a {} cluster, not the {flavour} one KENGATE_LOCALNET_FLAVOUR asks for",
            env_path.display(),
            net.flavour
        );
        let alive = std::net::TcpStream::connect_timeout(
            &net.en_http[0]
                .trim_start_matches("http://")
                .parse()
                .expect("EN1 address"),
            std::time::Duration::from_secs(2),
        );
        assert!(alive.is_ok(), "{how}\n  (EN1 at {} does not answer)", net.en_http[0]);
        net
    }

    /// The nodes' native namespace: `klay` on Klaytn, `kaia` on Kaia (where `klay` is an alias).
    pub fn ns(&self) -> &'static str {
        match self.flavour.as_str() {
            "kaia" => "kaia",
            _ => "klay",
        }
    }

    /// (http, ws) pairs for a gate config.
    pub fn nodes(&self) -> Vec<(String, Option<String>)> {
        self.en_http
            .iter()
            .cloned()
            .zip(self.en_ws.iter().cloned().map(Some))
            .collect()
    }

    /// `program` run in `examples/<dir>` against this cluster: its chain id and funded accounts
    /// in the environment (`CHAIN_ID`, `ACCOUNTS_FILE`), stderr shown, killed when dropped.
    pub fn example(&self, dir: &str, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.current_dir(self.repo.join("examples").join(dir))
            .env("ACCOUNTS_FILE", &self.accounts_path)
            .env("CHAIN_ID", self.chain_id.to_string())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `scripts/localnet ARGS`; panics with its output when it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let script: &Path = &self.repo.join("scripts/localnet");
        let out = Command::new(script).args(args).output().expect("run scripts/localnet");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "scripts/localnet {args:?} failed:\n{text}");
        text
    }
}

/// Restores an EN to normal when dropped, so a failing test leaves the cluster usable.
pub struct Restore<'a> {
    pub net: &'a Localnet,
    pub args: Vec<&'static str>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.net.repo.join("scripts/localnet"))
            .args(&self.args)
            .output();
    }
}
