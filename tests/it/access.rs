//! Networks and access control through the wire, against fake nodes: network selection by path
//! and `x-chain-id`; access keys (Bearer, Basic, URL token) on HTTP, REST and WebSocket; the
//! admin API and the `kengate keys` CLI against a running gate; client IPs behind trusted
//! proxies (IPv4, IPv6, IPv4-mapped); token buckets per key, per IP, per method and over
//! WebSocket; slowloris and oversized request heads; the audit metrics. Every refusal is a
//! clear 4xx that reached no node and left other clients alone.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use k256::ecdsa::SigningKey;
use kengate::config::{Config, KeyConfig, KeyScope, NetworkConfig, NodeConfig, RateConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::{Http, Reply};
use crate::support::fake::{self, Fake};
use crate::support::gate::{test_config, Gate};
use crate::support::tx::sign_transfer;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn secret(id: &str) -> String {
    format!("{id}-secret-0123456789")
}

fn token(id: &str) -> String {
    format!("{id}.{}", secret(id))
}

fn bearer(id: &str) -> String {
    format!("Bearer {}", token(id))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A config key with the secret `secret(id)`, allowed everything.
fn key(id: &str) -> KeyConfig {
    KeyConfig {
        scope: KeyScope {
            label: format!("test key {id}"),
            ..Default::default()
        },
        ..KeyConfig::new(id, secret(id))
    }
}

fn limited(id: &str, rps: u32, burst: u32) -> KeyConfig {
    KeyConfig {
        scope: KeyScope {
            rps: Some(rps),
            burst: Some(burst),
            ..key(id).scope
        },
        ..key(id)
    }
}

fn from_ips(id: &str, cidrs: &[&str]) -> KeyConfig {
    KeyConfig {
        scope: KeyScope {
            ip_allow: cidrs.iter().map(|c| c.to_string()).collect(),
            ..key(id).scope
        },
        ..key(id)
    }
}

fn call(method: &str, id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":[]}).to_string()
}

fn call_with(method: &str, id: u64, params: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string()
}

fn now_secs() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

/// A signed transfer (raw hex, hash).
fn signed_tx(chain_id: u64) -> (String, String) {
    let k = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let tx = sign_transfer(&k, chain_id, 0, 50_000_000_000, [7; 20], 1);
    (tx.raw_hex(), tx.hash_hex())
}

/// Calls that reached any of `fakes` (head polls and chain-id probes excluded).
fn calls(fakes: &[Fake]) -> usize {
    fakes.iter().map(|f| f.calls().len()).sum()
}

fn calls_of(fakes: &[Fake], method: &str) -> usize {
    fakes.iter().map(|f| f.calls_of(method).len()).sum()
}

/// A request refused before any call ran: `status`, a JSON-RPC error body (`id` null) with
/// `code` and a message containing `msg`; `WWW-Authenticate` exactly on a 401.
#[track_caller]
fn assert_refused(r: &Reply, status: u16, code: i64, msg: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.content_type.starts_with("application/json"),
        "{what}: content-type {}",
        r.content_type
    );
    let b = r.json();
    assert_eq!(b["jsonrpc"], "2.0", "{what}: {b}");
    assert_eq!(b["id"], Value::Null, "{what}: {b}");
    assert_eq!(b["error"]["code"], code, "{what}: {b}");
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(msg), "{what}: message {message:?} lacks {msg:?}");
    let www = r.header("www-authenticate");
    if status == 401 {
        assert_eq!(www, Some("Bearer realm=\"kengate\""), "{what}");
    } else {
        assert_eq!(www, None, "{what}");
    }
}

/// A call that went through: HTTP 200 and a `result`; returns it.
#[track_caller]
fn assert_result(r: &Reply, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    let b = r.json();
    assert!(b.get("error").is_none() && b.get("result").is_some(), "{what}: {b}");
    b["result"].clone()
}

/// An HTTP 429 for a single call: `Retry-After` ≥ 1 and -32005 with the call's id.
#[track_caller]
fn assert_throttled(r: &Reply, id: u64, what: &str) -> u64 {
    assert_eq!(r.status, 429, "{what}: {}", r.text());
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After not a number"));
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    let b = r.json();
    assert_eq!(b["id"], id, "{what}: {b}");
    assert_eq!(b["error"]["code"], -32005, "{what}: {b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rate limit"),
        "{what}: {b}"
    );
    retry
}

fn network(name: &str, chain_id: u64, fakes: &[Fake]) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        chain_id: Some(chain_id),
        nodes: fakes
            .iter()
            .map(|f| NodeConfig {
                http: f.url.clone(),
                ..NodeConfig::default()
            })
            .collect(),
    }
}

/// Two clusters behind one gate: cypress (chain 8217, one node at head 100 → served head
/// `0x64`) and baobab (chain 1001, two nodes at 200 → `0xc8`).
struct Two {
    cypress: Vec<Fake>,
    baobab: Vec<Fake>,
    gate: Gate,
}

async fn two_networks(edit: impl FnOnce(&mut Config)) -> Two {
    let cypress = fake::cluster(&[100]).await;
    let baobab = fake::cluster(&[200, 200]).await;
    let mut cfg = test_config(&[]);
    cfg.networks = vec![network("cypress", 8217, &cypress), network("baobab", 1001, &baobab)];
    edit(&mut cfg);
    let gate = Gate::start(cfg).await;
    gate.wait_status("both networks serving", |s| {
        s["networks"][0]["served_head"] == 100 && s["networks"][1]["served_head"] == 200
    })
    .await;
    Two { cypress, baobab, gate }
}

/// One cluster (network `klaytn`, one node at head 100) and a gate configured by `edit`.
async fn one_network(edit: impl FnOnce(&mut Config)) -> (Vec<Fake>, Gate) {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    edit(&mut cfg);
    let gate = Gate::start(cfg).await;
    gate.wait_served(100).await;
    (fakes, gate)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with extra handshake headers.
async fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(req))
        .await
        .expect("ws handshake in time")
        .map(|(ws, _)| ws)
}

