//! Webhooks end to end, on the real cluster, through the kengate binary: a receiver started by
//! the test subscribes (with an access key) to address activity, a log filter, its sender's tx
//! status and failed txs; the test deploys a token and a contract that always reverts, then
//! makes KLAY and token transfers and a failing tx through kengate while EN2 is detached. The
//! receiver answers 500 for a while, then is down, then recovers; kengate is killed with
//! SIGKILL while events are queued and restarted. Every expected event arrives, in order per
//! webhook, each id at least once and the distinct ids exactly the expected set, every
//! signature verifies, and each event's block was readable through kengate when it arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::client::{quantity, Http};
use crate::support::localnet::{Localnet, Restore};
use crate::support::process::Process;
use crate::support::tx::{hex_bytes, keccak, sign_legacy};

const KEY_ID: &str = "wh-e2e";
const SECRET: &str = "s3cret-webhooks-e2e-0123456789";
/// How long the whole scenario may wait for the last event.
const DEADLINE: Duration = Duration::from_secs(180);

/// A token whose every call logs `Transfer(caller, to = word 0, value = word 1)`.
fn token_code() -> Vec<u8> {
    let sig = keccak(b"Transfer(address,address,uint256)");
    // mem[0] = word 1 (value); push word 0 (to), CALLER (from), PUSH32 the signature
    let mut run = hex_bytes("0x602035600052600035337f");
    run.extend_from_slice(&sig);
    // LOG3(offset 0, size 32, sig, from, to); STOP
    run.extend_from_slice(&hex_bytes("0x60206000a300"));
    deploy_code(&run)
}

/// A contract whose every call reverts.
fn revert_code() -> Vec<u8> {
    deploy_code(&hex_bytes("0x60006000fd"))
}

/// Init code that returns `runtime`.
fn deploy_code(runtime: &[u8]) -> Vec<u8> {
    let n = u8::try_from(runtime.len()).expect("a short runtime");
    let mut code = vec![0x60, n, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xf3];
    code.extend_from_slice(runtime);
    code
}

fn word(b: &[u8]) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[32 - b.len()..].copy_from_slice(b);
    w
}

fn hexs(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Post {
    signature: String,
    event_id: String,
    body: String,
    /// Its block was read back through kengate when it arrived (`None`: no block).
    readable: Option<bool>,
}

/// The test's receiver: 0 answers 200, 1 answers 500; `down` drops its listener.
struct Receiver {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    posts: Arc<Mutex<Vec<Post>>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    kengate: Arc<Mutex<String>>,
}

impl Receiver {
    async fn start(kengate: String) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let r = Receiver {
            addr,
            mode: Arc::new(AtomicU8::new(0)),
            posts: Arc::new(Mutex::new(Vec::new())),
            server: Mutex::new(None),
            kengate: Arc::new(Mutex::new(kengate)),
        };
        *r.server.lock().unwrap() = Some(tokio::spawn(r.serve(listener)));
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn serve(&self, listener: TcpListener) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (mode, posts, kengate) = (self.mode.clone(), self.posts.clone(), self.kengate.clone());
        async move {
            // Connections live in the server task: `down` ends them too (kengate pools them).
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (mode, posts, kengate) = (mode.clone(), posts.clone(), kengate.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (mode, posts, kengate) = (mode.clone(), posts.clone(), kengate.clone());
                        async move {
                            let get = |k: &str| {
                                req.headers()
                                    .get(k)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (signature, event_id) = (get("kengate-signature"), get("kengate-event-id"));
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = String::from_utf8_lossy(&body).into_owned();
                            if mode.load(Ordering::SeqCst) == 1 {
                                posts.lock().unwrap().push(Post {
                                    signature,
                                    event_id,
                                    body: String::new(),
                                    readable: None,
                                });
                                return Ok::<_, Infallible>(reply(500));
                            }
                            // The event's block, read back through kengate right now.
                            let block = serde_json::from_str::<Value>(&body)
                                .ok()
                                .and_then(|v| v["blockNumber"].as_u64());
                            let readable = match block {
                                None => None,
                                Some(n) => {
                                    let url = kengate.lock().unwrap().clone();
                                    let r = Http::default()
                                        .post_with_headers(
                                            &url,
                                            &[("content-type", "application/json")],
                                            json!({"jsonrpc":"2.0","id":1,"method":"klay_getBlockByNumber","params":[format!("{n:#x}"), false]}).to_string(),
                                        )
                                        .await;
                                    match serde_json::from_slice::<Value>(&r.body) {
                                        Ok(v) => Some(v["result"].is_object()),
                                        // kengate itself went away mid-check: ask for it again.
                                        Err(_) => return Ok(reply(503)),
                                    }
                                }
                            };
                            posts.lock().unwrap().push(Post {
                                signature,
                                event_id,
                                body,
                                readable,
                            });
                            Ok(reply(200))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        }
    }

    fn down(&self) {
        if let Some(s) = self.server.lock().unwrap().take() {
            s.abort();
        }
    }

    async fn up(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        *self.server.lock().unwrap() = Some(tokio::spawn(self.serve(listener)));
    }

    /// The posts it accepted (200).
    fn posts(&self) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| !p.body.is_empty())
            .cloned()
            .collect()
    }

    /// How many it answered 500.
    fn refused(&self) -> usize {
        self.posts.lock().unwrap().iter().filter(|p| p.body.is_empty()).count()
    }
}

fn reply(status: u16) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .expect("response")
}

