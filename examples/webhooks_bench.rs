//! Webhooks delivery benchmark (the figures in BENCHMARKS.md, "Webhooks: delivery").
//!
//! ```sh
//! cargo run --release --example webhooks_bench [-- --help]
//! ```
//!
//! Everything runs in this one process, through the library's public API only: a fake chain
//! (an `events::Fetch` serving `klay_getBlockByNumber` / `klay_getBlockReceipts`, each block
//! holding K KLAY transfers to the watched addresses round robin, so a block makes K events),
//! the webhooks service with the real HTTP sender (`send::HttpSender`), and a hyper receiver
//! on 127.0.0.1 that checks every signature and records every arrival. Three phases:
//!
//! 1. throughput: `--burst-blocks` blocks of `--burst-txs` transfers served at once;
//! 2. latency: a block every `--interval-ms` with `--steady-txs` transfers for
//!    `--latency-secs`, from the moment a block is served to each event's arrival;
//! 3. outage: the same steady load; the receiver stops accepting (connection refused; or
//!    answers 503 with `--outage-503`) for `--outage-secs`, then comes back on the same port.
//!    The outbox backlog over time, the recovery time, and a check that nothing was lost.
//!
//! Prints markdown on stdout (progress on stderr). The files go to /tmp and are deleted at the
//! end (`--keep` keeps them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context as _};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use kengate::config::{NodeTlsConfig, WebhooksConfig};
use kengate::events::Fetch;
use kengate::methods::Dialect;
use kengate::store::{SqliteStore, Store};
use kengate::webhooks::api::{answer, Owner, Request};
use kengate::webhooks::deliver::signature;
use kengate::webhooks::model::State;
use kengate::webhooks::send::HttpSender;
use kengate::webhooks::{Net, Webhooks};

/// The webhooks delivery benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Webhooks, each watching its own address.
    #[arg(long, default_value_t = 100)]
    hooks: usize,
    /// Throughput phase: blocks served at once.
    #[arg(long, default_value_t = 200)]
    burst_blocks: u64,
    /// Throughput phase: KLAY transfers (events) per block.
    #[arg(long, default_value_t = 50)]
    burst_txs: usize,
    /// Latency and outage phases: a block every this many ms.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Latency and outage phases: transfers (events) per block.
    #[arg(long, default_value_t = 100)]
    steady_txs: usize,
    /// Latency phase length.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// How long the receiver is down.
    #[arg(long, default_value_t = 30)]
    outage_secs: u64,
    /// The receiver answers 503 during the outage instead of refusing connections.
    #[arg(long)]
    outage_503: bool,
    /// `webhooks.concurrency`.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `webhooks.events_per_second` (per owner).
    #[arg(long, default_value_t = 100)]
    events_per_second: u32,
    /// All webhooks under one access key (default: one key each, so the per-owner rate
    /// limit, `events_per_second`, is per webhook).
    #[arg(long)]
    one_owner: bool,
    /// Run the throughput phase only.
    #[arg(long)]
    throughput_only: bool,
    /// Keep the database files.
    #[arg(long)]
    keep: bool,
}

const NET: &str = "n";
const RETRY_SCHEDULE_S: [u64; 10] = [1, 1, 2, 2, 5, 5, 10, 10, 30, 30];
/// The head when the webhooks are made (their events start after it).
const START: u64 = 100;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The watched address of webhook `i`.
fn watched(i: usize) -> String {
    format!("0x{:040x}", 0xa000_0000_u64 + i as u64)
}

fn tx_hash(n: u64, i: usize) -> String {
    format!("0x{n:032x}{i:032x}")
}

fn block_hash(n: u64) -> String {
    format!("0xb1{n:062x}")
}

const SENDER: &str = "0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// A served block: its transfers, and when it became served.
#[derive(Debug, Clone, Copy)]
struct Served {
    txs: usize,
    at: Instant,
    unix_ms: u64,
}

/// The fake chain: block n holds `txs` KLAY transfers from `SENDER`, transfer i going to the
/// watched address `(n * txs + i) % hooks`.
struct Chain {
    served: watch::Sender<u64>,
    hooks: usize,
    blocks: Mutex<BTreeMap<u64, Served>>,
}

impl Chain {
    fn new(head: u64, hooks: usize) -> Self {
        Self {
            served: watch::channel(head).0,
            hooks,
            blocks: Mutex::new(BTreeMap::new()),
        }
    }