/// The HTTP status a refused WebSocket handshake got.
async fn ws_refused(url: &str, headers: &[(&str, &str)]) -> u16 {
    match ws_connect(url, headers).await {
        Ok(_) => panic!("{url}: upgrade accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// The next text message, as JSON.
async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("ws reply in time")
            .expect("ws still open")
            .expect("ws ok");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn ws_call(ws: &mut Ws, body: String) -> Value {
    ws.send(Message::text(body)).await.expect("ws send");
    ws_next(ws).await
}

/// `/metrics` (with the admin token, which it needs when the gate has one).
async fn metrics(gate: &Gate) -> String {
    let admin = format!("Bearer {ADMIN_TOKEN}");
    Http::default()
        .request(
            http::Method::GET,
            &format!("{}/metrics", gate.url),
            &[("authorization", admin.as_str())],
            "",
        )
        .await
        .text()
}

#[track_caller]
fn assert_metrics_have(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "metrics lack {n}:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn networks_are_picked_by_path_or_chain_id_and_anything_else_is_a_clear_4xx() {
    let Two { cypress, baobab, gate } = two_networks(|_| {}).await;
    let http = Http::default();
    let url = |p: &str| format!("{}{p}", gate.url);

    // By path, by x-chain-id (decimal or hex) and by caver-js-ext-kas's /v1/klaytn + x-chain-id.
    // klay_blockNumber is answered from the network's served head.
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("/v1/cypress", None, "0x64"),
        ("/v1/baobab", None, "0xc8"),
        ("/", Some("1001"), "0xc8"),
        ("/", Some("0x3e9"), "0xc8"),
        ("/", Some("0X3E9"), "0xc8"),
        ("/", Some("8217"), "0x64"),
        ("/v1/klaytn", Some("8217"), "0x64"),
        ("/v1/klaytn", Some("1001"), "0xc8"),
        ("/v1/cypress", Some("8217"), "0x64"),
        ("/v1/baobab", Some("0x3e9"), "0xc8"),
    ];
    for (i, (path, chain, head)) in cases.iter().enumerate() {
        let headers: Vec<(&str, &str)> = chain.iter().map(|c| ("x-chain-id", *c)).collect();
        let r = http
            .post_with_headers(&url(path), &headers, call("klay_blockNumber", i as u64))
            .await;
        assert_eq!(
            assert_result(&r, &format!("{path} {chain:?}")),
            *head,
            "{path} {chain:?}"
        );
    }

    // Forwarded calls reach only the picked cluster.
    assert_result(
        &http.post(&url("/v1/cypress"), call("klay_gasPrice", 1)).await,
        "cypress",
    );
    assert_eq!((calls_of(&cypress, "klay_gasPrice"), calls(&baobab)), (1, 0));
    let r = http
        .post_with_headers(&url("/"), &[("x-chain-id", "1001")], call("klay_gasPrice", 2))
        .await;
    assert_result(&r, "x-chain-id 1001");
    let r = http
        .post_with_headers(&url("/v1/klaytn"), &[("x-chain-id", "8217")], call("klay_gasPrice", 3))
        .await;
    assert_result(&r, "/v1/klaytn x-chain-id 8217");
    assert_eq!(
        (calls_of(&cypress, "klay_gasPrice"), calls_of(&baobab, "klay_gasPrice")),
        (2, 1)
    );

    // Nothing picks a network, or the pick is wrong: 4xx with a JSON-RPC error, no node reached.
    let before = (calls(&cypress), calls(&baobab));
    let refusals: &[(&str, Option<&str>, u16, &str)] = &[
        (
            "/",
            None,
            400,
            "use /v1/{network} (cypress, baobab) or the x-chain-id header",
        ),
        ("/v1/klaytn", None, 400, "(cypress, baobab)"),
        ("/v1/nope", None, 404, "unknown network \"nope\""),
        ("/v1/nope", Some("8217"), 404, "unknown network \"nope\""),
        ("/", Some("5"), 404, "no network with chain id 5 is served here"),
        ("/v1/klaytn", Some("5"), 404, "no network with chain id 5"),
        ("/", Some("abc"), 400, "x-chain-id must be a decimal or 0x-hex chain id"),
        ("/", Some(""), 400, "x-chain-id must be"),
        ("/", Some("-1"), 400, "x-chain-id must be"),
        (
            "/v1/cypress",
            Some("1001"),
            400,
            "x-chain-id 1001 does not match network cypress (chain id 8217)",
        ),
        ("/v1/baobab", Some("0x2019"), 400, "does not match network baobab"),
    ];
    for (path, chain, status, msg) in refusals {
        let headers: Vec<(&str, &str)> = chain.iter().map(|c| ("x-chain-id", *c)).collect();
        let r = http
            .post_with_headers(&url(path), &headers, call("klay_gasPrice", 9))
            .await;
        assert_refused(&r, *status, -32600, msg, &format!("POST {path} x-chain-id {chain:?}"));
    }
    assert_eq!(
        (calls(&cypress), calls(&baobab)),
        before,
        "a refused request reached a node"
    );

    // WebSocket on /v1/baobab routes to baobab; a bad network refuses the upgrade.
    let mut ws = ws_connect(&format!("ws://{}/v1/baobab", gate.addr), &[])
        .await
        .expect("ws /v1/baobab");
    assert_eq!(ws_call(&mut ws, call("klay_blockNumber", 10)).await["result"], "0xc8");
    assert_eq!(ws_call(&mut ws, call("klay_gasPrice", 11)).await["id"], 11);
    assert_eq!(
        (calls_of(&cypress, "klay_gasPrice"), calls_of(&baobab, "klay_gasPrice")),
        (2, 2)
    );
    // The KAS WebSocket path picks the network by its chain-id parameter.
    let mut kas = ws_connect(&format!("ws://{}/v1/ws/open?chain-id=8217", gate.addr), &[])
        .await
        .expect("ws /v1/ws/open");
    assert_eq!(ws_call(&mut kas, call("klay_blockNumber", 12)).await["result"], "0x64");
    assert_eq!(ws_refused(&format!("ws://{}/v1/nope", gate.addr), &[]).await, 404);
    assert_eq!(ws_refused(&format!("ws://{}/", gate.addr), &[]).await, 400);
    assert_eq!(
        ws_refused(&format!("ws://{}/v1/ws/open?chain-id=5", gate.addr), &[]).await,
        404
    );

    // REST per network: a transaction sent on cypress is listed there, not on baobab.
    let (raw, hash) = signed_tx(8217);
    let sent = http
        .post(
            &url("/v1/cypress"),
            call_with("klay_sendRawTransaction", 13, json!([raw])),
        )
        .await;
    assert_eq!(assert_result(&sent, "sendRawTransaction on cypress"), hash.as_str());
    assert_eq!(calls_of(&baobab, "klay_sendRawTransaction"), 0);
    let list = http.get(&url("/v1/cypress/tx?size=5")).await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["items"][0]["hash"], hash.as_str(), "{}", list.text());
    let list = http.get(&url("/v1/baobab/tx?size=5")).await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["items"], json!([]), "{}", list.text());
    // One record by hash, on the top-level path with x-chain-id (the per-network path
    // /v1/{network}/tx/{hash} is broken: see rest_lookup_by_hash_on_a_network_path).
    let one = |chain: &'static str| {
        let (http, u) = (http.clone(), url(&format!("/v1/tx/{hash}")));
        async move { http.get_with_headers(&u, &[("x-chain-id", chain)]).await }
    };
    let r = one("8217").await;
    assert_eq!((r.status, r.json()["hash"].clone()), (200, json!(hash)), "{}", r.text());
    assert_eq!(one("1001").await.status, 404, "baobab does not know cypress's tx");
    let r = http
        .get_with_headers(&url("/v1/tx?size=5"), &[("x-chain-id", "1001")])
        .await;
    assert_eq!((r.status, r.json()["items"].clone()), (200, json!([])), "{}", r.text());
    assert_eq!(http.get(&url("/v1/nope/tx?size=5")).await.status, 404);
    assert_eq!(
        http.get(&url("/v1/tx?size=5")).await.status,
        400,
        "REST with no network picked"
    );

    // /status lists both networks; /metrics labels every series by network.
    let s = gate.status().await;
    let nets = s["networks"].as_array().expect("networks");
    assert_eq!(nets.len(), 2, "{s}");
    assert_eq!(
        (&nets[0]["network"], &nets[0]["chain_id"], &nets[0]["served_head"]),
        (&json!("cypress"), &json!(8217), &json!(100))
    );
    assert_eq!(
        (&nets[1]["network"], &nets[1]["chain_id"], &nets[1]["served_head"]),
        (&json!("baobab"), &json!(1001), &json!(200))
    );
    assert_eq!(nets[1]["nodes"].as_array().map(Vec::len), Some(2));
    let m = metrics(&gate).await;
    assert_metrics_have(
        &m,
        &[
            r#"kengate_served_head{network="cypress"} 100"#,
            r#"kengate_served_head{network="baobab"} 200"#,
            r#"kengate_requests_total{network="cypress",method="klay_gasPrice",outcome="ok"} 2"#,
            r#"kengate_requests_total{network="baobab",method="klay_gasPrice",outcome="ok"} 2"#,
            r#"kengate_node_head{network="baobab",node="en2"} 200"#,
        ],
    );
}

#[tokio::test]
async fn rest_lookup_by_hash_on_a_network_path() {
    let Two {
        gate,
        cypress: _cypress,
        baobab: _baobab,
    } = two_networks(|_| {}).await;
    let http = Http::default();
    let url = |p: &str| format!("{}{p}", gate.url);
    let (raw, hash) = signed_tx(8217);
    let sent = http
        .post(
            &url("/v1/cypress"),
            call_with("klay_sendRawTransaction", 1, json!([raw])),
        )
        .await;
    assert_eq!(assert_result(&sent, "sendRawTransaction on cypress"), hash.as_str());
    let r = http.get(&url(&format!("/v1/cypress/tx/{hash}"))).await;
    assert_eq!((r.status, r.json()["hash"].clone()), (200, json!(hash)), "{}", r.text());
    let r = http.get(&url(&format!("/v1/baobab/tx/{hash}"))).await;
    assert_eq!(r.status, 404, "baobab does not know cypress's tx: {}", r.text());
    let r = http.get(&url("/v1/cypress/tx/0xnothash")).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test]
async fn a_single_network_needs_no_selector_and_refuses_another_chain_id() {
    let (fakes, gate) = one_network(|_| {}).await;
    // The fakes answer klay_chainID with 1337: learned, since none is configured.
    gate.wait_status("chain id 1337 learned", |s| s["chain_id"] == 1337)
        .await;
    let http = Http::default();
    let url = |p: &str| format!("{}{p}", gate.url);
    for (path, chain) in [
        ("/", None),
        ("/", Some("1337")),
        ("/", Some("0x539")),
        ("/v1/klaytn", None),
        ("/v1/klaytn", Some("1337")),
    ] {
        let headers: Vec<(&str, &str)> = chain.iter().map(|c| ("x-chain-id", *c)).collect();
        let r = http
            .post_with_headers(&url(path), &headers, call("klay_blockNumber", 1))
            .await;
        assert_eq!(assert_result(&r, &format!("{path} {chain:?}")), "0x64");
    }
    let refusals: &[(&str, &str, u16, &str)] = &[
        ("/", "1001", 404, "no network with chain id 1001 is served here"),
        ("/", "8217", 404, "no network with chain id 8217"),
        (
            "/v1/klaytn",
            "1001",
            400,
            "x-chain-id 1001 does not match network klaytn (chain id 1337)",
        ),
        ("/", "abc", 400, "x-chain-id must be"),
    ];
    for (path, chain, status, msg) in refusals {
        let r = http
            .post_with_headers(&url(path), &[("x-chain-id", chain)], call("klay_gasPrice", 2))
            .await;
        assert_refused(&r, *status, -32600, msg, &format!("{path} x-chain-id {chain}"));
    }
    assert_eq!(calls(&fakes), 0, "a refused request reached the node");
    assert_result(&http.post(&url("/"), call("klay_gasPrice", 3)).await, "after refusals");
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 1);
}

