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

/// Large replies passed on while the node sends them (`limits.stream_over_bytes` set to 4 KiB):
/// web3.py sends a burst of 40 transfers through kengate, then reads the blocks they landed in with
/// their transactions and receipts (tens of KB each), and the logs of the range, through kengate
/// and from EN1 directly; every answer is the same, and the large ones were streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web3py_reads_streamed_replies_exactly_as_the_node_sends_them() {
    let net = Localnet::load();
    let mut cfg = test_config(&net.nodes());
    cfg.cluster.poll_interval_ms = 250;
    cfg.limits.stream_over_bytes = 4096;
    let gate = Gate::start(cfg).await;
    gate.wait_status("a node in sync", |s| s["served_head"].as_u64().unwrap_or(0) > 0)
        .await;
    let out = net
        .example("web3py", &crate::support::web3py_python())
        .arg("large_reads.py")
        .env("HTTP_URL", &gate.url)
        .env("DIRECT_URL", &net.en_http[0])
        .env("NS", net.ns())
        .env("ACCOUNT_INDEX", "19")
        .env("SENDS", "40")
        .output()
        .await
        .expect("run large_reads.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "large_reads.py failed:\n{text}");
    let report: serde_json::Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report line:\n{text}"));
    println!("large reads: {report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["mismatches"], serde_json::json!([]), "{report}");
    // The scenario really happened: replies of tens of KB, and kengate streamed them.
    assert!(report["largest"].as_u64().unwrap_or(0) > 20_000, "{report}");
    let streamed = gate.counter("kengate_streamed_replies_total").await.unwrap_or(0);
    assert!(streamed >= 3, "only {streamed} replies were streamed: {report}");
    gate.stop().await;
}