    fn head(&self) -> u64 {
        *self.served.borrow()
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Served>> {
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `count` more blocks of `txs` transfers each, at once; the new head.
    fn serve(&self, count: u64, txs: usize) -> u64 {
        let head = self.head();
        let (at, unix_ms) = (Instant::now(), unix_ms());
        {
            let mut b = self.blocks();
            for n in head + 1..=head + count {
                b.insert(n, Served { txs, at, unix_ms });
            }
        }
        self.served.send_replace(head + count);
        head + count
    }

    fn recipient(&self, n: u64, txs: usize, i: usize) -> usize {
        ((n as usize) * txs + i) % self.hooks
    }

    fn block_json(&self, n: u64, txs: usize) -> String {
        let mut s = format!(
            r#"{{"number":"{n:#x}","hash":"{}","parentHash":"{}","timestamp":"{:#x}","transactions":["#,
            block_hash(n),
            block_hash(n.saturating_sub(1)),
            1_700_000_000 + n
        );
        for i in 0..txs {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                r#"{{"hash":"{}","from":"{SENDER}","to":"{}","value":"{:#x}","typeInt":0,"gasPrice":"0x1","input":"0x"}}"#,
                tx_hash(n, i),
                watched(self.recipient(n, txs, i)),
                1 + i
            ));
        }
        s.push_str("]}");
        s
    }

    fn receipts_json(n: u64, txs: usize) -> String {
        let all: Vec<String> = (0..txs)
            .map(|i| {
                format!(
                    r#"{{"transactionHash":"{}","status":"0x1","gasUsed":"0x5208","logs":[]}}"#,
                    tx_hash(n, i)
                )
            })
            .collect();
        format!("[{}]", all.join(","))
    }

    /// The (webhook index, tx hash) pairs blocks `from..=to` must deliver.
    fn expected(&self, from: u64, to: u64) -> Vec<(usize, String, u64)> {
        let b = self.blocks();
        let mut out = Vec::new();
        for (n, s) in b.range(from..=to) {
            for i in 0..s.txs {
                out.push((self.recipient(*n, s.txs, i), tx_hash(*n, i), *n));
            }
        }
        out
    }
}

impl Fetch for Chain {
    fn call(
        &self,
        method: &'static str,
        params: String,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + '_>> {
        Box::pin(async move {
            let n = params
                .split('"')
                .nth(1)
                .and_then(|q| u64::from_str_radix(q.trim_start_matches("0x"), 16).ok())
                .ok_or("bad params")?;
            if n > self.head() {
                return Err(format!("block {n} is above the served head"));
            }
            let txs = self.blocks().get(&n).map_or(0, |s| s.txs);
            let body = match method {
                "klay_getBlockByNumber" => self.block_json(n, txs),
                "klay_getBlockReceipts" => Self::receipts_json(n, txs),
                _ => return Err(r#"{"code":-32601,"message":"the method does not exist/is not available"}"#.into()),
            };
            Ok(Bytes::from(body))
        })
    }

    fn served(&self) -> watch::Receiver<u64> {
        self.served.subscribe()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Klaytn
    }
}

/// One accepted POST.
#[derive(Debug, Clone)]
struct Arrival {
    id: String,
    hook: String,
    tx: String,
    block: u64,
    /// The envelope's `createdAt` (when the feed read the block).
    created: u64,
    at: Instant,
    unix_ms: u64,
}

/// The receiver's state, shared by its connections.
#[derive(Default)]
struct Rx {
    secrets: Mutex<HashMap<String, String>>,
    fail_503: AtomicBool,
    arrivals: Mutex<Vec<Arrival>>,
    ids: Mutex<HashSet<String>>,
    posts: AtomicU64,
    answered_503: AtomicU64,
    bad: AtomicU64,
    connections: AtomicU64,
}

impl Rx {
    fn distinct(&self) -> usize {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn arrivals(&self) -> std::sync::MutexGuard<'_, Vec<Arrival>> {
        self.arrivals.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(rx: Arc<Rx>, req: hyper::Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sig = req
        .headers()
        .get("kengate-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "body"));
    };
    let (at, unix) = (Instant::now(), unix_ms());
    rx.posts.fetch_add(1, Ordering::Relaxed);
    if rx.fail_503.load(Ordering::Relaxed) {
        rx.answered_503.fetch_add(1, Ordering::Relaxed);
        return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "down"));
    }
    let parsed = std::str::from_utf8(&body)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(s).ok().map(|v| (s, v)));
    let Some((body, v)) = parsed else {
        rx.bad.fetch_add(1, Ordering::Relaxed);
        return Ok(text(StatusCode::BAD_REQUEST, "not json"));
    };
    let hook = v["webhookId"].as_str().unwrap_or_default().to_owned();
    let t = sig
        .split(',')
        .next()
        .and_then(|t| t.strip_prefix("t="))
        .and_then(|t| t.parse::<u64>().ok());
    let secret = rx
        .secrets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&hook)
        .cloned();
    match (t, secret) {
        (Some(t), Some(secret)) if signature(&secret, t, body) == sig => {}
        _ => {
            rx.bad.fetch_add(1, Ordering::Relaxed);
            return Ok(text(StatusCode::UNAUTHORIZED, "bad signature"));
        }
    }
    let a = Arrival {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        hook,
        tx: v["event"]["transactionHash"].as_str().unwrap_or_default().to_owned(),
        block: v["blockNumber"].as_u64().unwrap_or(0),
        created: v["createdAt"].as_u64().unwrap_or(0),
        at,
        unix_ms: unix,
    };
    rx.ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(a.id.clone());
    rx.arrivals().push(a);
    Ok(text(StatusCode::OK, "ok"))
}