// ---------------------------------------------------------------------------------------------
// Access keys
// ---------------------------------------------------------------------------------------------

/// Two networks, auth on, and keys: `good` (everything), `expired`, `disabled`, `baobab-only`
/// and `reader` (methods = read).
async fn auth_gate() -> Two {
    two_networks(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![
            key("good"),
            KeyConfig {
                expires_at: Some(now_secs() - 60),
                ..key("expired")
            },
            KeyConfig {
                enabled: false,
                ..key("disabled")
            },
            KeyConfig {
                scope: KeyScope {
                    networks: vec!["baobab".into()],
                    ..key("baobab-only").scope
                },
                ..key("baobab-only")
            },
            KeyConfig {
                scope: KeyScope {
                    methods: vec!["read".into()],
                    ..key("reader").scope
                },
                ..key("reader")
            },
        ];
    })
    .await
}

#[tokio::test]
async fn requests_without_a_valid_credential_are_refused_and_reach_no_node() {
    let Two { cypress, baobab, gate } = auth_gate().await;
    let http = Http::default();
    let url = |p: &str| format!("{}{p}", gate.url);
    let good_wrong = basic("good", "not-the-secret-0123456789");
    let no_colon = format!("Basic {}", STANDARD.encode(format!("good{}", secret("good"))));
    let good = bearer("good");
    let expired = bearer("expired");
    let disabled = bearer("disabled");
    let baobab_only = bearer("baobab-only");
    let baobab_only_basic = basic("baobab-only", &secret("baobab-only"));
    let baobab_only_path = format!("/v1/cypress/{}", token("baobab-only"));
    const UNKNOWN_OR_WRONG: &str = "invalid access key id or secret";
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("/v1/cypress", vec![], 401, "an access key is required"),
        ("/", vec![("x-chain-id", "1001")], 401, "an access key is required"),
        (
            "/v1/cypress",
            vec![("authorization", "Bearer nodot")],
            401,
            "malformed credential: a token has the form <id>.<secret>",
        ),
        (
            "/v1/cypress",
            vec![("authorization", "Bearer")],
            401,
            "malformed credential",
        ),
        (
            "/v1/cypress",
            vec![("authorization", "Basic !!!")],
            401,
            "malformed credential: the Basic credential is not valid base64",
        ),
        (
            "/v1/cypress",
            vec![("authorization", &no_colon)],
            401,
            "malformed credential: the Basic credential has no ':'",
        ),
        (
            "/v1/cypress",
            vec![("authorization", &good), ("authorization", &good)],
            401,
            "malformed credential: more than one Authorization header",
        ),
        (
            "/v1/cypress",
            vec![("authorization", "Token good.x")],
            401,
            "malformed credential",
        ),
        (
            "/v1/cypress",
            vec![("authorization", "Bearer nosuchkey.whatever-secret-0123")],
            401,
            UNKNOWN_OR_WRONG,
        ),
        (
            "/v1/cypress",
            vec![("authorization", "Bearer good.not-the-secret-0123456789")],
            401,
            UNKNOWN_OR_WRONG,
        ),
        (
            "/v1/cypress",
            vec![("authorization", &good_wrong)],
            401,
            UNKNOWN_OR_WRONG,
        ),
        ("/v1/cypress/good.not-the-secret", vec![], 401, UNKNOWN_OR_WRONG),
        ("/v1/cypress/nosuchkey.x", vec![], 401, UNKNOWN_OR_WRONG),
        ("/v1/cypress/nodot", vec![], 401, "malformed credential"),
        (
            "/v1/cypress",
            vec![("authorization", &expired)],
            401,
            "this access key has expired",
        ),
        (
            "/v1/cypress",
            vec![("authorization", &disabled)],
            403,
            "this access key is disabled",
        ),
        (
            "/v1/cypress",
            vec![("authorization", &baobab_only)],
            403,
            "this access key may not be used on this network",
        ),
        (
            "/v1/klaytn",
            vec![("authorization", &baobab_only_basic), ("x-chain-id", "8217")],
            403,
            "may not be used on this network",
        ),
        (&baobab_only_path, vec![], 403, "on this network"),
    ];
    for (path, headers, status, msg) in &cases {
        let r = http
            .post_with_headers(&url(path), headers, call("klay_gasPrice", 1))
            .await;
        assert_refused(&r, *status, -32001, msg, &format!("POST {path} {headers:?}"));
    }
    // Unknown id and wrong secret read the same.
    let unknown = http
        .post_with_headers(
            &url("/v1/cypress"),
            &[("authorization", "Bearer nosuchkey.x-secret-0123456789")],
            call("klay_gasPrice", 1),
        )
        .await;
    let wrong = http
        .post_with_headers(
            &url("/v1/cypress"),
            &[("authorization", "Bearer good.x-secret-0123456789")],
            call("klay_gasPrice", 1),
        )
        .await;
    assert_eq!(unknown.body, wrong.body);

    // REST and WebSocket need the credential too.
    for (path, headers) in [
        ("/v1/cypress/tx?size=5", vec![]),
        ("/v1/tx?size=5", vec![("x-chain-id", "8217")]),
        (
            "/v1/baobab/tx/0x0000000000000000000000000000000000000000000000000000000000000001",
            vec![],
        ),
    ] {
        let r = http.get_with_headers(&url(path), &headers).await;
        assert_refused(&r, 401, -32001, "an access key is required", &format!("GET {path}"));
    }
    let r = http
        .get_with_headers(&url("/v1/cypress/tx?size=5"), &[("authorization", &expired)])
        .await;
    assert_refused(&r, 401, -32001, "expired", "REST with an expired key");
    let ws = |p: &str| format!("ws://{}{p}", gate.addr);
    assert_eq!(ws_refused(&ws("/v1/baobab"), &[]).await, 401);
    assert_eq!(ws_refused(&ws("/v1/baobab/good.not-the-secret"), &[]).await, 401);
    assert_eq!(
        ws_refused(&ws("/v1/baobab"), &[("authorization", &disabled)]).await,
        403
    );
    assert_eq!(
        ws_refused(&ws("/v1/cypress"), &[("authorization", &baobab_only)]).await,
        403
    );
    assert_eq!(ws_refused(&ws("/v1/ws/open?chain-id=1001"), &[]).await, 401);

    assert_eq!(calls(&cypress) + calls(&baobab), 0, "a refused request reached a node");
    // Every other client is still served.
    let r = http
        .post_with_headers(
            &url("/v1/cypress"),
            &[("authorization", &good)],
            call("klay_gasPrice", 2),
        )
        .await;
    assert_result(&r, "a valid key after the refusals");
    assert_eq!(calls(&cypress), 1);
}

