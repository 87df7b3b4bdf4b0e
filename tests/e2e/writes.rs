//! The write half of the split brain on the real cluster: many senders, each fetching its
//! pending nonce before every send, while one EN is detached/re-attached and another stopped
//! and started. Through kengate: no nonce errors and every tx mined. Through nginx
//! round-robin over the same ENs: nonce errors or lost txs.

use std::sync::Arc;
use std::time::Duration;

use k256::ecdsa::SigningKey;
use serde_json::json;

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::{Account, Localnet, Restore};
use crate::support::nginx::Nginx;
use crate::support::tx::{hex_bytes, sign_transfer};

#[derive(Debug, Default)]
struct Outcome {
    sent: Vec<String>,
    send_errors: Vec<String>,
}

/// One sender: `count` transfers, asking `url` for the pending nonce before each.
async fn sender(url: String, acct: Account, chain_id: u64, gas_price: u128, count: usize) -> Outcome {
    let http = Http::default();
    let key = SigningKey::from_slice(&hex_bytes(&acct.private_key)).expect("key");
    let mut out = Outcome::default();
    for _ in 0..count {
        let r = http
            .rpc(&url, "klay_getTransactionCount", json!([acct.address, "pending"]))
            .await;
        let Some(nonce) = r["result"].as_str().map(|_| quantity(&r["result"])) else {
            out.send_errors.push(format!("nonce lookup: {r}"));
            continue;
        };
        let tx = sign_transfer(&key, chain_id, nonce, gas_price, [9; 20], 1);
        let r = http.rpc(&url, "klay_sendRawTransaction", json!([tx.raw_hex()])).await;
        match r.get("error") {
            Some(e) => out.send_errors.push(format!("nonce {nonce}: {e}")),
            None => out.sent.push(tx.hash_hex()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

/// Runs `senders` concurrently through `url`; returns (sent hashes, errors).
async fn workload(url: &str, net: &Localnet, accounts: &[Account], count: usize) -> (Vec<String>, Vec<String>) {
    let http = Http::default();
    let gas_price = u128::from(quantity(
        &http.result(&net.en_http[0], "klay_gasPrice", json!([])).await,
    )) * 2;
    let tasks: Vec<_> = accounts
        .iter()
        .cloned()
        .map(|a| tokio::spawn(sender(url.to_owned(), a, net.chain_id, gas_price, count)))
        .collect();
    let (mut sent, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        let o = t.await.expect("sender task");
        sent.extend(o.sent);
        errors.extend(o.send_errors);
    }
    (sent, errors)
}

/// Hashes with no receipt (asked of every EN directly) after waiting up to `wait`.
async fn unmined(net: &Localnet, hashes: &[String], wait: Duration) -> Vec<String> {
    let http = Http::default();
    let deadline = tokio::time::Instant::now() + wait;
    let mut left: Vec<String> = hashes.to_vec();
    loop {
        let mut still = Vec::new();
        for h in &left {
            let mut found = false;
            for en in &net.en_http {
                if http.rpc(en, "klay_getTransactionReceipt", json!([h])).await["result"].is_object() {
                    found = true;
                    break;
                }
            }
            if !found {
                still.push(h.clone());
            }
        }
        left = still;
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_never_see_the_split_brain_through_kengate() {
    let net = Arc::new(Localnet::load());
    let gate = Gate::start(test_config(&net.nodes())).await;
    gate.wait_status("3 nodes in sync", |s| {
        s["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["state"] == "in_sync"))
    })
    .await;
    let nginx = Nginx::start(&net.en_http);
    let (through_gate, through_nginx) = (&net.accounts[0..8], &net.accounts[8..10]);

    let faults = {
        let net = net.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            net.ctl(&["detach", "2"]);
            tokio::time::sleep(Duration::from_secs(6)).await;
            net.ctl(&["attach", "2"]);
            net.ctl(&["stop", "3"]);
            tokio::time::sleep(Duration::from_secs(4)).await;
            net.ctl(&["start", "3"]);
        })
    };
    let _restore = Restore {
        net: &net,
        args: vec!["attach", "2"],
    };
    let _restore3 = Restore {
        net: &net,
        args: vec!["start", "3"],
    };
    let gate_run = workload(&gate.url, &net, through_gate, 25);
    let nginx_run = workload(&nginx.url, &net, through_nginx, 25);
    let ((g_sent, g_errors), (n_sent, n_errors)) = tokio::join!(gate_run, nginx_run);
    faults.await.expect("fault task");

    let g_lost = unmined(&net, &g_sent, Duration::from_secs(60)).await;
    let n_lost = unmined(&net, &n_sent, Duration::from_secs(10)).await;
    println!(
        "kengate: {} sent, {} send errors, {} not mined {:?}",
        g_sent.len(),
        g_errors.len(),
        g_lost.len(),
        g_errors
    );
    println!(
        "nginx:   {} sent, {} send errors, {} not mined",
        n_sent.len(),
        n_errors.len(),
        n_lost.len()
    );
    println!("nginx errors (first 5): {:?}", &n_errors[..n_errors.len().min(5)]);
    assert!(g_errors.is_empty(), "kengate: send errors {g_errors:?}");
    assert_eq!(g_sent.len(), through_gate.len() * 25);
    assert!(g_lost.is_empty(), "kengate: txs never mined: {g_lost:?}");
    assert!(
        !n_errors.is_empty() || !n_lost.is_empty(),
        "the nginx baseline saw no nonce error or lost tx: the scenario did not split the cluster"
    );
    gate.stop().await;
}
