//! Test harness shared by the integration (`it`) and end-to-end (`e2e`) test binaries:
//! an in-process kengate, a small JSON-RPC client, fake upstream nodes, the real local Klaytn
//! cluster (`scripts/localnet`), and TLS (a CA made by the test, TLS fronts for nodes).
#![allow(dead_code)]

pub mod client;
pub mod fake;
pub mod gate;
pub mod localnet;
pub mod nginx;
pub mod peers;
pub mod process;
pub mod tls;
pub mod tx;

/// The Python of the web3.py venv `scripts/test` sets up (`$KENGATE_HOME/venv-web3py`).
pub fn web3py_python() -> String {
    let home = std::env::var("KENGATE_HOME")
        .unwrap_or_else(|_| format!("{}/.cache/kengate", std::env::var("HOME").unwrap_or_default()));
    format!("{home}/venv-web3py/bin/python")
}

/// A loopback port free at the time of the call, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