#[tokio::test]
async fn bearer_basic_and_url_tokens_are_accepted_on_http_rest_and_websocket() {
    let Two { cypress, baobab, gate } = auth_gate().await;
    let http = Http::default();
    let url = |p: &str| format!("{}{p}", gate.url);
    let good = bearer("good");
    let good_basic = basic("good", &secret("good"));

    let r = http
        .post_with_headers(
            &url("/v1/cypress"),
            &[("authorization", &good)],
            call("klay_gasPrice", 1),
        )
        .await;
    assert_eq!(assert_result(&r, "Bearer")["node"], 0);
    assert_eq!((calls(&cypress), calls(&baobab)), (1, 0));
    // caver-js-ext-kas: Basic id:secret, x-chain-id, POST {url}/v1/klaytn.
    for (chain, head) in [("8217", "0x64"), ("1001", "0xc8")] {
        let r = http
            .post_with_headers(
                &url("/v1/klaytn"),
                &[("authorization", &good_basic), ("x-chain-id", chain)],
                call("klay_blockNumber", 2),
            )
            .await;
        assert_eq!(assert_result(&r, &format!("Basic, x-chain-id {chain}")), head);
    }
    let r = http
        .post_with_headers(
            &url("/v1/klaytn"),
            &[("authorization", &good_basic), ("x-chain-id", "1001")],
            call("klay_gasPrice", 3),
        )
        .await;
    assert_result(&r, "Basic gasPrice on baobab");
    assert_eq!((calls(&cypress), calls(&baobab)), (1, 1));
    // The scheme is case-insensitive.
    let r = http
        .post_with_headers(
            &url("/v1/cypress"),
            &[("authorization", &format!("bearer {}", token("good")))],
            call("klay_blockNumber", 4),
        )
        .await;
    assert_eq!(assert_result(&r, "lower-case bearer"), "0x64");
    // URL token, for clients that only take a URL.
    let r = http
        .post(
            &url(&format!("/v1/baobab/{}", token("good"))),
            call("klay_blockNumber", 5),
        )
        .await;
    assert_eq!(assert_result(&r, "URL token"), "0xc8");
    let r = http
        .post(
            &url(&format!("/v1/baobab/{}", token("baobab-only"))),
            call("klay_gasPrice", 6),
        )
        .await;
    assert_result(&r, "a baobab-only key on baobab");
    assert_eq!(calls(&baobab), 2);

    // WebSocket: URL token, Authorization header, the KAS path with Basic.
    let mut ws = ws_connect(&format!("ws://{}/v1/baobab/{}", gate.addr, token("good")), &[])
        .await
        .expect("ws with URL token");
    assert_eq!(ws_call(&mut ws, call("klay_blockNumber", 7)).await["result"], "0xc8");
    assert_eq!(ws_call(&mut ws, call("klay_gasPrice", 8)).await["id"], 8);
    assert_eq!(calls(&baobab), 3);
    let mut ws = ws_connect(&format!("ws://{}/v1/cypress", gate.addr), &[("authorization", &good)])
        .await
        .expect("ws with Bearer");
    assert_eq!(ws_call(&mut ws, call("klay_blockNumber", 9)).await["result"], "0x64");
    let mut ws = ws_connect(
        &format!("ws://{}/v1/ws/open?chain-id=1001", gate.addr),
        &[("authorization", &good_basic)],
    )
    .await
    .expect("KAS ws with Basic");
    assert_eq!(ws_call(&mut ws, call("klay_blockNumber", 10)).await["result"], "0xc8");

    // REST with a credential.
    let r = http
        .get_with_headers(&url("/v1/cypress/tx?size=5"), &[("authorization", &good)])
        .await;
    assert_eq!((r.status, r.json()["items"].clone()), (200, json!([])), "{}", r.text());
    let r = http
        .get_with_headers(
            &url("/v1/tx?size=5"),
            &[("authorization", &good_basic), ("x-chain-id", "1001")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_read_only_key_cannot_send_transactions_but_reads() {
    let Two { cypress, baobab, gate } = auth_gate().await;
    let http = Http::default();
    let url = format!("{}/v1/cypress", gate.url);
    let reader = bearer("reader");
    let (raw, hash) = signed_tx(8217);
    let send = call_with("klay_sendRawTransaction", 7, json!([raw]));

    let r = http
        .post_with_headers(&url, &[("authorization", &reader)], send.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!((&b["id"], &b["error"]["code"]), (&json!(7), &json!(-32601)), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("klay_sendRawTransaction"),
        "{b}"
    );
    // Also the kaia_ spelling, and inside a batch next to a read that goes through.
    let batch = format!(
        "[{},{}]",
        call("klay_gasPrice", 1),
        call_with("kaia_sendRawTransaction", 2, json!([raw]))
    );
    let r = http.post_with_headers(&url, &[("authorization", &reader)], batch).await;
    let b = r.json();
    let by_id = |id: u64| b.as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert!(by_id(1).get("result").is_some(), "{b}");
    assert_eq!(by_id(2)["error"]["code"], -32601, "{b}");
    assert_eq!(
        calls_of(&cypress, "klay_sendRawTransaction") + calls_of(&cypress, "kaia_sendRawTransaction"),
        0,
        "a refused write reached the node"
    );
    assert_eq!(calls_of(&cypress, "klay_gasPrice"), 1);
    let r = http
        .post_with_headers(&url, &[("authorization", &reader)], call("klay_blockNumber", 3))
        .await;
    assert_eq!(assert_result(&r, "reader's read"), "0x64");

    // The same write with a key allowed to write is forwarded.
    let r = http
        .post_with_headers(&url, &[("authorization", &bearer("good"))], send)
        .await;
    assert_eq!(assert_result(&r, "good key's write"), hash.as_str());
    assert_eq!(calls_of(&cypress, "klay_sendRawTransaction"), 1);
    assert_eq!(calls(&baobab), 0);
}

// ---------------------------------------------------------------------------------------------
// Admin API and key lifecycle
// ---------------------------------------------------------------------------------------------

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

#[tokio::test]
async fn the_admin_api_creates_lists_rotates_and_revokes_keys_with_immediate_effect() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.admin_token = Some(ADMIN_TOKEN.into());
        c.auth.keys = vec![key("cfg-key")];
    })
    .await;
    let http = Http::default();
    let keys_url = format!("{}/admin/keys", gate.url);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let with_admin = [("authorization", admin.as_str())];
    let rpc = |tok: String, id: u64| {
        let (http, url) = (http.clone(), gate.url.clone());
        async move {
            http.post_with_headers(
                &url,
                &[("authorization", &format!("Bearer {tok}"))],
                call("klay_gasPrice", id),
            )
            .await
        }
    };

    // Without the admin token, or with a wrong one: 401, and nothing is created.
    let wrong = [("authorization", "Bearer wrong-admin-token-0123456789")];
    for (what, headers) in [("no token", &[][..]), ("wrong token", &wrong[..])] {
        for (method, path) in [
            (http::Method::GET, ""),
            (http::Method::POST, ""),
            (http::Method::DELETE, "/cfg-key"),
        ] {
            let r = http
                .request(method.clone(), &format!("{keys_url}{path}"), headers, "{}")
                .await;
            assert_eq!(r.status, 401, "{what} {method} {path}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"kengate-admin\""));
            assert!(r.json()["error"].as_str().unwrap().contains("admin token required"));
        }
    }
    // An access key is not an admin token, nor the admin token an access key.
    let r = http
        .get_with_headers(&keys_url, &[("authorization", &bearer("cfg-key"))])
        .await;
    assert_eq!(r.status, 401);
    let r = rpc(ADMIN_TOKEN.into(), 1).await;
    assert_refused(&r, 401, -32001, "malformed credential", "admin token as an access key");

    // Create: 201 with the secret, shown this once.
    let r = http
        .post_with_headers(
            &keys_url,
            &with_admin,
            json!({"label": "ci runner", "networks": ["klaytn"], "rps": 100}).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret1 = created["secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("KG") && id.len() == 22, "{created}");
    assert_eq!(secret1.len(), 43, "{created}");
    assert_eq!(created["token"], format!("{id}.{secret1}"));
    assert_eq!(created["key"]["status"], "active");
    assert_eq!(created["key"]["label"], "ci runner");
    assert_eq!(created["key"]["source"], "store");
    assert!(created["key"].get("secret_sha256").is_none(), "{created}");

    // It works at once.
    assert_result(&rpc(format!("{id}.{secret1}"), 2).await, "a new key");

    // The listing names it (and the config key) but never a secret or a hash.
    let r = http.get_with_headers(&keys_url, &with_admin).await;
    assert_eq!(r.status, 200);
    let listing = r.text();
    assert!(!listing.contains(&secret1), "the listing shows the secret: {listing}");
    assert!(!listing.contains(&secret("cfg-key")), "{listing}");
    assert!(!listing.contains("secret"), "the listing has a secret field: {listing}");
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["cfg-key", id.as_str()], "{listing}");
    assert_eq!(keys[0]["source"], "config");
    assert_eq!(keys[1]["networks"], json!(["klaytn"]));
    let one = http.get_with_headers(&format!("{keys_url}/{id}"), &with_admin).await;
    assert_eq!((one.status, one.json()["id"].clone()), (200, json!(id)));
    assert!(!one.text().contains(&secret1));

    // Rotate: the old secret stops at once, the new one works.
    let r = http
        .post_with_headers(&format!("{keys_url}/{id}/rotate"), &with_admin, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let secret2 = r.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret2, secret1);
    let r = rpc(format!("{id}.{secret1}"), 3).await;
    assert_refused(
        &r,
        401,
        -32001,
        "invalid access key id or secret",
        "the rotated-out secret",
    );
    assert_result(&rpc(format!("{id}.{secret2}"), 4).await, "the rotated-in secret");

    // Revoke: refused from now on, for good.
    let r = http
        .request(http::Method::DELETE, &format!("{keys_url}/{id}"), &with_admin, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revoked"], true);
    assert_eq!(r.json()["key"]["status"], "revoked");
    let r = rpc(format!("{id}.{secret2}"), 5).await;
    assert_refused(&r, 401, -32001, "this access key has been revoked", "a revoked key");
    let r = http
        .post_with_headers(&format!("{keys_url}/{id}/rotate"), &with_admin, "")
        .await;
    assert_eq!(r.status, 409, "rotating a revoked key: {}", r.text());

    // Unknown ids and paths: 404; config keys are not managed here: 409; bad bodies: 400.
    for (method, path) in [
        (http::Method::GET, "/KGNOPE"),
        (http::Method::DELETE, "/KGNOPE"),
        (http::Method::POST, "/KGNOPE/rotate"),
        (http::Method::GET, "/KGNOPE/nope"),
        (http::Method::GET, "/not.an.id"),
    ] {
        let r = http
            .request(method.clone(), &format!("{keys_url}{path}"), &with_admin, "")
            .await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let r = http
        .request(http::Method::DELETE, &format!("{keys_url}/cfg-key"), &with_admin, "")
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    for body in [
        "{nope",
        r#"{"networks":["nope"]}"#,
        r#"{"colour":"red"}"#,
        r#"{"ip_allow":["x"]}"#,
    ] {
        let r = http.post_with_headers(&keys_url, &with_admin, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    let r = http.request(http::Method::PUT, &keys_url, &with_admin, "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET, POST");
    assert_result(&rpc(token("cfg-key"), 6).await, "the config key still works");
    // The REST API needs a credential like JSON-RPC.
    let r = http.get(&format!("{}/v1/tx?size=5", gate.url)).await;
    assert_refused(
        &r,
        401,
        -32001,
        "an access key is required",
        "GET /v1/tx without a credential",
    );
    let r = http
        .get_with_headers(
            &format!("{}/v1/tx?size=5", gate.url),
            &[("authorization", &bearer("cfg-key"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Only the calls made with valid keys reached the node.
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 3);

    // Without an admin token configured, the admin API does not exist.
    let (_fakes2, plain) = one_network(|c| c.auth.enabled = true).await;
    let r = http
        .get_with_headers(&format!("{}/admin/keys", plain.url), &with_admin)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("admin API is off"));
}

/// Runs the real binary; returns (success, stdout, stderr).
async fn kengate_cli(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
        .args(args)
        .env_remove("KENGATE_ADMIN_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run kengate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls a call with `token` until it gets `status` (within 3 s); returns how long it took.
async fn status_within_3s(gate: &Gate, token: &str, status: u16) -> Duration {
    let started = Instant::now();
    loop {
        let r = Http::default()
            .post_with_headers(
                &gate.url,
                &[("authorization", &format!("Bearer {token}"))],
                call("klay_gasPrice", 1),
            )
            .await;
        if r.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no {status} within 3 s; last: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keys_made_with_the_cli_apply_to_a_running_gate_without_restart() {
    let mut store_path = None;
    let (_fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        store_path = Some(c.store.path.clone());
    })
    .await;
    let store_path = store_path.unwrap();
    let dir = store_path.parent().unwrap().to_str().unwrap().to_owned();
    assert!(Path::new(&store_path).exists(), "the gate created its store");

    let (ok, out, err) = kengate_cli(&["keys", "create", "--label", "x", "--data-dir", &dir]).await;
    assert!(ok, "keys create failed: {out}{err}");
    let tok = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned();
    let id = tok.split('.').next().unwrap().to_owned();
    assert!(out.starts_with(&format!("Created access key {id}\n")), "{out}");
    let took = status_within_3s(&gate, &tok, 200).await;
    eprintln!("CLI-created key accepted after {took:?}");

    let (ok, out, err) = kengate_cli(&["keys", "list", "--json", "--data-dir", &dir]).await;
    assert!(ok, "{out}{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(
        !out.contains(tok.split_once('.').unwrap().1),
        "keys list shows the secret"
    );

    let (ok, out, err) = kengate_cli(&["keys", "revoke", &id, "--data-dir", &dir]).await;
    assert!(ok, "keys revoke failed: {out}{err}");
    assert!(out.starts_with(&format!("Revoked access key {id}")), "{out}");
    let took = status_within_3s(&gate, &tok, 401).await;
    eprintln!("CLI-revoked key refused after {took:?}");
    let r = Http::default()
        .post_with_headers(
            &gate.url,
            &[("authorization", &format!("Bearer {tok}"))],
            call("klay_gasPrice", 1),
        )
        .await;
    assert_refused(&r, 401, -32001, "revoked", "a key revoked by the CLI");
}

// ---------------------------------------------------------------------------------------------
// Client IP
// ---------------------------------------------------------------------------------------------

fn ip_keys() -> Vec<KeyConfig> {
    vec![
        from_ips("ten", &["10.0.0.0/8"]),
        from_ips("local", &["127.0.0.1/32"]),
        from_ips("doc6", &["2001:db8::/32"]),
    ]
}

#[tokio::test]
async fn ip_allow_lists_believe_forwarding_headers_only_from_trusted_proxies() {
    const FROM_IP: &str = "this access key may not be used from this IP address";
    // (key, forwarding headers, expected status)
    type Case = (&'static str, Vec<(&'static str, &'static str)>, u16);
    let check = |gate: &Gate, cases: Vec<Case>, what: &'static str| {
        let url = gate.url.clone();
        async move {
            let http = Http::default();
            let mut served = 0;
            for (k, fwd, status) in cases {
                let auth = bearer(k);
                let mut headers = vec![("authorization", auth.as_str())];
                headers.extend(fwd.iter().copied());
                let r = http.post_with_headers(&url, &headers, call("klay_gasPrice", 1)).await;
                if status == 200 {
                    assert_result(&r, &format!("{what}: {k} {fwd:?}"));
                    served += 1;
                } else {
                    assert_refused(&r, status, -32001, FROM_IP, &format!("{what}: {k} {fwd:?}"));
                }
            }
            served
        }
    };

    // No trusted proxies: the TCP peer (127.0.0.1) is the client, whatever the headers say.
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = ip_keys();
    })
    .await;
    let served = check(
        &gate,
        vec![
            ("ten", vec![], 403),
            ("ten", vec![("x-forwarded-for", "10.1.2.3")], 403),
            ("ten", vec![("x-forwarded-for", "::ffff:10.1.2.3")], 403),
            ("ten", vec![("forwarded", "for=10.1.2.3")], 403),
            ("doc6", vec![("forwarded", "for=\"[2001:db8::1]\"")], 403),
            ("local", vec![], 200),
            ("local", vec![("x-forwarded-for", "10.1.2.3")], 200),
        ],
        "untrusted peer",
    )
    .await;
    assert_eq!(calls(&fakes), served, "a refused request reached the node");

    // 127.0.0.1 is a trusted proxy: the right-most address it vouches for is the client.
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = ip_keys();
        c.auth.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let served = check(
        &gate,
        vec![
            ("ten", vec![("x-forwarded-for", "10.1.2.3")], 200),
            ("ten", vec![], 403),
            // The client prepended 10.1.2.3; the proxy appended the real 192.0.2.7.
            ("ten", vec![("x-forwarded-for", "10.1.2.3, 192.0.2.7")], 403),
            ("ten", vec![("x-forwarded-for", "192.0.2.7, 10.1.2.3")], 200),
            ("ten", vec![("x-forwarded-for", "10.1.2.3, 127.0.0.1")], 200),
            ("ten", vec![("x-forwarded-for", "::ffff:10.1.2.3")], 200),
            ("ten", vec![("x-forwarded-for", "[::ffff:10.1.2.3]:4711")], 200),
            ("ten", vec![("x-forwarded-for", "10.1.2.3, unknown")], 403),
            ("doc6", vec![("forwarded", "for=\"[2001:db8::1]\"")], 200),
            (
                "doc6",
                vec![("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")],
                200,
            ),
            ("doc6", vec![("x-forwarded-for", "2001:db8:ffff::9")], 200),
            ("doc6", vec![("x-forwarded-for", "2001:db9::1")], 403),
            ("ten", vec![("forwarded", "for=\"[2001:db8::1]\"")], 403),
            ("ten", vec![("forwarded", "for=10.200.0.1")], 200),
            ("local", vec![("x-forwarded-for", "10.1.2.3")], 403),
            ("local", vec![], 200),
        ],
        "trusted peer",
    )
    .await;
    assert_eq!(calls(&fakes), served, "a refused request reached the node");
}

#[tokio::test]
async fn an_ipv6_peer_is_matched_against_ipv6_cidrs() {
    let fakes = fake::cluster(&[100]).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.auth.enabled = true;
    cfg.auth.keys = vec![
        from_ips("v6", &["::1/128"]),
        from_ips("v6-bare", &["::1"]),
        from_ips("v4", &["127.0.0.1/32"]),
    ];
    let gate = match Gate::start_on("[::1]:0", cfg).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipped: no IPv6 loopback ({e})");
            return;
        }
    };
    assert_eq!(gate.url, format!("http://[::1]:{}", gate.addr.port()));
    gate.wait_served(100).await;
    let http = Http::default();
    for k in ["v6", "v6-bare"] {
        let r = http
            .post_with_headers(&gate.url, &[("authorization", &bearer(k))], call("klay_gasPrice", 1))
            .await;
        assert_result(&r, k);
    }
    let r = http
        .post_with_headers(&gate.url, &[("authorization", &bearer("v4"))], call("klay_gasPrice", 1))
        .await;
    assert_refused(&r, 403, -32001, "from this IP address", "an IPv4 key from ::1");
    assert_eq!(calls(&fakes), 2);
}

// ---------------------------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_key_over_its_rate_gets_429_and_another_key_is_not_affected() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![limited("key-a", 5, 5), limited("key-b", 5, 5)];
    })
    .await;
    let http = Http::default();
    let a = bearer("key-a");
    let started = Instant::now();
    let (mut ok, mut throttled) = (0usize, 0usize);
    for id in 1..=20 {
        let r = http
            .post_with_headers(&gate.url, &[("authorization", &a)], call("klay_gasPrice", id))
            .await;
        if r.status == 200 {
            assert_result(&r, &format!("A call {id}"));
            ok += 1;
        } else {
            assert_throttled(&r, id, &format!("A call {id}"));
            throttled += 1;
        }
    }
    let elapsed = started.elapsed();
    // The burst of 5, plus what 5/s refilled meanwhile; the rest is refused.
    let most = 5 + (elapsed.as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        (5..=most).contains(&ok) && throttled >= 1,
        "{ok} served, {throttled} refused in {elapsed:?}"
    );
    // B's bucket is its own: all 5 at once.
    let b = bearer("key-b");
    for id in 1..=5 {
        let r = http
            .post_with_headers(&gate.url, &[("authorization", &b)], call("klay_gasPrice", id))
            .await;
        assert_result(&r, &format!("B call {id}"));
    }
    assert_eq!(
        calls_of(&fakes, "klay_gasPrice"),
        ok + 5,
        "a throttled call reached the node"
    );
}

#[tokio::test]
async fn a_batch_costs_one_token_per_call_and_a_throttled_batch_gets_an_error_per_call() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![limited("batcher", 1, 5)];
    })
    .await;
    let http = Http::default();
    let auth = bearer("batcher");
    let headers = [("authorization", auth.as_str())];
    let batch = |ids: &[u64]| {
        let calls: Vec<String> = ids.iter().map(|&i| call("klay_gasPrice", i)).collect();
        format!("[{}]", calls.join(","))
    };
    let r = http
        .post_with_headers(&gate.url, &headers, batch(&[1, 2, 3, 4, 5]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let replies = r.json();
    assert_eq!(replies.as_array().map(Vec::len), Some(5), "{replies}");
    assert!(
        replies.as_array().unwrap().iter().all(|c| c.get("result").is_some()),
        "{replies}"
    );
    let upstream = calls(&fakes);
    assert!((1..=5).contains(&upstream));

    // The batch of 5 emptied the bucket of 5.
    let r = http
        .post_with_headers(&gate.url, &headers, call("klay_gasPrice", 6))
        .await;
    assert_throttled(&r, 6, "the call after a batch of 5");
    let r = http.post_with_headers(&gate.url, &headers, batch(&[7, 8, 9])).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let errors = r.json();
    let errors = errors.as_array().expect("a batch's 429 body is an array");
    assert_eq!(
        errors.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(),
        [json!(7), json!(8), json!(9)]
    );
    assert!(errors.iter().all(|e| e["error"]["code"] == -32005), "{errors:?}");
    assert_eq!(calls(&fakes), upstream, "a throttled call reached the node");
}

#[tokio::test]
async fn heavy_methods_cost_their_weight() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![limited("heavy", 1, 10), limited("nine", 1, 10)];
        c.throttle.method_weights.insert("klay_estimateGas".into(), 4);
    })
    .await;
    assert_eq!(gate.status().await["served_head"], 100);
    let http = Http::default();
    let logs = |id| call_with("klay_getLogs", id, json!([{"fromBlock": "0x1", "toBlock": "0x2"}]));
    let send = |k: &'static str, body: String| {
        let (http, url) = (http.clone(), gate.url.clone());
        async move {
            http.post_with_headers(&url, &[("authorization", &bearer(k))], body)
                .await
        }
    };
    // One getLogs (weight 10 by default) takes the whole bucket of 10.
    assert_result(&send("heavy", logs(1)).await, "the first getLogs");
    assert_throttled(&send("heavy", call("klay_gasPrice", 2)).await, 2, "after a getLogs");
    // Nine light calls leave one token: too few for a getLogs, enough for one light call (the
    // refused getLogs took nothing).
    for id in 1..=9 {
        assert_result(&send("nine", call("klay_gasPrice", id)).await, "a light call");
    }
    assert_throttled(&send("nine", logs(10)).await, 10, "getLogs with one token left");
    assert_result(&send("nine", call("klay_gasPrice", 11)).await, "the last token");
    assert_eq!(calls_of(&fakes, "klay_getLogs"), 1);
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 10);
}