/// The receiver's listener; stopping it closes the port and every open connection.
struct Server {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(addr: SocketAddr, rx: Arc<Rx>) -> anyhow::Result<Server> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr).with_context(|| format!("bind {addr}"))?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept(listener, rx));
        Ok(Server { addr, task: Some(task) })
    }

    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn accept(listener: TcpListener, rx: Arc<Rx>) {
    // Dropped with this task (the listener too): its connections are aborted.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while conns.try_join_next().is_some() {}
        rx.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let rx = rx.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| handle(rx.clone(), req));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// This process's CPU time (user + system), assuming 100 clock ticks a second.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => f64::NAN,
    }
}

/// Bytes this process has caused to be written to disk (`/proc/self/io` `write_bytes`).
fn disk_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// How long the webhooks' one database connection keeps a trivial query (the block feed's
/// position, a primary-key lookup) waiting: probed every 50 ms, the time inside the call.
#[derive(Default)]
struct Probe {
    waits: Mutex<Vec<(Instant, f64)>>,
}

impl Probe {
    fn spawn(self: &Arc<Self>, wh: Arc<Webhooks>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let took = db(&wh, |wh| {
                    let t = Instant::now();
                    let _ = wh.db().position(NET, "blocks");
                    ms(t.elapsed())
                })
                .await;
                me.waits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), took));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    /// p50, p99 and max of the probes in `from..to`, and how many waited over 50 ms.
    fn between(&self, from: Instant, to: Instant) -> (f64, f64, f64, usize) {
        let mut v: Vec<f64> = self
            .waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, w)| *w)
            .collect();
        v.sort_by(f64::total_cmp);
        let over = v.iter().filter(|w| **w > 50.0).count();
        (pct(&v, 50.0), pct(&v, 99.0), pct(&v, 100.0), over)
    }
}

fn probe_text(p: (f64, f64, f64, usize)) -> String {
    format!("{:.2} / {:.1} / {:.1} ms ({} over 50 ms)", p.0, p.1, p.2, p.3)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// Runs a blocking call on the webhooks' database off the async threads.
async fn db<T: Send + 'static>(wh: &Arc<Webhooks>, f: impl FnOnce(&Webhooks) -> T + Send + 'static) -> T {
    let wh = wh.clone();
    tokio::task::spawn_blocking(move || f(&wh)).await.expect("a db call")
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(t0.elapsed())
}

/// What the receiver got of blocks `from..=to`, against what the chain holds.
struct Check {
    expected: usize,
    distinct: usize,
    missing: usize,
    unexpected: usize,
    posts: usize,
    /// One id per (webhook, tx), one (webhook, tx) per id.
    ids_consistent: bool,
}

impl Check {
    fn dups(&self) -> usize {
        self.posts - self.distinct
    }

    fn ok(&self) -> bool {
        self.missing == 0 && self.unexpected == 0 && self.distinct == self.expected && self.ids_consistent
    }
}

fn check(chain: &Chain, rx: &Rx, hook_ids: &[String], from: u64, to: u64) -> Check {
    let expected: HashSet<(String, String)> = chain
        .expected(from, to)
        .into_iter()
        .map(|(h, tx, _)| (hook_ids[h].clone(), tx))
        .collect();
    let arrivals = rx.arrivals();
    let mine: Vec<&Arrival> = arrivals.iter().filter(|a| (from..=to).contains(&a.block)).collect();
    let mut by_id: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut consistent = true;
    for a in &mine {
        let pair = (a.hook.as_str(), a.tx.as_str());
        if *by_id.entry(&a.id).or_insert(pair) != pair {
            consistent = false;
        }
    }
    let got: HashSet<(String, String)> = by_id
        .values()
        .map(|(h, t)| ((*h).to_owned(), (*t).to_owned()))
        .collect();
    consistent &= got.len() == by_id.len();
    Check {
        expected: expected.len(),
        distinct: by_id.len(),
        missing: expected.difference(&got).count(),
        unexpected: got.difference(&expected).count(),
        posts: mine.len(),
        ids_consistent: consistent,
    }
}

