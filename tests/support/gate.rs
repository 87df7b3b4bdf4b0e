//! Runs kengate in-process on an ephemeral port for a test, and stops it when dropped.

use std::net::SocketAddr;
use std::time::Duration;

use kengate::config::{Config, NodeConfig};
use serde_json::Value;
use tokio::sync::oneshot;

use super::client::Http;

/// A running kengate.
pub struct Gate {
    pub addr: SocketAddr,
    pub url: String,
    /// `Authorization` for `/status` when the config has an admin token.
    admin: Option<String>,
    /// Where `/status` is: the admin surface when the config has one.
    status_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// `/status`, with the admin token when the gate has one.
async fn status(http: &Http, url: &str, admin: Option<&str>) -> Value {
    let headers: Vec<(&str, &str)> = admin.iter().map(|a| ("authorization", *a)).collect();
    http.request(http::Method::GET, &format!("{url}/status"), &headers, "")
        .await
        .json()
}

/// A config for tests: the given nodes, fast polling.
pub fn test_config(nodes: &[(String, Option<String>)]) -> Config {
    let mut c = Config {
        nodes: nodes
            .iter()
            .map(|(http, ws)| NodeConfig {
                http: http.clone(),
                ws: ws.clone(),
                ..NodeConfig::default()
            })
            .collect(),
        ..Config::default()
    };
    c.cluster.poll_interval_ms = 50;
    // Many gates at once: the admin routes on each gate's own listener.
    c.admin_listen = None;
    // A store file of its own per gate.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kengate-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    c.store.path = dir.join("kengate.db");
    c.cluster.probe_timeout_ms = 500;
    c.cluster.upstream_timeout_ms = 2000;
    // Gates with WebSocket clients stop quickly.
    c.drain.ws_grace_ms = 100;
    c
}

impl Gate {
    /// Runs with `path` as its proxy.toml, re-read when it changes (live reload).
    pub async fn start_from_file(path: &std::path::Path) -> Gate {
        let config = Config::from_file(path).expect("a valid proxy.toml");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let source = kengate::reload::Source {
            path: path.to_owned(),
            overrides: Box::new(|_| {}),
        };
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            kengate::run_with(config, listener, shutdown, Some(source))
                .await
                .expect("kengate run");
        });
        Gate {
            addr,
            url: format!("http://{addr}"),
            admin: None,
            status_url: format!("http://{addr}"),
            stop: Some(tx),
            task,
        }
    }

    pub async fn start(config: Config) -> Gate {
        Self::start_on("127.0.0.1:0", config).await.expect("bind 127.0.0.1:0")
    }

    /// Listens on `addr` (e.g. `[::1]:0` for IPv6 peers); `Err` when it cannot be bound.
    pub async fn start_on(addr: &str, config: Config) -> std::io::Result<Gate> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let admin = config.auth.admin_token.as_ref().map(|t| format!("Bearer {t}"));
        let config_admin = config.admin_listen;
        let status_url = match config.admin_listen {
            Some(a) => format!("http://{a}"),
            None => format!("http://{addr}"),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            kengate::run(config, listener, shutdown).await.expect("kengate run");
        });
        if let Some(a) = config_admin {
            // run() binds the admin surface after it starts.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::net::TcpStream::connect(a).await.is_err() {
                assert!(tokio::time::Instant::now() < deadline, "admin_listen {a} never came up");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(Gate {
            addr,
            url: format!("http://{addr}"),
            admin,
            status_url,
            stop: Some(tx),
            task,
        })
    }

    /// A counter's value in `/metrics` (its first series); `None` when it is not there.
    pub async fn counter(&self, name: &str) -> Option<u64> {
        let m = Http::default().get(&format!("{}/metrics", self.url)).await.text();
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    pub async fn status(&self) -> Value {
        status(&Http::default(), &self.status_url, self.admin.as_deref()).await
    }

    /// Waits until `pred(status)` holds (bounded).
    pub async fn wait_status(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status().await;
            if pred(&s) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; status: {s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Samples `/status` every 100 ms until `stop`; returns every (node, state) it showed, so
    /// a fault test can assert its faults really happened.
    pub fn watch_states(
        &self,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> tokio::task::JoinHandle<std::collections::HashSet<(usize, String)>> {
        let (url, admin) = (self.status_url.clone(), self.admin.clone());
        tokio::spawn(async move {
            let http = Http::default();
            let mut seen = std::collections::HashSet::new();
            // A sample lost to the transport (a keep-alive connection closed as the poll was
            // sent, e.g. after the test's runtime stalled on a blocking `scripts/localnet`) is
            // skipped; a run of them is a failure.
            let mut lost = 0;
            let headers: Vec<(&str, &str)> = admin.iter().map(|a| ("authorization", a.as_str())).collect();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match http.try_get_with_headers(&format!("{url}/status"), &headers).await {
                    Ok(r) => {
                        lost = 0;
                        let s = r.json();
                        for (i, n) in s["nodes"].as_array().into_iter().flatten().enumerate() {
                            seen.insert((i, n["state"].as_str().unwrap_or("").to_owned()));
                        }
                    }
                    Err(e) => {
                        lost += 1;
                        assert!(lost < 20, "/status failed 20 times in a row: {e}");
                        println!("state watcher: a /status sample lost ({e}); going on");
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    }

    /// Waits until every node is in sync.
    pub async fn wait_all_in_sync(&self) -> Value {
        self.wait_status("every node in sync", |s| {
            s["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().all(|n| n["state"] == "in_sync"))
        })
        .await
    }

    pub async fn wait_served(&self, head: u64) -> Value {
        self.wait_status(&format!("served head {head}"), |s| s["served_head"] == head)
            .await
    }

    /// Starts the drain (what SIGTERM does) without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded) until kengate has stopped; whether it did.
    pub async fn stopped(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, &mut self.task).await.is_ok()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `kengate` binary started by `cmd` (its stdout piped, killed when dropped): the child,
/// the rest of its stdout, and the URL from its "kengate listening on" line.
pub async fn spawn_binary(
    cmd: &mut tokio::process::Command,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    String,
) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the kengate binary");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .expect("kengate starts")
            .expect("read its stdout")
            .expect("a listening line");
        if let Some(rest) = line.strip_prefix("kengate listening on ") {
            break rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    };
    (child, stdout, url)
}