#[tokio::test]
async fn the_per_ip_bucket_applies_without_auth_and_per_client_ip() {
    let (fakes, gate) = one_network(|c| {
        c.throttle.per_ip = RateConfig { rps: 1, burst: 3 };
        // Lets the test speak for other clients through X-Forwarded-For.
        c.auth.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let http = Http::default();
    for id in 1..=3 {
        assert_result(
            &http.post(&gate.url, call("klay_gasPrice", id)).await,
            "within the burst",
        );
    }
    let retry = assert_throttled(&http.post(&gate.url, call("klay_gasPrice", 4)).await, 4, "the 4th call");
    assert_eq!(retry, 1, "at 1/s the next token is at most a second away");
    // Another client IP has a bucket of its own.
    for id in 5..=7 {
        let r = http
            .post_with_headers(
                &gate.url,
                &[("x-forwarded-for", "192.0.2.9")],
                call("klay_gasPrice", id),
            )
            .await;
        assert_result(&r, "another client");
    }
    let r = http
        .post_with_headers(&gate.url, &[("x-forwarded-for", "192.0.2.9")], call("klay_gasPrice", 8))
        .await;
    assert_throttled(&r, 8, "another client's 4th call");
    // The admin endpoints are not throttled.
    assert_eq!(http.get(&format!("{}/status", gate.url)).await.status, 200);
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 6);
}

#[tokio::test]
async fn over_websocket_the_call_over_the_rate_gets_32005_and_the_connection_stays_open() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![limited("ws-key", 2, 2)];
    })
    .await;
    let auth = bearer("ws-key");
    let mut ws = ws_connect(&format!("ws://{}/", gate.addr), &[("authorization", &auth)])
        .await
        .expect("ws");
    for id in 1..=3 {
        ws.send(Message::text(call("klay_gasPrice", id))).await.unwrap();
    }
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(ws_next(&mut ws).await);
    }
    let refused: Vec<&Value> = replies.iter().filter(|r| r.get("error").is_some()).collect();
    assert_eq!(refused.len(), 1, "{replies:?}");
    assert_eq!(refused[0]["error"]["code"], -32005, "{replies:?}");
    let mut ids: Vec<u64> = replies.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    // A batch over the rate: -32005 for each of its calls.
    let batch = format!("[{},{}]", call("klay_gasPrice", 4), call("klay_gasPrice", 5));
    ws.send(Message::text(batch)).await.unwrap();
    let r = ws_next(&mut ws).await;
    assert_eq!(r[0]["id"], 4, "{r}");
    assert_eq!(r[1]["id"], 5, "{r}");
    assert!(
        r.as_array().unwrap().iter().all(|e| e["error"]["code"] == -32005),
        "{r}"
    );
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 2);
    // After the refill, the same connection is served again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = ws_call(&mut ws, call("klay_gasPrice", 6)).await;
    assert!(r.get("result").is_some(), "{r}");
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 3);
}