/// Milliseconds from each event's block being served to its first arrival, and the same
/// split at the envelope's `createdAt`: served → queued (the feed), queued → arrived.
fn latencies(chain: &Chain, rx: &Rx, from: u64, to: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let blocks = chain.blocks().clone();
    let arrivals = rx.arrivals();
    let mut first: HashMap<&str, &Arrival> = HashMap::new();
    for a in arrivals.iter().filter(|a| (from..=to).contains(&a.block)) {
        first
            .entry(&a.id)
            .and_modify(|b| {
                if a.at < b.at {
                    *b = a;
                }
            })
            .or_insert(a);
    }
    let (mut total, mut feed, mut outbox) = (Vec::new(), Vec::new(), Vec::new());
    for a in first.values() {
        let Some(s) = blocks.get(&a.block) else { continue };
        total.push(ms(a.at.saturating_duration_since(s.at)));
        feed.push(a.created.saturating_sub(s.unix_ms) as f64);
        outbox.push(a.unix_ms.saturating_sub(a.created) as f64);
    }
    for v in [&mut total, &mut feed, &mut outbox] {
        v.sort_by(f64::total_cmp);
    }
    (total, feed, outbox)
}

/// Serves a block of `txs` transfers every `interval` until `stop`; the last block served.
fn producer(chain: Arc<Chain>, interval: Duration, txs: usize, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        let mut last = chain.head();
        loop {
            tick.tick().await;
            if stop.load(Ordering::Relaxed) {
                return last;
            }
            last = chain.serve(1, txs);
        }
    })
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    backlog: u64,
    backlog_ms: f64,
    up: bool,
    distinct: usize,
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn lscpu_model() -> String {
    std::process::Command::new("lscpu")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Model name:"))
                .map(|l| l["Model name:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

struct Cleanup {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .with_writer(std::io::stderr)
        .init();
    ensure!(
        args.hooks > 0 && args.steady_txs > 0 && args.burst_txs > 0,
        "nothing to deliver"
    );
    let dir = PathBuf::from(format!("/tmp/kengate-webhooks-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _cleanup = Cleanup {
        dir: dir.clone(),
        keep: args.keep,
    };
    let started = Instant::now();

    // The receiver, the chain, the service.
    let rx = Arc::new(Rx::default());
    let mut server = Server::start("127.0.0.1:0".parse()?, rx.clone()).await?;
    let addr = server.addr;
    let chain = Arc::new(Chain::new(START, args.hooks));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("kengate.db"))?);
    let cfg = WebhooksConfig {
        enabled: true,
        allow_private: true,
        retry_schedule_s: RETRY_SCHEDULE_S.to_vec(),
        concurrency: args.concurrency,
        events_per_second: args.events_per_second,
        max_per_key: args.hooks as u64,
        ..WebhooksConfig::default()
    };
    let tls = kengate::cluster::client_config(&NodeTlsConfig::default(), true)?;
    let sender = Arc::new(HttpSender::new(tls, Duration::from_millis(cfg.timeout_ms), true));
    let db_file = dir.join("webhooks.db");
    let wh = Arc::new(Webhooks::new(
        &cfg,
        &db_file,
        vec![Net {
            name: NET.into(),
            fetch: chain.clone(),
        }],
        store,
        sender,
    )?);
    let mut hook_ids = Vec::with_capacity(args.hooks);
    for i in 0..args.hooks {
        let key = if args.one_owner {
            "bench".to_owned()
        } else {
            format!("bench-{i}")
        };
        let body = json!({"url": format!("http://{addr}/hook/{i}"), "type": "address_activity", "filter": {"address": watched(i)}})
            .to_string();
        let r = answer(
            &wh,
            &Request {
                method: "POST",
                path: "",
                query: "",
                body: body.as_bytes(),
                network: NET,
                owner: Owner::Key(&key),
            },
        );
        ensure!(r.status == 201, "creating webhook {i}: {} {}", r.status, r.body);
        let v: Value = serde_json::from_str(&r.body)?;
        let (id, secret) = (
            v["id"].as_str().ok_or_else(|| anyhow!("no id"))?.to_owned(),
            v["secret"].as_str().ok_or_else(|| anyhow!("no secret"))?.to_owned(),
        );
        rx.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), secret);
        hook_ids.push(id);
    }
    let tasks = wh.spawn();
    let probe = Arc::new(Probe::default());
    let probe_task = probe.spawn(wh.clone());
    let w = wh.clone();
    let feed_at = move || {
        let w = w.clone();
        async move { db(&w, |wh| wh.db().position(NET, "blocks").ok().flatten()).await }
    };
    let t0 = Instant::now();
    while feed_at().await != Some(START) {
        ensure!(t0.elapsed() < Duration::from_secs(10), "the block feed did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "receiver on {addr}, {} webhooks, files in {}",
        args.hooks,
        dir.display()
    );

    // 1. Throughput: many blocks served at once.
    let burst_events = args.burst_blocks as usize * args.burst_txs;
    eprintln!(
        "throughput: {} blocks x {} transfers served at once",
        args.burst_blocks, args.burst_txs
    );
    let (cpu0, conns0, posts0, disk0) = (
        cpu_secs(),
        rx.connections.load(Ordering::Relaxed),
        rx.posts.load(Ordering::Relaxed),
        disk_written(),
    );
    let from1 = chain.head() + 1;
    let t1 = Instant::now();
    let to1 = chain.serve(args.burst_blocks, args.burst_txs);
    let mut feed_done = None;
    let mut peak1 = 0u64;
    let mut last_peek = Instant::now();
    while rx.distinct() < burst_events {
        ensure!(
            t1.elapsed() < Duration::from_secs(120),
            "throughput: {} of {burst_events} events after 120 s",
            rx.distinct()
        );
        if feed_done.is_none() && feed_at().await == Some(to1) {
            feed_done = Some(t1.elapsed());
        }
        if last_peek.elapsed() > Duration::from_millis(500) {
            peak1 = peak1.max(db(&wh, |wh| wh.db().backlog().unwrap_or(0)).await);
            last_peek = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d1 = t1.elapsed();
    let feed_done = feed_done.unwrap_or(d1);
    let cpu1 = cpu_secs() - cpu0;
    let conns1 = rx.connections.load(Ordering::Relaxed) - conns0;
    let posts1 = rx.posts.load(Ordering::Relaxed) - posts0;
    let disk1 = disk_written() - disk0;
    let probe1 = probe.between(t1, Instant::now());
    let check1 = check(&chain, &rx, &hook_ids, from1, to1);
    let (lat1, _, _) = latencies(&chain, &rx, from1, to1);
    let ok = |c: &Check| if c.ok() { "yes" } else { "**NO**" };
    let mut out = String::new();
    writeln!(out, "## Webhooks: delivery (`examples/webhooks_bench.rs`)\n")?;
    writeln!(
        out,
        "Machine: {} CPUs ({}). {} webhooks (`address_activity`, one address each, {}), \
         one receiver on 127.0.0.1 (hyper, HTTP/1.1, checks every signature), `webhooks.concurrency = {}`, \
         `events_per_second = {}`, `retry_schedule_s = {:?}`, real `HttpSender`. Chain, service and receiver \
         share this one process and its cores.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        lscpu_model(),
        args.hooks,
        if args.one_owner {
            "all under one access key"
        } else {
            "one access key each"
        },
        args.concurrency,
        args.events_per_second,
        RETRY_SCHEDULE_S
    )?;
    writeln!(out, "### 1. Throughput\n")?;
    writeln!(
        out,
        "{} blocks × {} KLAY transfers served at once = {} events.\n",
        args.burst_blocks, args.burst_txs, burst_events
    )?;
    writeln!(out, "| measure | value |\n|---|--:|")?;
    writeln!(
        out,
        "| all delivered in | {:.2} s |\n| **delivered** | **{:.0} events/s** |",
        d1.as_secs_f64(),
        burst_events as f64 / d1.as_secs_f64()
    )?;
    writeln!(
        out,
        "| block feed done (events queued) in | {:.2} s ({:.0} blocks/s, {:.0} events/s) |",
        feed_done.as_secs_f64(),
        args.burst_blocks as f64 / feed_done.as_secs_f64(),
        burst_events as f64 / feed_done.as_secs_f64()
    )?;
    writeln!(out, "| peak outbox backlog (sampled every 500 ms) | {peak1} |")?;
    writeln!(
        out,
        "| served → arrived p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
        pct(&lat1, 50.0),
        pct(&lat1, 99.0),
        pct(&lat1, 100.0)
    )?;
    writeln!(
        out,
        "| CPU (whole process) | {:.2} s = {:.0} µs per event |",
        cpu1,
        cpu1 * 1e6 / burst_events as f64
    )?;
    writeln!(out, "| POSTs / TCP connections accepted | {posts1} / {conns1} |")?;
    writeln!(
        out,
        "| written to disk (`/proc/self/io`) | {:.1} MB = {:.1} kB per event |",
        disk1 as f64 / 1e6,
        disk1 as f64 / 1e3 / burst_events as f64
    )?;
    writeln!(out, "| DB lock probe p50 / p99 / max | {} |", probe_text(probe1))?;
    writeln!(
        out,
        "| all expected events, no others, one id each | {} ({} dup) |",
        ok(&check1),
        check1.dups()
    )?;
    if args.throughput_only {
        print!("{out}");
        ensure!(check1.ok(), "events were lost or unexpected");
        return Ok(());
    }

    // 2. Latency at a steady rate.
    let steady_rate = args.steady_txs as f64 * 1000.0 / args.interval_ms as f64;
    eprintln!(
        "latency: a block of {} transfers every {} ms ({steady_rate:.0} events/s) for {} s",
        args.steady_txs, args.interval_ms, args.latency_secs
    );
    let (cpu0, conns0, posts0, disk0) = (
        cpu_secs(),
        rx.connections.load(Ordering::Relaxed),
        rx.posts.load(Ordering::Relaxed),
        disk_written(),
    );
    let from2 = chain.head() + 1;
    let stop = Arc::new(AtomicBool::new(false));
    let prod = producer(
        chain.clone(),
        Duration::from_millis(args.interval_ms),
        args.steady_txs,
        stop.clone(),
    );
    let t2 = Instant::now();
    let mut peak2 = 0u64;
    while t2.elapsed() < Duration::from_secs(args.latency_secs) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak2 = peak2.max(db(&wh, |wh| wh.db().backlog().unwrap_or(0)).await);
    }
    stop.store(true, Ordering::Relaxed);
    let to2 = prod.await?;
    let want2 = chain.expected(from2, to2).len() + burst_events;
    wait_for("the latency phase's events", Duration::from_secs(60), || {
        rx.distinct() >= want2
    })
    .await?;
    let d2 = t2.elapsed();
    let cpu2 = cpu_secs() - cpu0;
    let conns2 = rx.connections.load(Ordering::Relaxed) - conns0;
    let posts2 = rx.posts.load(Ordering::Relaxed) - posts0;
    let disk2 = disk_written() - disk0;
    let probe2 = probe.between(t2, Instant::now());
    let check2 = check(&chain, &rx, &hook_ids, from2, to2);
    let (lat2, feed2, outbox2) = latencies(&chain, &rx, from2, to2);

    // 3. Receiver outage under the same load.
    eprintln!(
        "outage: the same load; receiver {} for {} s",
        if args.outage_503 {
            "answering 503"
        } else {
            "refusing connections"
        },
        args.outage_secs
    );
    let (cpu0, conns0, posts0, disk0) = (
        cpu_secs(),
        rx.connections.load(Ordering::Relaxed),
        rx.posts.load(Ordering::Relaxed),
        disk_written(),
    );
    let from3 = chain.head() + 1;
    let stop = Arc::new(AtomicBool::new(false));
    let prod = producer(
        chain.clone(),
        Duration::from_millis(args.interval_ms),
        args.steady_txs,
        stop.clone(),
    );
    let t3 = Instant::now();
    let up = Arc::new(AtomicBool::new(true));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (wh, up, samples, rx) = (wh.clone(), up.clone(), samples.clone(), rx.clone());
        tokio::spawn(async move {
            loop {
                let (backlog, took) = db(&wh, move |wh| {
                    let a = Instant::now();
                    (wh.db().backlog().unwrap_or(0), ms(a.elapsed()))
                })
                .await;
                let sample = Sample {
                    t: t3.elapsed().as_secs_f64(),
                    backlog,
                    backlog_ms: took,
                    up: up.load(Ordering::Relaxed),
                    distinct: rx.distinct(),
                };
                samples.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let down_at = t3.elapsed();
    if args.outage_503 {
        rx.fail_503.store(true, Ordering::Relaxed);
    } else {
        server.stop().await;
    }
    up.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.outage_secs)).await;
    let (peak_due, peak_next_due) = db(&wh, |wh| {
        let now = unix_ms();
        let t = Instant::now();
        for _ in 0..20 {
            let _ = wh.db().due(now, 32, &[]);
        }
        let due = ms(t.elapsed()) / 20.0;
        let t = Instant::now();
        for _ in 0..20 {
            let _ = wh.db().next_due();
        }
        (due, ms(t.elapsed()) / 20.0)
    })
    .await;
    if args.outage_503 {
        rx.fail_503.store(false, Ordering::Relaxed);
    } else {
        server = Server::start(addr, rx.clone()).await?;
    }
    up.store(true, Ordering::Relaxed);
    let back = Instant::now();
    let back_at = t3.elapsed();
    let head_at_back = chain.head();
    let posts_at_back = rx.posts.load(Ordering::Relaxed);
    // Recovery: every event of the blocks served until the receiver came back has arrived.
    let outage_expected: HashSet<String> = {
        let ids: HashSet<(usize, String)> = chain
            .expected(from3, head_at_back)
            .into_iter()
            .map(|(h, tx, _)| (h, tx))
            .collect();
        ids.into_iter().map(|(h, tx)| format!("{}|{tx}", hook_ids[h])).collect()
    };
    let mut first_after_back = None;
    let recovered = loop {
        if back.elapsed() > Duration::from_secs(120) {
            break None;
        }
        if first_after_back.is_none() && rx.posts.load(Ordering::Relaxed) > posts_at_back {
            first_after_back = Some(back.elapsed());
        }
        let have = {
            let arrivals = rx.arrivals();
            arrivals
                .iter()
                .filter(|a| a.block >= from3 && a.block <= head_at_back)
                .map(|a| format!("{}|{}", a.hook, a.tx))
                .collect::<HashSet<_>>()
        };
        if outage_expected.is_subset(&have) {
            break Some(back.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The live load keeps going a few seconds more, then stops; the outbox must empty.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let to3 = prod.await?;
    let want3 = chain.expected(from3, to3).len() + want2;
    wait_for("the outage phase's events", Duration::from_secs(120), || {
        rx.distinct() >= want3
    })
    .await?;
    let w = wh.clone();
    let t_zero = Instant::now();
    while db(&w, |wh| wh.db().backlog().unwrap_or(1)).await > 0 {
        ensure!(t_zero.elapsed() < Duration::from_secs(30), "the backlog did not empty");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampler.abort();
    let _ = sampler.await;
    let d3 = t3.elapsed();
    let cpu3 = cpu_secs() - cpu0;
    let disk3 = disk_written() - disk0;
    let probe_down = probe.between(t3 + down_at, back);
    let probe_back = probe.between(back, Instant::now());
    probe_task.abort();
    let conns3 = rx.connections.load(Ordering::Relaxed) - conns0;
    let posts3 = rx.posts.load(Ordering::Relaxed) - posts0;
    let check3 = check(&chain, &rx, &hook_ids, from3, to3);
    let samples = samples.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let states: Vec<State> = db(&wh, |wh| {
        wh.db()
            .hooks(None, |_| Dialect::Klaytn)
            .map(|hs| hs.into_iter().map(|h| h.state).collect())
            .unwrap_or_default()
    })
    .await;
    let failing = states.iter().filter(|s| **s != State::Active).count();
    // Backlog back to zero after the receiver returned (with the live load still coming).
    let zero_after_back = samples
        .iter()
        .find(|s| s.t > back_at.as_secs_f64() && s.backlog == 0)
        .map(|s| s.t - back_at.as_secs_f64());
    let peak3 = samples.iter().map(|s| s.backlog).max().unwrap_or(0);

    // The queries the worker runs every loop, on the final table (every event delivered).
    let (q_due, q_next, q_backlog) = db(&wh, |wh| {
        let now = unix_ms();
        let time = |n: u32, f: &dyn Fn()| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            ms(t.elapsed()) / f64::from(n)
        };
        let due = time(200, &|| {
            let _ = wh.db().due(now, 32, &[]);
        });
        let next = time(200, &|| {
            let _ = wh.db().next_due();
        });
        let backlog = time(20, &|| {
            let _ = wh.db().backlog();
        });
        (due, next, backlog)
    })
    .await;
    let total_events = want3;
    let all_posts = rx.posts.load(Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    server.stop().await;
    let sizes = (
        file_size(&db_file),
        file_size(&dir.join("webhooks.db-wal")),
        file_size(&dir.join("webhooks.db-shm")),
    );
    // What the hourly retention pass costs: every delivered event forgotten in one go (it
    // holds the webhooks' one connection meanwhile).
    let (pruned, prune_ms) = db(&wh, |wh| {
        let t = Instant::now();
        let n = wh.db().prune(unix_ms() + 1).unwrap_or(0);
        (n, ms(t.elapsed()))
    })
    .await;
    let elapsed = started.elapsed();

    // The report.
    writeln!(out, "\n### 2. Latency at a steady rate\n")?;
    writeln!(
        out,
        "A block of {} transfers every {} ms = {steady_rate:.0} events/s for {} s ({} blocks, {} events).\n",
        args.steady_txs,
        args.interval_ms,
        args.latency_secs,
        to2 + 1 - from2,
        check2.expected
    )?;
    writeln!(out, "| from → to | p50 | p99 | max |\n|---|--:|--:|--:|")?;
    writeln!(
        out,
        "| **block served → event at the receiver** | **{:.1} ms** | **{:.1} ms** | **{:.1} ms** |",
        pct(&lat2, 50.0),
        pct(&lat2, 99.0),
        pct(&lat2, 100.0)
    )?;
    writeln!(
        out,
        "| served → queued (envelope `createdAt`, ms clock) | {:.0} ms | {:.0} ms | {:.0} ms |",
        pct(&feed2, 50.0),
        pct(&feed2, 99.0),
        pct(&feed2, 100.0)
    )?;
    writeln!(
        out,
        "| queued → at the receiver (ms clock) | {:.0} ms | {:.0} ms | {:.0} ms |",
        pct(&outbox2, 50.0),
        pct(&outbox2, 99.0),
        pct(&outbox2, 100.0)
    )?;
    writeln!(
        out,
        "\nPeak backlog {peak2}; CPU {:.2} s over {:.1} s ({:.0} % of one core, {:.0} µs per event); \
         {posts2} POSTs over {conns2} TCP connections; {:.1} MB written to disk ({:.1} kB per event); DB lock probe \
         p50 / p99 / max {}; all expected events, no others, one id each: {} ({} dup).",
        cpu2,
        d2.as_secs_f64(),
        cpu2 * 100.0 / d2.as_secs_f64(),
        cpu2 * 1e6 / check2.expected as f64,
        disk2 as f64 / 1e6,
        disk2 as f64 / 1e3 / check2.expected as f64,
        probe_text(probe2),
        ok(&check2),
        check2.dups()
    )?;
    writeln!(out, "\n### 3. Receiver outage\n")?;
    writeln!(
        out,
        "The same load; the receiver {} from t = {:.1} s to t = {:.1} s, then back on the same port; blocks kept coming \
         throughout and for 3 s after recovery ({} events in this phase).\n",
        if args.outage_503 {
            "answered 503"
        } else {
            "stopped listening (connection refused; its open connections closed)"
        },
        down_at.as_secs_f64(),
        back_at.as_secs_f64(),
        check3.expected
    )?;
    writeln!(
        out,
        "| t (s) | receiver | outbox backlog | delivered so far (all phases) | `backlog()` took |"
    )?;
    writeln!(out, "|--:|---|--:|--:|--:|")?;
    let mut next_t = 0.0;
    for (i, s) in samples.iter().enumerate() {
        let edge = i > 0 && samples[i - 1].up != s.up;
        if s.t >= next_t || edge || i + 1 == samples.len() || s.backlog == peak3 {
            writeln!(
                out,
                "| {:.1} | {} | {} | {} | {:.1} ms |",
                s.t,
                if s.up { "up" } else { "down" },
                s.backlog,
                s.distinct,
                s.backlog_ms
            )?;
            if s.t >= next_t {
                next_t = (s.t / 5.0).floor() * 5.0 + 5.0;
            }
        }
    }
    let stat = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (pct(&v, 50.0), pct(&v, 100.0))
    };
    let (bq50, bqmax) = stat(|s| s.backlog_ms);
    writeln!(out, "\n| measure | value |\n|---|--:|")?;
    writeln!(out, "| peak backlog | {peak3} events |")?;
    writeln!(
        out,
        "| receiver back → first POST reaches it | {} |",
        first_after_back.map_or("—".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    )?;
    writeln!(
        out,
        "| **recovery: receiver back → every event queued while it was down delivered** | **{}** |",
        recovered.map_or("not within 120 s".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    )?;
    writeln!(
        out,
        "| receiver back → backlog first sampled at 0 (live load still coming) | {} |",
        zero_after_back.map_or("—".into(), |t| format!("{t:.1} s"))
    )?;
    writeln!(out, "| webhooks not active at the end | {failing} of {} |", args.hooks)?;
    writeln!(
        out,
        "| POSTs / TCP connections accepted (phase) | {posts3} / {conns3} |"
    )?;
    writeln!(
        out,
        "| **nothing lost**: every expected event arrived, no others, one id each | **{}** ({} expected, {} distinct) |",
        ok(&check3),
        check3.expected,
        check3.distinct
    )?;
    writeln!(
        out,
        "| duplicates (an id arriving again) | {} of {} POSTs accepted |",
        check3.dups(),
        check3.posts
    )?;
    writeln!(
        out,
        "| `backlog()` call during the phase, p50 / max | {bq50:.1} / {bqmax:.1} ms |"
    )?;
    writeln!(out, "| `due()` / `next_due()` at the peak (receiver still down), per call | {peak_due:.2} / {peak_next_due:.2} ms |")?;
    writeln!(
        out,
        "| DB lock probe p50 / p99 / max: receiver down / after it is back | {} / {} |",
        probe_text(probe_down),
        probe_text(probe_back)
    )?;
    writeln!(
        out,
        "| CPU (whole process), phase | {:.1} s over {:.1} s ({:.0} % of one core) |",
        cpu3,
        d3.as_secs_f64(),
        cpu3 * 100.0 / d3.as_secs_f64()
    )?;
    writeln!(
        out,
        "| written to disk, phase | {:.1} MB ({:.1} kB per event) |",
        disk3 as f64 / 1e6,
        disk3 as f64 / 1e3 / check3.expected as f64
    )?;
    writeln!(out, "\n### Store\n")?;
    writeln!(
        out,
        "`webhooks.db` after {total_events} events (all delivered, none pruned yet) and {all_posts} POSTs: \
         {:.1} MB + WAL {:.1} MB + shm {:.2} MB ({:.0} bytes per event incl. its attempts). On that table: \
         `due()` {q_due:.2} ms, `next_due()` {q_next:.2} ms, `backlog()` {q_backlog:.2} ms per call. \
         `prune()` of all {pruned} delivered events (what the retention pass runs, one transaction): \
         {prune_ms:.0} ms.",
        sizes.0 as f64 / 1e6,
        sizes.1 as f64 / 1e6,
        sizes.2 as f64 / 1e6,
        (sizes.0 + sizes.1) as f64 / total_events as f64
    )?;
    writeln!(
        out,
        "\nSignatures rejected by the receiver: {}.",
        rx.bad.load(Ordering::Relaxed)
    )?;
    writeln!(out, "\nRun took {:.0} s.", elapsed.as_secs_f64())?;
    print!("{out}");
    if !(check1.ok() && check2.ok() && check3.ok()) || rx.bad.load(Ordering::Relaxed) > 0 {
        bail!("events were lost, unexpected or badly signed");
    }
    Ok(())
}
