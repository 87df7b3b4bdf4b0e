//! The real client programs (caver-js, ethers-ext, caver-java, web3.py) through kengate.

use crate::support::gate::{test_config, Gate};
use crate::support::localnet::Localnet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_work_through_kengate() {
    let net = Localnet::load();
    let mut cfg = test_config(&net.nodes());
    cfg.cluster.poll_interval_ms = 250;
    let gate = Gate::start(cfg).await;
    gate.wait_status("a node in sync", |s| s["served_head"].as_u64().unwrap_or(0) > 0)
        .await;
    let out = tokio::process::Command::new(net.repo.join("scripts/clients"))
        .arg("run")
        .env("RPC_URL", &gate.url)
        .env("CHAIN_ID", net.chain_id.to_string())
        .env("ACCOUNTS_FILE", &net.accounts_path)
        .output()
        .await
        .expect("run scripts/clients");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "clients failed through kengate:\n{text}");
    assert!(text.contains("clients: 4 passed, 0 failed"), "{text}");
    gate.stop().await;
}