// ---------------------------------------------------------------------------------------------
// Slowloris and oversized heads
// ---------------------------------------------------------------------------------------------

/// Reads until the peer closes (EOF or reset) or `limit` passes; returns what was read and
/// when the connection ended (`None`: still open at the limit).
async fn read_until_closed(
    r: &mut (impl AsyncReadExt + Unpin),
    since: Instant,
    limit: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(since.elapsed());
        match tokio::time::timeout(left, r.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(since.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A fresh connection per call (the gate closes idle keep-alive connections after the header
/// read timeout too, so a pooled one could be cut under the test's feet).
async fn fresh_call(gate: &Gate, id: u64) -> Reply {
    Http::default().post(&gate.url, call("klay_gasPrice", id)).await
}

#[tokio::test]
async fn a_stalled_or_trickled_request_head_is_cut_off_while_others_are_served() {
    let (fakes, gate) = one_network(|c| c.limits.header_read_timeout_ms = 300).await;
    let head = b"POST / HTTP/1.1\r\nHost: kengate\r\nContent-Type: application/json\r\n";

    // 1. A partial head, then nothing.
    let stalled_at = Instant::now();
    let mut stalled = TcpStream::connect(gate.addr).await.unwrap();
    stalled.write_all(head).await.unwrap();
    // 2. A head trickled in one byte every 50 ms (each byte would reset a naive idle timer).
    let trickled_at = Instant::now();
    let (mut trickle_rx, mut trickle_tx) = TcpStream::connect(gate.addr).await.unwrap().into_split();
    let trickler = tokio::spawn(async move {
        let mut long = head.to_vec();
        long.extend(std::iter::repeat_n(b'x', 100));
        for b in long {
            if trickle_tx.write_all(&[b]).await.is_err() {
                return true; // cut off
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    // 3. A connection that sends nothing at all.
    let idle_at = Instant::now();
    let mut idle = TcpStream::connect(gate.addr).await.unwrap();

    // Meanwhile, other clients are answered.
    for id in 1..=3 {
        assert_result(&fresh_call(&gate, id).await, "a normal client during the attack");
    }

    let limit = Duration::from_secs(2);
    let (stalled_bytes, stalled_end) = read_until_closed(&mut stalled, stalled_at, limit).await;
    let (trickle_bytes, trickle_end) = read_until_closed(&mut trickle_rx, trickled_at, limit).await;
    let (idle_bytes, idle_end) = read_until_closed(&mut idle, idle_at, limit).await;
    for (what, bytes, end) in [
        ("stalled", stalled_bytes, stalled_end),
        ("trickled", trickle_bytes, trickle_end),
        ("idle", idle_bytes, idle_end),
    ] {
        let end = end.unwrap_or_else(|| panic!("the {what} connection is still open after {limit:?}"));
        eprintln!("{what} connection closed after {end:?}");
        assert!(end >= Duration::from_millis(250), "{what}: closed too early ({end:?})");
        // hyper closes without an answer on a header timeout (no 408 is written).
        assert!(
            bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 408"),
            "{what}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(2), trickler).await.is_ok(),
        "the trickler was never cut off"
    );

    assert_result(&fresh_call(&gate, 4).await, "a normal client after the attack");
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), 4);
}

/// Sends `req` on a new connection in `chunk`-byte writes `pause` apart (in the background, so
/// a peer that stops reading cannot block the test) and returns everything read until the
/// peer closes.
async fn raw_exchange(gate: &Gate, req: Vec<u8>, chunk: usize, pause: Duration) -> Vec<u8> {
    let (mut rx, mut tx) = TcpStream::connect(gate.addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        for part in req.chunks(chunk) {
            if tx.write_all(part).await.is_err() {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        tx
    });
    let (bytes, end) = read_until_closed(&mut rx, Instant::now(), Duration::from_secs(5)).await;
    assert!(end.is_some(), "the connection stayed open");
    drop(writer.await);
    bytes
}

fn raw_post(extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: kengate\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Request heads over the default `limits.max_header_bytes` (64 KiB): one 100 KB header, and
/// 90 headers of 1 KB.
fn oversized_heads() -> [(&'static str, String); 2] {
    [
        ("one 100 KB header", format!("X-Big: {}\r\n", "a".repeat(100_000))),
        (
            "90 headers of 1 KB",
            (0..90).map(|i| format!("X-H{i}: {}\r\n", "b".repeat(1000))).collect(),
        ),
    ]
}

#[track_caller]
fn assert_431(reply: &[u8], what: &str) {
    let text = String::from_utf8_lossy(reply);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{what}: {text}"
    );
}

#[tokio::test]
async fn request_heads_over_max_header_bytes_get_431_and_the_gate_keeps_serving() {
    let (fakes, gate) = one_network(|_| {}).await;
    let body = call("klay_gasPrice", 1);
    // Under the default 64 KiB: served.
    let head = format!("X-Big: {}\r\n", "a".repeat(60_000));
    let ok = raw_exchange(&gate, raw_post(&head, &body), 8192, Duration::from_millis(5)).await;
    assert!(ok.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&ok));
    // Over it, arriving in pieces (as over a real network): 431, before any call runs.
    for (what, big) in oversized_heads() {
        let reply = raw_exchange(&gate, raw_post(&big, &body), 8192, Duration::from_millis(5)).await;
        assert_431(&reply, what);
    }
    assert_eq!(
        calls_of(&fakes, "klay_gasPrice"),
        1,
        "an oversized request reached the node"
    );
    assert_result(&fresh_call(&gate, 2).await, "a normal client afterwards");
}

#[tokio::test]
async fn request_heads_over_max_header_bytes_get_431_however_fast_they_arrive() {
    let (fakes, gate) = one_network(|_| {}).await;
    let body = call("klay_gasPrice", 1);
    for (what, big) in oversized_heads() {
        let reply = raw_exchange(&gate, raw_post(&big, &body), usize::MAX, Duration::ZERO).await;
        assert_431(&reply, what);
    }
    assert_eq!(
        calls_of(&fakes, "klay_gasPrice"),
        0,
        "an oversized request reached the node"
    );
    // A smaller limit is honoured too.
    let (fakes, gate) = one_network(|c| c.limits.max_header_bytes = 16 * 1024).await;
    let head = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let reply = raw_exchange(&gate, raw_post(&head, &body), usize::MAX, Duration::ZERO).await;
    assert_431(&reply, "a 20 KB header with max_header_bytes = 16 KiB");
    assert_eq!(
        calls_of(&fakes, "klay_gasPrice"),
        0,
        "an oversized request reached the node"
    );
}

// ---------------------------------------------------------------------------------------------
// Audit metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn audit_metrics_count_calls_per_key_and_refusals_per_reason() {
    let (_fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![
            limited("audited", 1, 2),
            from_ips("ten", &["10.0.0.0/8"]),
            KeyConfig {
                scope: KeyScope {
                    methods: vec!["read".into()],
                    ..key("reader").scope
                },
                ..key("reader")
            },
        ];
    })
    .await;
    let http = Http::default();
    let send = |auth: Option<String>, body: String| {
        let (http, url) = (http.clone(), gate.url.clone());
        async move {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
            http.post_with_headers(&url, &headers, body).await
        }
    };
    for id in 1..=2 {
        assert_result(
            &send(Some(bearer("audited")), call("klay_gasPrice", id)).await,
            "audited",
        );
    }
    assert_throttled(
        &send(Some(bearer("audited")), call("klay_gasPrice", 3)).await,
        3,
        "rate",
    );
    let wrong = Some("Bearer audited.not-the-secret-0123456789".to_owned());
    assert_eq!(send(wrong, call("klay_gasPrice", 4)).await.status, 401);
    assert_eq!(send(None, call("klay_gasPrice", 5)).await.status, 401);
    assert_eq!(send(Some(bearer("ten")), call("klay_gasPrice", 6)).await.status, 403);
    let (raw, _) = signed_tx(1337);
    let r = send(
        Some(bearer("reader")),
        call_with("klay_sendRawTransaction", 7, json!([raw])),
    )
    .await;
    assert_eq!(r.json()["error"]["code"], -32601);

    let m = metrics(&gate).await;
    assert_metrics_have(
        &m,
        &[
            r#"kengate_key_requests_total{key="audited",method="klay_gasPrice",outcome="ok"} 2"#,
            r#"kengate_key_request_duration_seconds_bucket{le="+Inf",key="audited",method="klay_gasPrice"} 2"#,
            r#"kengate_key_request_duration_seconds_count{key="audited",method="klay_gasPrice"} 2"#,
            r#"kengate_key_requests_total{key="reader",method="klay_sendRawTransaction",outcome="error"} 1"#,
            r#"kengate_denied_requests_total{reason="rate"} 1"#,
            r#"kengate_denied_requests_total{reason="bad_credentials"} 1"#,
            r#"kengate_denied_requests_total{reason="missing_credential"} 1"#,
            r#"kengate_denied_requests_total{reason="ip"} 1"#,
        ],
    );
    assert!(!m.contains(r#"key="ten""#), "a refused key has no call series:\n{m}");
    assert!(!m.contains("secret-0123456789"), "a secret leaked into /metrics");
}

#[tokio::test]
async fn an_open_websocket_stops_working_once_its_key_is_revoked() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let http = Http::default();
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let with_admin = [("authorization", admin.as_str())];
    let r = http
        .post_with_headers(
            &format!("{}/admin/keys", gate.url),
            &with_admin,
            json!({"label": "ws"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let (id, tok) = (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    );
    let ws_url = format!("{}/v1/klaytn/{tok}", gate.url.replace("http://", "ws://"));
    let mut ws = ws_connect(&ws_url, &[]).await.expect("upgrade with a URL token");
    let r = ws_call(&mut ws, call("klay_gasPrice", 1)).await;
    assert_eq!(r["id"], 1, "{r}");
    assert!(r.get("result").is_some(), "{r}");
    let before = calls_of(&fakes, "klay_gasPrice");

    let r = http
        .request(
            http::Method::DELETE,
            &format!("{}/admin/keys/{id}", gate.url),
            &with_admin,
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The same socket: refused with -32001, nothing forwarded, and the server closes it.
    ws.send(Message::text(call("klay_gasPrice", 2))).await.expect("ws send");
    let r = ws_next(&mut ws).await;
    assert_eq!(r["error"]["code"], -32001, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("revoked"), "{r}");
    assert_eq!(calls_of(&fakes, "klay_gasPrice"), before);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server keeps a revoked key's socket open");
}

#[tokio::test]
async fn filters_and_subscriptions_belong_to_their_key_and_end_with_it() {
    let (_fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let http = Http::default();
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let with_admin = [("authorization", admin.as_str())];
    let mut keys = Vec::new();
    for label in ["a", "b"] {
        let r = http
            .post_with_headers(
                &format!("{}/admin/keys", gate.url),
                &with_admin,
                json!({ "label": label }).to_string(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let j = r.json();
        keys.push((
            j["id"].as_str().unwrap().to_owned(),
            j["token"].as_str().unwrap().to_owned(),
        ));
    }
    let bearer = |i: usize| format!("Bearer {}", keys[i].1);
    let rpc = |i: usize, method: &'static str, params: Value| {
        let (http, url, auth) = (http.clone(), gate.url.clone(), bearer(i));
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
            http.post_with_headers(&url, &[("authorization", auth.as_str())], body)
                .await
                .json()
        }
    };
    let id = rpc(0, "klay_newBlockFilter", json!([])).await["result"].clone();
    assert!(id.is_string(), "{id}");
    // Another key cannot see, poll or remove it.
    let r = rpc(1, "klay_getFilterChanges", json!([id])).await;
    assert_eq!(r["error"]["message"], "filter not found", "{r}");
    assert_eq!(rpc(1, "klay_uninstallFilter", json!([id])).await["result"], false);
    assert_eq!(rpc(0, "klay_getFilterChanges", json!([id])).await["result"], json!([]));

    // A key's subscriptions end when the key is revoked, even if the client never sends again.
    let ws_url = format!("{}/v1/klaytn/{}", gate.url.replace("http://", "ws://"), keys[0].1);
    let mut ws = ws_connect(&ws_url, &[]).await.expect("upgrade with a URL token");
    let r = ws_call(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 7, "method": "klay_subscribe", "params": ["newHeads"]}).to_string(),
    )
    .await;
    assert!(r["result"].is_string(), "{r}");
    // Open and quiet while the key is valid.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), ws.next()).await;
    assert!(quiet.is_err(), "the socket did not stay open: {quiet:?}");
    let r = http
        .request(
            http::Method::DELETE,
            &format!("{}/admin/keys/{}", gate.url, keys[0].0),
            &with_admin,
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "a revoked key's subscriptions kept the socket open");
}

/// Guessing credentials costs the guesser: each failure takes a token from its address's
/// failure bucket; with none left every request from that address — even with a good key — is
/// refused with 429 before its credential is looked at. Other addresses are not affected.
#[tokio::test]
async fn failed_authentications_lock_the_guessing_address_out() {
    let (fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![key("good")];
        c.auth.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.throttle.auth_failures_per_ip = RateConfig { rps: 1, burst: 3 };
    })
    .await;
    let http = Http::default();
    let post = |auth: String, from: &'static str| {
        let (http, url) = (http.clone(), gate.url.clone());
        async move {
            let headers = [("authorization", auth.as_str()), ("x-forwarded-for", from)];
            http.post_with_headers(&url, &headers, call("klay_gasPrice", 1)).await
        }
    };
    let wrong = || format!("Bearer good.{}", "x".repeat(43));
    for i in 0..3 {
        let r = post(wrong(), "192.0.2.1").await;
        assert_eq!(r.status, 401, "guess {i}: {}", r.text());
    }
    let r = post(wrong(), "192.0.2.1").await;
    assert_eq!(r.status, 429, "the fourth guess: {}", r.text());
    let r = post(bearer("good"), "192.0.2.1").await;
    assert_eq!(r.status, 429, "a good key from the locked address: {}", r.text());
    assert!(r.headers.contains_key("retry-after"));
    assert_result(&post(bearer("good"), "192.0.2.2").await, "another address");
    assert_eq!(calls(&fakes), 1, "only the other address's call reached the node");
}

/// With auth on, which networks exist is not told to a caller whose credential does not work:
/// an unknown network or chain id is a 401 without one, and a 404 only with a working key.
#[tokio::test]
async fn networks_are_not_discoverable_before_authentication() {
    let two = two_networks(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![key("good")];
    })
    .await;
    let http = Http::default();
    // REST is a GET, JSON-RPC a POST.
    let send = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let (http, url) = (http.clone(), format!("{}{path}", two.gate.url));
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            if path.contains("/tx") {
                http.request(http::Method::GET, &url, &headers, "").await
            } else {
                http.post_with_headers(&url, &headers, call("klay_gasPrice", 1)).await
            }
        }
    };
    for (path, chain) in [("/v1/nope", None), ("/", Some("5")), ("/v1/nope/tx?size=1", None)] {
        let mut headers: Vec<(&str, String)> = chain.iter().map(|c| ("x-chain-id", c.to_string())).collect();
        let r = send(path, headers.clone()).await;
        assert_eq!(r.status, 401, "{path} {chain:?} without a credential: {}", r.text());
        headers.push(("authorization", bearer("good")));
        let r = send(path, headers).await;
        assert_eq!(r.status, 404, "{path} {chain:?} with a good key: {}", r.text());
    }
    assert_eq!(ws_refused(&format!("ws://{}/v1/nope", two.gate.addr), &[]).await, 401);
    drop((two.cypress, two.baobab));
}

/// The REST API goes through the same gate as JSON-RPC: the key's buckets (the history weighs
/// 10, one record 1), the key's methods (`kengate_getTransactionStatus`,
/// `kengate_listTransactions`) and the audit.
#[tokio::test]
async fn rest_calls_are_charged_and_permitted_like_methods() {
    let (_fakes, gate) = one_network(|c| {
        c.auth.enabled = true;
        c.auth.keys = vec![
            limited("slow", 1, 5),
            KeyConfig {
                scope: KeyScope {
                    methods: vec!["write".into()],
                    ..key("writer").scope
                },
                ..key("writer")
            },
        ];
    })
    .await;
    let http = Http::default();
    let get = |path: String, id: &'static str| {
        let (http, url) = (http.clone(), format!("{}{path}", gate.url));
        async move {
            let auth = bearer(id);
            http.request(http::Method::GET, &url, &[("authorization", auth.as_str())], "")
                .await
        }
    };
    let one = format!("/v1/tx/0x{}", "ab".repeat(32));
    for i in 0..5 {
        let r = get(one.clone(), "slow").await;
        assert_eq!(r.status, 404, "record lookup {i}: {}", r.text());
    }
    let r = get(one.clone(), "slow").await;
    assert_eq!(r.status, 429, "the sixth lookup at 1 rps, burst 5: {}", r.text());
    assert!(r.headers.contains_key("retry-after"));
    let r = get("/v1/tx?size=5".into(), "writer").await;
    assert_eq!(r.status, 403, "a write-only key reads history: {}", r.text());
    assert!(r.text().contains("kengate_listTransactions"), "{}", r.text());
    let m = metrics(&gate).await;
    assert_metrics_have(
        &m,
        &[r#"kengate_key_requests_total{key="slow",method="kengate_getTransactionStatus",outcome="error"} 5"#],
    );
}
