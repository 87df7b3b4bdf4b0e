//! TLS both ways on the real cluster, with a CA made by the test (rcgen):
//! - TLS fronts (TLS-terminating TCP relays, http/1.1) for EN1's and EN2's HTTP and WebSocket
//!   ports; kengate with `https://` / `wss://` node URLs refuses them without the CA (the
//!   certificate error in `/status`, calls failing) and is in sync through them with it
//!   (`nodes[].tls.ca`), heads followed over wss;
//! - kengate's own TLS listener (`tls.cert` / `tls.key`) serving the real client programs
//!   (ethers-ext, caver-js, web3.py: transfers over https://, subscribers over wss:// with
//!   read-backs over https://), which trust the CA only through their environment
//!   (`NODE_EXTRA_CA_CERTS`, `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`);
//! - the listener's certificate swapped on disk while clients stay connected: new connections
//!   get the new one, the open ones (Rust HTTP/1.1, HTTP/2 and WSS, and the three subscriber
//!   programs) carry on without a reconnect, and the client programs run again after it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::Localnet;
use crate::support::tls::{connect, dir, peer_leaf, rpc_request, write, Ca, Leaf, Relay};

/// `host:port` of a node URL (`http://127.0.0.1:8551` → 127.0.0.1:8551).
fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Waits (bounded) until `cond` holds; panics naming `what`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, within: Duration, mut cond: impl FnMut() -> F) {
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// TLS fronts for the HTTP and WebSocket ports of the first `n` ENs.
struct Upstreams {
    http: Vec<Relay>,
    ws: Vec<Relay>,
}

impl Upstreams {
    async fn start(net: &Localnet, leaf: &Leaf, n: usize) -> Upstreams {
        let mut up = Upstreams {
            http: Vec::new(),
            ws: Vec::new(),
        };
        for i in 0..n {
            up.http.push(Relay::start(leaf, addr_of(&net.en_http[i])).await);
            up.ws.push(Relay::start(leaf, addr_of(&net.en_ws[i])).await);
        }
        up
    }

    /// `(https://localhost:P, wss://localhost:Q)` per EN.
    fn nodes(&self) -> Vec<(String, Option<String>)> {
        self.http
            .iter()
            .zip(&self.ws)
            .map(|(h, w)| {
                (
                    format!("https://localhost:{}", h.addr.port()),
                    Some(format!("wss://localhost:{}", w.addr.port())),
                )
            })
            .collect()
    }

    fn all(&self) -> impl Iterator<Item = (&'static str, usize, &Relay)> + '_ {
        let http = self.http.iter().enumerate().map(|(i, r)| ("http", i, r));
        let ws = self.ws.iter().enumerate().map(|(i, r)| ("ws", i, r));
        http.chain(ws)
    }
}

fn nodes_of(s: &Value) -> Vec<Value> {
    s["nodes"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstreams_are_refused_without_their_ca_and_followed_with_it() {
    let net = Localnet::load();
    let ca = Ca::new("kengate e2e upstream CA");
    let d = dir();
    let ca_file = write(&d, "upstream-ca.pem", &ca.pem());
    let up = Upstreams::start(&net, &ca.leaf("en"), 2).await;
    let http = Http::default();

    // Without the CA: the system roots do not know it. Every node shows why, for its HTTP
    // probes and for its newHeads subscription; nothing is in sync; calls fail.
    let mut cfg = test_config(&up.nodes());
    cfg.cluster.node_wait_ms = 1000;
    let gate = Gate::start(cfg).await;
    let s = gate
        .wait_status("a certificate error for every node, HTTP and WS", |s| {
            let n = nodes_of(s);
            n.len() == 2
                && n.iter().all(|n| {
                    text(&n["last_error"]).contains("certificate") && text(&n["ws_error"]).contains("certificate")
                })
        })
        .await;
    for n in nodes_of(&s) {
        println!(
            "without the CA: {} state {}: last_error {:?}; ws_error {:?}",
            n["name"], n["state"], n["last_error"], n["ws_error"]
        );
        for e in [text(&n["last_error"]), text(&n["ws_error"])] {
            assert!(e.contains("UnknownIssuer") || e.contains("unknown issuer"), "{n}");
        }
        assert_ne!(n["state"], "in_sync", "{n}");
        assert_eq!(n["ws_subscribed"], false, "{n}");
    }
    let t = Instant::now();
    let r = http.rpc_lenient(&gate.url, "klay_blockNumber", json!([])).await;
    println!("without the CA: klay_blockNumber -> {r} ({:?})", t.elapsed());
    assert!(
        r.get("result").is_none() && r.get("error").is_some(),
        "a call was served: {r}"
    );
    let r = http.rpc_lenient(&gate.url, "eth_chainId", json!([])).await;
    assert!(r.get("result").is_none(), "a call was served: {r}");
    // The refusal was kengate's: every front saw handshakes fail (kengate's alert), none complete.
    for (kind, i, relay) in up.all() {
        println!(
            "without the CA: EN{} {kind} front: {} handshakes, {} refused ({:?})",
            i + 1,
            relay.handshakes(),
            relay.failed(),
            relay.last_failure()
        );
        assert_eq!(relay.handshakes(), 0, "EN{} {kind}", i + 1);
        assert!(relay.failed() > 0, "EN{} {kind}: no handshake was tried", i + 1);
    }
    gate.stop().await;

    // With it: every node in sync, its head followed over wss, calls served.
    let mut cfg = test_config(&up.nodes());
    for n in &mut cfg.nodes {
        n.tls.ca = Some(ca_file.clone());
    }
    let gate = Gate::start(cfg).await;
    let s = gate
        .wait_status("every node in sync and subscribed over wss", |s| {
            let n = nodes_of(s);
            n.len() == 2
                && n.iter()
                    .all(|n| n["state"] == "in_sync" && n["ws_subscribed"] == true && n["ws_error"].is_null())
        })
        .await;
    println!("with the CA: {s}");
    for (kind, i, relay) in up.all() {
        assert!(
            relay.handshakes() > 0,
            "EN{} {kind}: no TLS connection through it",
            i + 1
        );
    }
    assert_eq!(
        http.result(&gate.url, "eth_chainId", json!([])).await,
        format!("{:#x}", net.chain_id)
    );
    let head = quantity(&http.result(&gate.url, "klay_blockNumber", json!([])).await);
    let direct = quantity(&http.result(&net.en_http[0], "klay_blockNumber", json!([])).await);
    assert!(head + 3 >= direct && head <= direct + 3, "kengate {head}, EN1 {direct}");
    let n = format!("{:#x}", head - 1);
    let via = http.result(&gate.url, "klay_getBlockByNumber", json!([n, false])).await;
    let en = http
        .result(&net.en_http[0], "klay_getBlockByNumber", json!([n, false]))
        .await;
    assert_eq!(via["hash"], en["hash"], "block {n}");
    // Heads keep coming (over the wss subscriptions).
    gate.wait_status("the served head to move on", |s| {
        s["served_head"].as_u64().unwrap_or(0) >= head + 2
    })
    .await;
    gate.stop().await;
}

/// kengate with its own TLS listener, in front of EN1 and EN2 through TLS fronts (verified
/// against the test CA) and EN3 in plain HTTP; `/status` on a plain admin listener.
struct TlsGate {
    net: Localnet,
    ca: Ca,
    dir: PathBuf,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    first: Leaf,
    gate: Gate,
    admin: SocketAddr,
    /// `https://localhost:PORT`
    url: String,
    /// `wss://localhost:PORT`
    ws_url: String,
    _up: Upstreams,
}

impl TlsGate {
    async fn start() -> TlsGate {
        let net = Localnet::load();
        let ca = Ca::new("kengate e2e CA");
        let d = dir();
        let ca_file = write(&d, "ca.pem", &ca.pem());
        let up = Upstreams::start(&net, &ca.leaf("en"), 2).await;
        let first = ca.leaf("kengate first");
        let cert_file = write(&d, "cert.pem", &first.cert_pem);
        let key_file = write(&d, "key.pem", &first.key_pem);
        let mut nodes = up.nodes();
        nodes.push((net.en_http[2].clone(), Some(net.en_ws[2].clone())));
        let mut cfg = test_config(&nodes);
        cfg.cluster.poll_interval_ms = 250;
        for n in &mut cfg.nodes[..2] {
            n.tls.ca = Some(ca_file.clone());
        }
        cfg.tls.cert = Some(cert_file.clone());
        cfg.tls.key = Some(key_file.clone());
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        cfg.admin_listen = Some(admin);
        let gate = Gate::start(cfg).await;
        gate.wait_status("every node in sync and subscribed", |s| {
            let n = nodes_of(s);
            n.len() == 3 && n.iter().all(|n| n["state"] == "in_sync" && n["ws_subscribed"] == true)
        })
        .await;
        let port = gate.addr.port();
        let t = TlsGate {
            net,
            ca,
            dir: d,
            ca_file,
            cert_file,
            key_file,
            first,
            gate,
            admin,
            url: format!("https://localhost:{port}"),
            ws_url: format!("wss://localhost:{port}"),
            _up: up,
        };
        let tls = connect(t.gate.addr, &t.ca, &[b"h2", b"http/1.1"]).await;
        assert_eq!(
            peer_leaf(&tls),
            t.first.der,
            "kengate serves the configured certificate"
        );
        t
    }

    /// Writes `leaf` over the certificate and key files kengate watches (each one written
    /// beside and renamed into place).
    fn install(&self, leaf: &Leaf) {
        for (path, pem) in [(&self.cert_file, &leaf.cert_pem), (&self.key_file, &leaf.key_pem)] {
            let name = path.file_name().and_then(|n| n.to_str()).expect("a file name");
            write(path.parent().expect("a directory"), name, pem);
        }
    }

    /// The environment that makes Node (https, ws) and Python (requests; ssl for aiohttp and
    /// websockets) trust the test CA.
    fn trust(&self, cmd: &mut tokio::process::Command) {
        cmd.env("NODE_EXTRA_CA_CERTS", &self.ca_file)
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("SSL_CERT_FILE", &self.ca_file);
    }

    /// `scripts/clients run NAMES` (the transfer programs) against kengate over https.
    async fn transfers(&self, names: &[&str]) -> String {
        let mut cmd = tokio::process::Command::new(self.net.repo.join("scripts/clients"));
        cmd.arg("run").args(names).env("RPC_URL", &self.url);
        self.trust(&mut cmd);
        let t = Instant::now();
        let out = cmd.output().await.expect("run scripts/clients");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        println!("{text}\n(transfer programs: {:?})", t.elapsed());
        assert!(out.status.success(), "clients failed over https:\n{text}");
        let want = format!("clients: {} passed, 0 failed", names.len());
        assert!(text.contains(&want), "{text}");
        text
    }

    /// A subscriber program (`examples/*/subscribe.*`) on `wss://`, reading back over
    /// `https://`, until `secs` or SIGTERM.
    fn subscriber(&self, dir: &str, secs: u64, address_file: Option<&Path>) -> Program {
        let (program, script) = match dir {
            "web3py" => (crate::support::web3py_python(), "subscribe.py"),
            _ => ("node".to_owned(), "subscribe.js"),
        };
        let mut cmd = self.net.example(dir, &program);
        cmd.arg(script)
            .env("WS_URL", &self.ws_url)
            .env("HTTP_URL", &self.url)
            .env("DURATION_S", secs.to_string())
            .stdout(Stdio::piped());
        if let Some(f) = address_file {
            cmd.env("ADDRESS_FILE", f);
        }
        self.trust(&mut cmd);
        Program::spawn(dir, cmd)
    }

    /// Live subscriptions on kengate (`kengate_subscriptions` on the admin listener).
    async fn subscriptions(&self) -> u64 {
        let m = Http::default()
            .get(&format!("http://{}/metrics", self.admin))
            .await
            .text();
        m.lines()
            .filter(|l| l.starts_with("kengate_subscriptions ") || l.starts_with("kengate_subscriptions{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

/// A client program running in the background; its last stdout line is its report.
struct Program {
    name: String,
    child: tokio::process::Child,
}

impl Program {
    fn spawn(name: &str, mut cmd: tokio::process::Command) -> Program {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e} (scripts/clients install installs it)"));
        Program {
            name: name.to_owned(),
            child,
        }
    }

    /// Asks it to stop (SIGTERM: the programs print their report and exit).
    fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {pid} ({})", self.name);
    }

    /// Waits for it to end (bounded); its report.
    async fn report(self, within: Duration) -> Value {
        let name = self.name;
        let out = tokio::time::timeout(within, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{name} did not end within {within:?}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} failed ({}): {text}", out.status);
        serde_json::from_str(text.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{name}: no report ({e}): {text}"))
    }
}

/// A subscriber's blocks: numbers, checked consecutive and once, every one read back.
fn check_subscriber(name: &str, r: &Value, min_blocks: usize) -> Vec<u64> {
    let blocks: Vec<u64> = r["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: {r}"))
        .iter()
        .map(|b| b.as_u64().unwrap_or_else(|| panic!("{name}: block {b}")))
        .collect();
    println!(
        "{name}: {} blocks ({:?}..{:?}), {} events, {} unreadable, {} reconnects, {} reconnect attempts, errors {}, http calls {}, ws calls {}",
        blocks.len(),
        blocks.first(),
        blocks.last(),
        r["events"].as_array().map_or(0, Vec::len),
        r["unreadable"].as_array().map_or(0, Vec::len),
        r["reconnects"],
        r["reconnect_attempts"],
        r["errors"],
        r["http_calls"],
        r["ws_calls_by_method"],
    );
    assert!(blocks.len() >= min_blocks, "{name}: {} blocks: {r}", blocks.len());
    for w in blocks.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{name}: blocks not consecutive: {blocks:?}");
    }
    assert_eq!(
        r["unreadable"],
        json!([]),
        "{name}: announced blocks not readable over https"
    );
    assert_eq!(r["errors"], json!([]), "{name}");
    assert_eq!(r["reconnects"], 0, "{name}");
    assert_eq!(r["reconnect_attempts"], 0, "{name}");
    blocks
}

/// A trust probe with the library itself: one call over https and one over wss, with or
/// without the CA in the environment. `{"https": "ok:..."|"err:...", "wss": ...}`.
async fn probe(t: &TlsGate, lang: &str, trusted: bool) -> Value {
    const NODE: &str = r#"
const { JsonRpcProvider, WebSocketProvider, Network } = require('ethers')
const net = Network.from(BigInt(process.env.CHAIN_ID))
const why = e => 'err:' + String((e && (e.shortMessage || e.message)) || e) + (e && e.cause ? ' / ' + (e.cause.code || e.cause.message) : '')
async function main() {
    const out = {}
    const http = new JsonRpcProvider(process.env.RPC_URL, net, { staticNetwork: net })
    out.https = await http.send('klay_blockNumber', []).then(r => 'ok:' + r, why)
    http.destroy()
    const ws = new WebSocketProvider(process.env.WS_URL, net, { staticNetwork: net })
    out.wss = await new Promise(resolve => {
        ws.websocket.onerror = e => resolve('err:' + (e.message || e.error || e))
        ws.send('klay_blockNumber', []).then(r => resolve('ok:' + r), e => resolve(why(e)))
    })
    console.log(JSON.stringify(out))
    process.exit(0)
}
main()
"#;
    const PYTHON: &str = r#"
import asyncio, json, os
from web3 import AsyncWeb3, Web3, WebSocketProvider
def why(e):
    parts = []
    while e is not None and len(parts) < 5:
        parts.append("%s: %s" % (type(e).__name__, e))
        e = e.__cause__ or e.__context__
    return "err:" + " <- ".join(parts)
out = {}
try:
    w3 = Web3(Web3.HTTPProvider(os.environ["RPC_URL"], exception_retry_configuration=None))
    out["https"] = "ok:%d" % w3.eth.block_number
except Exception as e:
    out["https"] = why(e)
async def ws():
    try:
        async with AsyncWeb3(WebSocketProvider(os.environ["WS_URL"], max_connection_retries=1)) as w3:
            return "ok:%d" % await w3.eth.block_number
    except Exception as e:
        return why(e)
out["wss"] = asyncio.run(ws())
print(json.dumps(out))
"#;
    let mut cmd = match lang {
        "node" => {
            let mut c = t.net.example("ethers-ext", "node");
            c.args(["-e", NODE]);
            c
        }
        _ => {
            let mut c = t.net.example("web3py", &crate::support::web3py_python());
            c.args(["-c", PYTHON]);
            c
        }
    };
    cmd.env("RPC_URL", &t.url).env("WS_URL", &t.ws_url);
    for var in [
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
    ] {
        cmd.env_remove(var);
    }
    if trusted {
        t.trust(&mut cmd);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{lang} probe did not end"))
        .expect("run the probe");
    let text = String::from_utf8_lossy(&out.stdout);
    let r: Value =
        serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{lang} probe: {e}: {text}"));
    println!(
        "{lang} probe, CA {}: {r}",
        if trusted { "trusted" } else { "not trusted" }
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_over_https_and_wss_to_a_tls_kengate() {
    let t = TlsGate::start().await;

    // The clients trust the CA through their environment, and only through it.
    for lang in ["node", "python"] {
        let r = probe(&t, lang, false).await;
        for k in ["https", "wss"] {
            let e = text(&r[k]).to_ascii_lowercase();
            assert!(
                e.starts_with("err:") && (e.contains("certificate") || e.contains("verify") || e.contains("ssl")),
                "{lang} {k} without the CA: {r}"
            );
        }
        let r = probe(&t, lang, true).await;
        for k in ["https", "wss"] {
            assert!(text(&r[k]).starts_with("ok:"), "{lang} {k} with the CA: {r}");
        }
    }

    // Subscribers on wss (newHeads and the emitter's Ping events), the emitter and the
    // transfer programs on https, all at once.
    let address_file = t.dir.join("contract");
    let subscribers: Vec<Program> = ["ethers-ext", "caver-js", "web3py"]
        .into_iter()
        .map(|c| t.subscriber(c, 25, Some(&address_file)))
        .collect();
    let mut emitter = t.net.example("ethers-ext", "node");
    emitter
        .arg("emitter.js")
        .env("RPC_URL", &t.url)
        .env("ADDRESS_FILE", &address_file)
        .env("DURATION_S", "10")
        .env("DEPLOYER", "18")
        .env("PACE_MS", "150")
        .stdout(Stdio::piped());
    t.trust(&mut emitter);
    let emitter = Program::spawn("emitter", emitter);
    t.transfers(&["ethers-ext", "caver-js", "web3py"]).await;
    let emitted = emitter.report(Duration::from_secs(120)).await;
    let contract = text(&emitted["contract"]).to_owned();
    let sent: Vec<String> = emitted["sent"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| text(h).to_ascii_lowercase())
        .collect();
    println!(
        "emitter over https: contract {contract}, {} calls sent, errors {}",
        sent.len(),
        emitted["errors"]
    );
    assert!(contract.starts_with("0x") && !sent.is_empty(), "{emitted}");
    assert_eq!(emitted["errors"], json!([]));

    let http = Http::default();
    for p in subscribers {
        let name = p.name.clone();
        let r = p.report(Duration::from_secs(90)).await;
        let blocks = check_subscriber(&name, &r, 10);
        // Every Ping of the blocks it covered, once, each one the emitter sent.
        let events: Vec<(String, u64, u64)> = r["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let li = e["logIndex"].as_u64().unwrap_or_else(|| quantity(&e["logIndex"]));
                (
                    text(&e["tx"]).to_ascii_lowercase(),
                    li,
                    e["block"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert!(!events.is_empty(), "{name}: no event over wss: {r}");
        for (tx, _, _) in &events {
            assert!(
                sent.contains(tx),
                "{name}: event of a tx the emitter did not send: {tx}"
            );
        }
        let first = events.iter().map(|e| e.2).min().unwrap();
        let last = blocks.last().unwrap().saturating_sub(2);
        let logs = http
            .result(
                &t.net.en_http[0],
                "eth_getLogs",
                json!([{"address": contract, "fromBlock": format!("{first:#x}"), "toBlock": format!("{last:#x}")}]),
            )
            .await;
        let mut want: Vec<(String, u64)> = logs
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                (
                    text(&l["transactionHash"]).to_ascii_lowercase(),
                    quantity(&l["logIndex"]),
                )
            })
            .collect();
        let mut got: Vec<(String, u64)> = events
            .iter()
            .filter(|e| e.2 >= first && e.2 <= last)
            .map(|e| (e.0.clone(), e.1))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{name}: events of blocks {first}..={last}");
        println!("{name}: {} events, all of blocks {first}..={last}, once", events.len());
    }
    t.gate.stop().await;
}

/// A Rust WebSocket client (tokio-tungstenite over rustls, trusting the test CA) with a
/// newHeads subscription: heads and call replies collected by a reader task.
struct Wss {
    sink: SplitSink<WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>, Message>,
    heads: Arc<Mutex<Vec<u64>>>,
    replies: mpsc::UnboundedReceiver<Value>,
    closed: Arc<AtomicBool>,
}

impl Wss {
    async fn open(t: &TlsGate) -> (Wss, rustls::pki_types::CertificateDer<'static>) {
        let tls = connect(t.gate.addr, &t.ca, &[b"http/1.1"]).await;
        let cert = peer_leaf(&tls);
        let (ws, _) = tokio_tungstenite::client_async(t.ws_url.as_str(), tls)
            .await
            .expect("wss upgrade");
        let (sink, mut stream) = ws.split();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (tx, replies) = mpsc::unbounded_channel();
        let (h, c) = (heads.clone(), closed.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(s) = msg else { continue };
                let v: Value = serde_json::from_str(&s).unwrap_or(Value::Null);
                if v["method"] == "eth_subscription" {
                    h.lock().unwrap().push(quantity(&v["params"]["result"]["number"]));
                } else {
                    let _ = tx.send(v);
                }
            }
            c.store(true, Ordering::SeqCst);
        });
        let mut wss = Wss {
            sink,
            heads,
            replies,
            closed,
        };
        let sub = wss.call(1, "eth_subscribe", json!(["newHeads"])).await;
        assert!(sub["result"].is_string(), "eth_subscribe: {sub}");
        (wss, cert)
    }

    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.sink.send(Message::text(req.to_string())).await.expect("wss send");
        let reply = tokio::time::timeout(Duration::from_secs(10), self.replies.recv())
            .await
            .unwrap_or_else(|_| panic!("no reply to {method} over wss"))
            .expect("wss closed");
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    fn last_head(&self) -> u64 {
        self.heads.lock().unwrap().last().copied().unwrap_or(0)
    }
}

async fn head_of(resp: Result<hyper::Response<hyper::body::Incoming>, hyper::Error>) -> u64 {
    let resp = resp.expect("request on the open connection");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    quantity(&serde_json::from_slice::<Value>(&body).unwrap()["result"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_certificate_swapped_on_disk_while_clients_stay_connected() {
    let t = TlsGate::start().await;

    // Connections made on the first certificate, kept open across the swap: Rust HTTP/1.1,
    // HTTP/2 and WSS (newHeads), and the three subscriber programs (wss + https read-backs).
    let tls = connect(t.gate.addr, &t.ca, &[b"http/1.1"]).await;
    assert_eq!(peer_leaf(&tls), t.first.der);
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let tls = connect(t.gate.addr, &t.ca, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(peer_leaf(&tls), t.first.der);
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let before = head_of(h1.send_request(rpc_request()).await).await;
    assert!(head_of(h2.send_request(rpc_request()).await).await >= before);
    let (mut wss, cert) = Wss::open(&t).await;
    assert_eq!(cert, t.first.der);
    let subscribers: Vec<Program> = ["ethers-ext", "caver-js", "web3py"]
        .into_iter()
        .map(|c| t.subscriber(c, 600, None))
        .collect();
    let tr = &t;
    until(
        "the subscribers' subscriptions on kengate",
        Duration::from_secs(30),
        || async move { tr.subscriptions().await >= 4 },
    )
    .await;
    // Two heads announced to every subscriber before the swap.
    let h = wss.last_head();
    let old = &wss;
    until("two newHeads on the Rust wss", Duration::from_secs(15), || async move {
        old.last_head() > h + 1
    })
    .await;
    let pre_swap = wss.last_head();

    // The swap: a new leaf from the same CA written over the files kengate watches.
    let second = t.ca.leaf("kengate second");
    assert_ne!(second.der, t.first.der);
    let swapped_at = Instant::now();
    t.install(&second);
    let mut attempts = 0;
    let new = &second;
    until(
        "a new connection to get the new certificate",
        Duration::from_secs(10),
        || {
            attempts += 1;
            async move {
                let tls = connect(tr.gate.addr, &tr.ca, &[b"http/1.1"]).await;
                peer_leaf(&tls) == new.der
            }
        },
    )
    .await;
    let swap_head = quantity(
        &Http::default()
            .result(&t.net.en_http[0], "klay_blockNumber", json!([]))
            .await,
    );
    println!(
        "new certificate served {:?} after the swap ({attempts} connections tried); head {pre_swap} before, {swap_head} after",
        swapped_at.elapsed()
    );
    // Again, to be sure it is not a flap: several new connections, all with the new one; and
    // a new wss gets it and works.
    for _ in 0..3 {
        let tls = connect(t.gate.addr, &t.ca, &[b"h2", b"http/1.1"]).await;
        assert_eq!(peer_leaf(&tls), second.der);
    }
    let (mut fresh, cert) = Wss::open(&t).await;
    assert_eq!(cert, second.der, "a new wss gets the new certificate");
    assert!(fresh.call(2, "klay_blockNumber", json!([])).await["result"].is_string());

    // The open connections carry on: newHeads after the swap, calls answered.
    let old = &wss;
    until(
        "newHeads past the swap on the old wss",
        Duration::from_secs(20),
        || async move { old.last_head() > swap_head + 1 },
    )
    .await;
    assert!(!wss.closed.load(Ordering::SeqCst));
    let r = wss.call(2, "klay_blockNumber", json!([])).await;
    assert!(quantity(&r["result"]) >= swap_head, "{r}");
    assert!(head_of(h1.send_request(rpc_request()).await).await >= swap_head);
    assert!(head_of(h2.send_request(rpc_request()).await).await >= swap_head);

    // The client programs again, after the swap, while the subscribers stay connected.
    t.transfers(&["ethers-ext", "caver-js", "web3py"]).await;
    let old = &wss;
    until(
        "newHeads on the old wss after the transfers",
        Duration::from_secs(15),
        || async move { old.last_head() > swap_head + 3 },
    )
    .await;
    assert!(!wss.closed.load(Ordering::SeqCst));
    let r = wss.call(3, "klay_blockNumber", json!([])).await;
    assert!(r["result"].is_string(), "{r}");
    let subs = t.subscriptions().await;
    assert!(subs >= 5, "subscriptions on kengate before the end: {subs}");
    let end_head = quantity(
        &Http::default()
            .result(&t.net.en_http[0], "klay_blockNumber", json!([]))
            .await,
    );

    // The subscriber programs: never reconnected, blocks on both sides of the swap, every
    // one read back over https.
    for p in &subscribers {
        p.terminate();
    }
    for p in subscribers {
        let name = p.name.clone();
        let r = p.report(Duration::from_secs(60)).await;
        let blocks = check_subscriber(&name, &r, 5);
        assert!(
            blocks[0] <= pre_swap,
            "{name}: no block from before the swap (head {pre_swap} then): {blocks:?}"
        );
        assert!(
            *blocks.last().unwrap() + 3 >= end_head,
            "{name}: its blocks stop at {:?}, the chain is at {end_head} (the swap at {swap_head})",
            blocks.last()
        );
    }
    let _ = fresh.sink.close().await;
    let _ = wss.sink.close().await;
    t.gate.stop().await;
}