/// The kengate binary with webhooks on, killable.
struct Kengate(Process);

impl Kengate {
    fn new(net: &Localnet) -> Kengate {
        Kengate(Process::new(
            "webhooks-e2e",
            net,
            &format!(
                "[cluster]\npoll_interval_ms = 250\n\n\
                 [auth]\nenabled = true\n[[auth.keys]]\nid = \"{KEY_ID}\"\nsecret = \"{SECRET}\"\n\n\
                 [webhooks]\nenabled = true\nallow_private = true\nretry_schedule_s = [1, 1, 1, 2, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5]\n"
            ),
        ))
    }

    fn url(&self) -> String {
        self.0.url()
    }

    fn rpc(&self) -> String {
        format!("{}/v1/klaytn/{KEY_ID}.{SECRET}", self.url())
    }

    async fn start(&mut self, http: &Http) {
        self.0.start_ready(http).await;
    }

    fn kill_9(&mut self) {
        self.0.kill_9();
    }
}

/// Signs the next tx of the test's sender: (gas, to, value, data) → (raw tx, hash).
type Signer<'a> = dyn FnMut(u64, Option<[u8; 20]>, u128, &[u8]) -> (String, String) + 'a;

/// Sends a signed tx through kengate; its hash.
async fn send(http: &Http, rpc: &str, raw: String) -> String {
    let r = http.rpc(rpc, "klay_sendRawTransaction", json!([raw])).await;
    r["result"].as_str().unwrap_or_else(|| panic!("send: {r}")).to_owned()
}

