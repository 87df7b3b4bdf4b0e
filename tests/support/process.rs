//! The kengate binary as a child process with a configuration of its own, for tests that
//! must `kill -9` it and start it again on the same files (an in-process gateway cannot be
//! killed that way).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::client::Http;
use super::localnet::Localnet;

/// A kengate binary in a data dir of its own, in front of the local cluster's nodes.
pub struct Process {
    /// Its data dir (`proxy.toml`, the store, the index and webhooks files), removed on drop.
    pub dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl Process {
    /// Writes `proxy.toml` in a fresh dir named after `name`: a free port, no admin listener,
    /// the store in the dir, `sections` (more TOML), then every node of `net`.
    pub fn new(name: &str, net: &Localnet, sections: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kengate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("data dir");
        let port = super::free_port();
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n\n[store]\npath = \"{}\"\n\n{sections}",
            dir.join("kengate.db").display()
        );
        for (http, ws) in net.nodes() {
            toml += &format!("\n[[nodes]]\nhttp = \"{http}\"\n");
            if let Some(ws) = ws {
                toml += &format!("ws = \"{ws}\"\n");
            }
        }
        std::fs::write(dir.join("proxy.toml"), toml).expect("write proxy.toml");
        Self { dir, port, child: None }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (not waiting for anything).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
            .arg("--config")
            .arg(self.dir.join("proxy.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kengate");
        self.child = Some(child);
    }

    /// Starts it and waits (30 s at most) until `/ready` answers 200.
    pub async fn start_ready(&mut self, http: &Http) {
        self.start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while http.get_opt(&format!("{}/ready", self.url())).await != Some(200) {
            assert!(tokio::time::Instant::now() < deadline, "kengate did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (std's `Child::kill`), and the exit reaped: it really was killed.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        let status = child.wait().expect("reap");
        assert!(
            !status.success(),
            "kengate exited normally instead of being killed: {status}"
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
