//! Access control end to end: the Klaytn API Service's own SDK (caver-js-ext-kas, Node API
//! over HTTP: Basic credentials + `x-chain-id`, posting to `{url}/v1/klaytn`) through kengate
//! with auth on, accepted with the right secret and refused with a wrong one; and the four
//! stock clients with the access token in the URL, which is all they can be given.

use kengate::config::{KeyConfig, KeyScope};

use crate::support::client::Http;
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::Localnet;

const KEY_ID: &str = "KASK-e2e";
const SECRET: &str = "s3cret-e2e-0123456789/+=";

fn key(id: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        scope: KeyScope {
            label: "e2e".into(),
            ..Default::default()
        },
        ..KeyConfig::new(id, secret)
    }
}

async fn clients(net: &Localnet, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(net.repo.join("scripts/clients"));
    cmd.args(args)
        .env("CHAIN_ID", net.chain_id.to_string())
        .env("ACCOUNTS_FILE", &net.accounts_path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run scripts/clients");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kas_sdk_and_stock_clients_work_with_credentials_and_are_refused_without() {
    let net = Localnet::load();
    let mut cfg = test_config(&net.nodes());
    cfg.cluster.poll_interval_ms = 250;
    cfg.auth.enabled = true;
    cfg.auth.keys = vec![key(KEY_ID, SECRET), key("url-token", "url-token-secret-0123456789")];
    let gate = Gate::start(cfg).await;
    gate.wait_status("chain id learned and a node in sync", |s| {
        s["served_head"].as_u64().unwrap_or(0) > 0 && s["chain_id"].as_u64() == Some(net.chain_id)
    })
    .await;
    let chain = net.chain_id.to_string();

    // caver-js-ext-kas: Basic id:secret and x-chain-id, to {url}/v1/klaytn.
    let (ok, text) = clients(
        &net,
        &["run", "kas-node-api"],
        &[
            ("RPC_URL", &gate.url),
            ("CHAIN_ID", &chain),
            ("ACCESS_KEY_ID", KEY_ID),
            ("SECRET_ACCESS_KEY", SECRET),
        ],
    )
    .await;
    assert!(
        ok && text.contains("clients: 1 passed, 0 failed"),
        "KAS SDK through kengate:\n{text}"
    );

    // The same SDK with a wrong secret: refused, and told why.
    let (ok, text) = clients(
        &net,
        &["run", "kas-node-api"],
        &[
            ("RPC_URL", &gate.url),
            ("CHAIN_ID", &chain),
            ("ACCESS_KEY_ID", KEY_ID),
            ("SECRET_ACCESS_KEY", "not-the-secret-at-all"),
            ("EXPECT_DENIED", "1"),
        ],
    )
    .await;
    assert!(
        ok && text.contains("clients: 1 passed, 0 failed"),
        "a wrong secret must be refused:\n{text}"
    );

    // Stock clients take one URL: the token goes in the path.
    let url = format!("{}/v1/klaytn/url-token.url-token-secret-0123456789", gate.url);
    let (ok, text) = clients(&net, &["run"], &[("RPC_URL", &url)]).await;
    assert!(
        ok && text.contains("clients: 4 passed, 0 failed"),
        "stock clients with a URL token:\n{text}"
    );

    let metrics =
        String::from_utf8_lossy(&Http::default().get(&format!("{}/metrics", gate.url)).await.body).to_string();
    for needle in [
        r#"kengate_denied_requests_total{reason="bad_credentials"}"#,
        &format!(r#"kengate_key_requests_total{{key="{KEY_ID}",method="klay_sendRawTransaction",outcome="ok"}} 1"#),
        r#"kengate_key_requests_total{key="url-token","#,
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
    gate.stop().await;
}