/// Waits for a receipt through kengate.
async fn receipt(http: &Http, rpc: &str, hash: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = http.rpc(rpc, "klay_getTransactionReceipt", json!([hash])).await;
        if r["result"].is_object() {
            return r["result"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no receipt for {hash}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until kengate's own record of `hash` says InBlock (its lifecycle, not the node).
async fn recorded_in_block(http: &Http, kg: &Kengate, hash: &str) {
    let auth = basic();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = http
            .get_with_headers(
                &format!("{}/v1/klaytn/tx/{hash}", kg.url()),
                &[("authorization", &auth)],
            )
            .await;
        if r.status == 200 && r.json()["status"] == "InBlock" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kengate never recorded {hash} InBlock: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"))
    )
}

async fn subscribe(http: &Http, kg: &Kengate, body: Value) -> (String, String) {
    let auth = basic();
    let r = http
        .post_with_headers(
            &format!("{}/v1/klaytn/webhooks", kg.url()),
            &[("authorization", &auth), ("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "create a webhook: {}", r.text());
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_every_event_in_order_through_receiver_outages_and_a_kill_9() {
    let net = Localnet::load();
    let http = Http::default();
    let mut kg = Kengate::new(&net);
    kg.start(&http).await;
    let rx = Receiver::start(kg.rpc()).await;
    let key = SigningKey::from_slice(&hex_bytes(&net.accounts[8].private_key)).expect("key");
    let me = net.accounts[8].address.to_lowercase();
    let rpc = kg.rpc();
    let gas_price = u128::from(quantity(&http.result(&rpc, "klay_gasPrice", json!([])).await));
    let mut nonce = quantity(
        &http
            .result(&rpc, "klay_getTransactionCount", json!([me, "pending"]))
            .await,
    );
    let mut tx = |gas: u64, to: Option<[u8; 20]>, value: u128, data: &[u8]| {
        let s = sign_legacy(&key, net.chain_id, nonce, gas_price, gas, to, value, data);
        nonce += 1;
        (s.raw_hex(), s.hash_hex())
    };

    // Contracts first (their deploys are not what is watched).
    let (raw, token_deploy) = tx(200_000, None, 0, &token_code());
    let h = token_deploy.clone();
    send(&http, &rpc, raw).await;
    let token_addr = receipt(&http, &rpc, &h).await["contractAddress"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let (raw, h) = tx(200_000, None, 0, &revert_code());
    send(&http, &rpc, raw).await;
    let reverter = receipt(&http, &rpc, &h).await["contractAddress"]
        .as_str()
        .unwrap()
        .to_lowercase();
    // Both deploys done in kengate's own records too, before anyone listens.
    recorded_in_block(&http, &kg, &token_deploy).await;
    recorded_in_block(&http, &kg, &h).await;
    let token: [u8; 20] = hex_bytes(&token_addr).try_into().unwrap();
    let reverter: [u8; 20] = hex_bytes(&reverter).try_into().unwrap();
    let mut recipient = [0u8; 20];
    getrandom::getrandom(&mut recipient).unwrap();
    let r_hex = hexs(&recipient);

    let mut secrets = BTreeMap::new();
    let mut hooks = BTreeMap::new();
    for (name, body) in [
        (
            "activity",
            json!({"type": "address_activity", "filter": {"address": r_hex}}),
        ),
        ("log", json!({"type": "log", "filter": {"address": token_addr}})),
        (
            "status",
            json!({"type": "tx_status", "filter": {"sender": me, "statuses": ["Submitted", "InBlock"]}}),
        ),
        ("failed", json!({"type": "failed_tx", "filter": {"key": KEY_ID}})),
    ] {
        let mut body = body;
        body["url"] = json!(rx.url(name));
        let (id, secret) = subscribe(&http, &kg, body).await;
        secrets.insert(id.clone(), secret);
        hooks.insert(name, id);
    }

    // What the test expects each webhook to be told, as (what, tx hash) in order.
    let mut want: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut sent = Vec::new();
    let klay = |tx: &mut Signer<'_>, i: u128| tx(21_000, Some(recipient), 1_000_000_000 * i, &[]);
    let tok = |tx: &mut Signer<'_>, i: u8| {
        let mut data = word(&recipient).to_vec();
        data.extend_from_slice(&word(&[i]));
        tx(100_000, Some(token), 0, &data)
    };

    // Round 1, EN2 detached; the receiver answers 500 for the first part.
    let _restore = Restore {
        net: &net,
        args: vec!["attach", "2"],
    };
    net.ctl(&["detach", "2"]);
    // The scenario only means something if EN2 really falls behind.
    let gap_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let en1 = quantity(&http.result(&net.en_http[0], "klay_blockNumber", json!([])).await);
        let en2 = quantity(&http.result(&net.en_http[1], "klay_blockNumber", json!([])).await);
        if en1 >= en2 + 3 {
            println!("EN2 detached: {} blocks behind EN1", en1 - en2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < gap_deadline,
            "EN2 did not fall behind after detach"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    rx.mode.store(1, Ordering::SeqCst);
    let round = |sent: &mut Vec<(String, String, &'static str)>, tx: &mut Signer<'_>, i: u8| {
        let (a, ah) = klay(tx, u128::from(i));
        let (b, bh) = tok(tx, i);
        sent.push((a, ah, "klay"));
        sent.push((b, bh, "ft"));
    };
    for i in 1..=2u8 {
        round(&mut sent, &mut tx, i);
    }
    let (f, fh) = tx(100_000, Some(reverter), 0, &[]);
    sent.push((f, fh.clone(), "fail"));
    for (raw, h, _) in &sent {
        let got = send(&http, &rpc, raw.clone()).await;
        assert_eq!(&got, h);
    }
    for (_, h, _) in &sent {
        receipt(&http, &rpc, h).await;
    }
    // The receiver down; then kengate killed with events queued, restarted.
    // Until kengate has met the 500s; then the receiver goes down.
    let deadline_500 = tokio::time::Instant::now() + Duration::from_secs(30);
    while rx.refused() == 0 {
        assert!(tokio::time::Instant::now() < deadline_500, "no delivery met the 500s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx.down();
    rx.mode.store(0, Ordering::SeqCst);
    let mut more = Vec::new();
    for i in 3..=4u8 {
        round(&mut more, &mut tx, i);
    }
    for (raw, h, _) in &more {
        let got = send(&http, &rpc, raw.clone()).await;
        assert_eq!(&got, h);
    }
    // Killed while events wait in the outbox (the receiver is down).
    let auth = basic();
    let queued_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get_with_headers(
                &format!(
                    "{}/v1/klaytn/webhooks/{}/deliveries?size=100",
                    kg.url(),
                    hooks["activity"]
                ),
                &[("authorization", &auth)],
            )
            .await;
        let v = r.json();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let pending = items.iter().filter(|i| i["state"] == "pending").count();
        let refused = items
            .iter()
            .flat_map(|i| i["attempts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["error"].is_string())
            .count();
        if pending >= 2 && refused >= 1 {
            println!(
                "before kill -9: {pending} activity events queued, {refused} attempts refused by the down receiver"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < queued_deadline,
            "no queued events to kill kengate over: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kg.kill_9();
    kg.start(&http).await;
    for (_, h, _) in &more {
        receipt(&http, &rpc, h).await;
    }
    sent.extend(more);
    rx.up().await;
    net.ctl(&["attach", "2"]);

    for (_, h, what) in &sent {
        match *what {
            "klay" => want.entry("activity").or_default().push(("klay".into(), h.clone())),
            "ft" => {
                want.entry("activity").or_default().push(("ft".into(), h.clone()));
                want.entry("log").or_default().push(("log".into(), h.clone()));
            }
            _ => want.entry("failed").or_default().push(("reverted".into(), h.clone())),
        }
        want.entry("status").or_default().push(("Submitted".into(), h.clone()));
        want.entry("status").or_default().push(("InBlock".into(), h.clone()));
    }

    // Until every webhook has all it should (or the deadline).
    let seen = |posts: &[Post], hook: &str| -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for p in posts {
            let v: Value = serde_json::from_str(&p.body).unwrap_or(Value::Null);
            if v["webhookId"] != hook {
                continue;
            }
            let e = &v["event"];
            let (what, h) = match v["type"].as_str() {
                Some("address_activity") => (
                    e["kind"].as_str().unwrap_or("").to_owned(),
                    e["transactionHash"].as_str().unwrap_or("").to_owned(),
                ),
                Some("log") => (
                    "log".into(),
                    e["log"]["transactionHash"].as_str().unwrap_or("").to_owned(),
                ),
                Some("tx_status") => (
                    e["status"].as_str().unwrap_or("").to_owned(),
                    e["hash"].as_str().unwrap_or("").to_owned(),
                ),
                Some("failed_tx") => (
                    e["reason"].as_str().unwrap_or("").to_owned(),
                    e["hash"].as_str().unwrap_or("").to_owned(),
                ),
                _ => continue,
            };
            out.push((p.event_id.clone(), what, h));
        }
        out
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let posts = rx.posts();
        let done = hooks.iter().all(|(name, id)| {
            let got: BTreeSet<(String, String)> = seen(&posts, id).into_iter().map(|(_, w, h)| (w, h)).collect();
            want.get(name).is_none_or(|w| w.iter().all(|x| got.contains(x)))
        });
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every event arrived within {DEADLINE:?}: {:#?}",
            hooks.iter().map(|(n, id)| (n, seen(&posts, id))).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let posts = rx.posts();
    let mut problems = Vec::new();
    for (name, id) in &hooks {
        let got = seen(&posts, id);
        let want = want.get(name).cloned().unwrap_or_default();
        // Distinct ids: exactly the expected set; an id always means the same event.
        let mut by_id: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (eid, w, h) in &got {
            if let Some(prev) = by_id.insert(eid.clone(), (w.clone(), h.clone())) {
                if prev != (w.clone(), h.clone()) {
                    problems.push(format!("{name}: id {eid} carried two events"));
                }
            }
        }
        let distinct: BTreeSet<(String, String)> = by_id.values().cloned().collect();
        let expected: BTreeSet<(String, String)> = want.iter().cloned().collect();
        if distinct != expected || by_id.len() != want.len() {
            problems.push(format!("{name}: got {distinct:?}\n  want {expected:?}"));
        }
        // In order: first arrivals follow the order the txs were sent (activity, log: block
        // order; status: per tx Submitted before InBlock).
        let mut first = Vec::new();
        for (eid, w, h) in &got {
            if !first.iter().any(|(e, _, _): &(String, String, String)| e == eid) {
                first.push((eid.clone(), w.clone(), h.clone()));
            }
        }
        if *name == "activity" || *name == "log" {
            let order: Vec<(String, String)> = first.iter().map(|(_, w, h)| (w.clone(), h.clone())).collect();
            if order != want {
                problems.push(format!("{name}: out of order: {order:?}\n  want {want:?}"));
            }
        }
        if *name == "status" {
            for (_, h, _) in &sent {
                let pos = |s: &str| first.iter().position(|(_, w, x)| w == s && x == h);
                if pos("Submitted") > pos("InBlock") {
                    problems.push(format!("status of {h}: InBlock before Submitted"));
                }
            }
        }
    }
    for p in &posts {
        let v: Value = serde_json::from_str(&p.body).unwrap_or(Value::Null);
        let Some(secret) = v["webhookId"].as_str().and_then(|id| secrets.get(id)) else {
            problems.push(format!("a post from no webhook of ours: {}", p.body));
            continue;
        };
        let t: u64 = p
            .signature
            .split(',')
            .next()
            .and_then(|t| t.strip_prefix("t="))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if p.signature != kengate::webhooks::deliver::signature(secret, t, &p.body) {
            problems.push(format!("bad signature on {}", p.event_id));
        }
        if p.readable == Some(false) {
            problems.push(format!("event {} named a block kengate did not serve yet", p.event_id));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What /metrics says of it (this process's share: it started after the kill).
    let m = http.get(&format!("{}/metrics", kg.url())).await.text();
    assert!(
        m.contains("kengate_webhook_deliveries_total{result=\"delivered\"}") && m.contains("kengate_webhook_backlog 0"),
        "/metrics: {}",
        m.lines()
            .filter(|l| l.contains("webhook"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let dups = posts.len() - posts.iter().map(|p| &p.event_id).collect::<BTreeSet<_>>().len();
    println!(
        "webhooks: {} posts accepted, {} distinct events, {dups} redelivered (at least once); {} answered 500, an outage and a kill -9",
        posts.len(),
        posts.len() - dups,
        rx.refused()
    );
}
