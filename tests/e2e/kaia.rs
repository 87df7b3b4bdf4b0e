//! One kengate in front of a Klaytn v1.12.1 cluster and a Kaia v2.2.1 cluster at once
//! (`[[networks]]`): each network's dialect comes from its own nodes, `kaia_` calls reach the
//! Kaia nodes as sent and the Klaytn nodes as `klay_`, and a signed transfer goes through
//! each network to its own chain. Needs both clusters up (`scripts/test` runs it in the Kaia
//! stage, with the Klaytn cluster still up).

use std::time::Duration;

use k256::ecdsa::SigningKey;
use kengate::config::{NetworkConfig, NodeConfig};
use serde_json::{json, Value};

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::Localnet;
use crate::support::tx::{hex_bytes, sign_transfer};

fn network(name: &str, net: &Localnet) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        chain_id: None,
        nodes: net
            .nodes()
            .into_iter()
            .map(|(http, ws)| NodeConfig {
                http,
                ws,
                ..NodeConfig::default()
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kengate_fronts_a_klaytn_and_a_kaia_network() {
    let klaytn = Localnet::load_flavour("klaytn");
    let kaia = Localnet::load_flavour("kaia");
    let mut cfg = test_config(&[]);
    cfg.networks = vec![network("klaytn", &klaytn), network("kaia", &kaia)];
    let gate = Gate::start(cfg).await;
    let s = gate
        .wait_status("both networks' software known and in sync", |s| {
            s["networks"].as_array().is_some_and(|nets| {
                nets.len() == 2
                    && nets.iter().all(|n| {
                        n["served_head"].as_u64().unwrap_or(0) > 0
                            && n["nodes"].as_array().unwrap().iter().all(|n| n["software"].is_string())
                    })
            })
        })
        .await;
    assert_eq!(s["networks"][0]["dialect"], "klaytn", "{s}");
    assert_eq!(s["networks"][1]["dialect"], "kaia", "{s}");

    let http = Http::default();
    let url = |name: &str| format!("{}/v1/{name}", gate.url);
    // Each network answers from its own nodes: the software versions say which.
    let v1 = http.result(&url("klaytn"), "web3_clientVersion", json!([])).await;
    let v2 = http.result(&url("kaia"), "web3_clientVersion", json!([])).await;
    assert!(v1.as_str().is_some_and(|v| v.contains("/v1.12.")), "{v1}");
    assert!(v2.as_str().is_some_and(|v| v.contains("/v2.2.")), "{v2}");
    // Kaia blocks carry blob fields and no totalBlockScore; kengate passes them on as they are.
    let b = http
        .result(&url("kaia"), "kaia_getBlockByNumber", json!(["latest", false]))
        .await;
    assert!(
        b.get("totalBlockScore").is_none() && b.get("blobGasUsed").is_some(),
        "{b}"
    );
    let b = http
        .result(&url("klaytn"), "kaia_getBlockByNumber", json!(["latest", false]))
        .await;
    assert!(b.get("totalBlockScore").is_some(), "{b}");

    // A transfer through each network, mined on its own chain, read back through kengate.
    for (name, net) in [("klaytn", &klaytn), ("kaia", &kaia)] {
        let ns = net.ns();
        let a = &net.accounts[13];
        let key = SigningKey::from_slice(&hex_bytes(&a.private_key)).unwrap();
        let nonce = quantity(
            &http
                .result(
                    &url(name),
                    &format!("{ns}_getTransactionCount"),
                    json!([a.address, "pending"]),
                )
                .await,
        );
        let price = u128::from(quantity(
            &http.result(&url(name), &format!("{ns}_gasPrice"), json!([])).await,
        )) * 2;
        let tx = sign_transfer(&key, net.chain_id, nonce, price, [9; 20], 1);
        let sent = http
            .result(&url(name), &format!("{ns}_sendRawTransaction"), json!([tx.raw_hex()]))
            .await;
        assert_eq!(sent, json!(tx.hash_hex()), "{name}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let receipt: Value = loop {
            let r = http
                .result(
                    &url(name),
                    &format!("{ns}_getTransactionReceipt"),
                    json!([tx.hash_hex()]),
                )
                .await;
            if r.is_object() {
                break r;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name}: not mined in 20 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(receipt["status"], "0x1", "{name}: {receipt}");
        // Only the network it was sent to has it.
        let other = if name == "kaia" { "klaytn" } else { "kaia" };
        let elsewhere = http
            .result(&url(other), "eth_getTransactionByHash", json!([tx.hash_hex()]))
            .await;
        assert!(elsewhere.is_null(), "{other} has {name}'s tx: {elsewhere}");
    }
    gate.stop().await;
}
