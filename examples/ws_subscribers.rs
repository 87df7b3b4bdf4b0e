//! Subscription fan-out load for `scripts/bench-events`: N WebSocket `newHeads` subscribers on
//! one kengate, and how long after the served head moves the last of them hears of the block.
//!
//! ```sh
//! ulimit -n 200000   # one descriptor per connection
//! cargo run --release --example ws_subscribers -- --url ws://127.0.0.1:8545 -n 10000 [--blocks 20]
//! ```
//!
//! It opens N connections (at most `--concurrency` handshakes at a time), sends one
//! `klay_subscribe ["newHeads"]` on each and waits for every id reply. A probe then polls
//! `klay_blockNumber` over one keep-alive HTTP connection every `--probe-ms` (kengate answers
//! it from its served head, without an upstream call) and notes when it first sees each block:
//! that is when the served head moved (late by at most one poll interval plus one round trip).
//! The measurement window is the `--blocks` blocks after the head seen once everyone is
//! subscribed. For each of them:
//!
//! - **latency** = time the LAST subscriber received its notification − time the probe first
//!   saw `blockNumber` ≥ that block (the fan-out to everyone, header fetch included);
//! - **first latency** = the same for the FIRST subscriber (the fixed part: fetch + one send).
//!
//! Receive times are taken in the client's tasks, so they include this process's own
//! scheduling: on a small machine the client competes with kengate for the same cores, and
//! the figures are an upper bound of kengate's share. A latency can come out slightly negative
//! when a notification arrives before the probe's next poll.
//!
//! Prints one JSON line: `n`, `connected`, `blocks` (measured), `from_block`/`to_block`,
//! `p50_ms`/`p99_ms`/`max_ms` (latency over the blocks; nearest rank), `first_p50_ms`/
//! `first_p99_ms`, `missing` (subscribers that missed at least one block of the window),
//! `missed_notifications`, `duplicates` (a block received twice by the same subscriber),
//! `out_of_order`, `closed` (connections the server closed) with `close_codes`, `connect_s`
//! (time to open and subscribe all) and `probe_polls`. Exit status 1 when nothing could be
//! measured (no connection, no block in time); missing notifications are reported, not fatal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// N WebSocket newHeads subscribers on one kengate; fan-out latency from the served head.
#[derive(Debug, Parser)]
struct Args {
    /// kengate's WebSocket URL (ws://host:port[/path]).
    #[arg(long)]
    url: String,
    /// kengate's HTTP URL for the head probe (default: --url with http:// for ws://).
    #[arg(long)]
    http: Option<String>,
    /// Subscribers (one connection each); 0: only the probe (kengate's baseline CPU).
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    /// Blocks to measure once every subscriber is subscribed.
    #[arg(long, default_value_t = 20)]
    blocks: u64,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Subscribe method (klay_subscribe, kaia_subscribe, eth_subscribe).
    #[arg(long, default_value = "klay_subscribe")]
    method: String,
    /// Head probe interval, in ms.
    #[arg(long, default_value_t = 2)]
    probe_ms: u64,
    /// Seconds to wait for the window's blocks (after that, what was seen is reported).
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// After the last block of the window, ms to wait for subscribers still missing it.
    #[arg(long, default_value_t = 5000)]
    grace_ms: u64,
    /// kengate's process id: its CPU time and RSS over the window are reported (Linux /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// kengate's metrics URL (http://host:port/metrics): event-feed counters over the window.
    #[arg(long)]
    metrics: Option<String>,
}

/// kengate's counters at one moment (what could be read).
#[derive(Debug, Default)]
struct Snapshot {
    /// kengate's utime + stime, in clock ticks.
    cpu_ticks: Option<u64>,
    /// This process's (the subscribers' and the probe's), in clock ticks.
    own_cpu_ticks: Option<u64>,
    rss_kb: Option<u64>,
    /// `kengate_event_blocks_total`, summed over networks.
    blocks: Option<u64>,
    /// `kengate_event_fetches_total` by kind, summed over networks.
    fetches: BTreeMap<String, u64>,
    at: Option<Instant>,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn snapshot(client: &HttpClient, pid: Option<u32>, metrics: Option<&str>) -> Snapshot {
    let mut s = Snapshot {
        at: Some(Instant::now()),
        ..Snapshot::default()
    };
    s.own_cpu_ticks = cpu_ticks("/proc/self/stat");
    if let Some(pid) = pid {
        s.cpu_ticks = cpu_ticks(&format!("/proc/{pid}/stat"));
        s.rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|st| {
                let line = st.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            });
    }
    if let Some(url) = metrics {
        let text = async {
            let req = hyper::Request::get(url).body(Full::new(Bytes::new())).ok()?;
            let resp = client.request(req).await.ok()?;
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            String::from_utf8(body.to_vec()).ok()
        };
        if let Some(text) = text.await {
            for line in text.lines() {
                let Some((name, value)) = line.rsplit_once(' ') else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else { continue };
                let value = value as u64;
                if name.starts_with("kengate_event_blocks_total") {
                    *s.blocks.get_or_insert(0) += value;
                } else if name.starts_with("kengate_event_fetches_total") {
                    let kind = name
                        .split("kind=\"")
                        .nth(1)
                        .and_then(|k| k.split('"').next())
                        .unwrap_or("?");
                    *s.fetches.entry(kind.to_owned()).or_default() += value;
                }
            }
        }
    }
    s
}

/// utime + stime of a process, from its /proc/PID/stat.
fn cpu_ticks(path: &str) -> Option<u64> {
    let st = std::fs::read_to_string(path).ok()?;
    // Fields after the ")" that ends the command name: state is #3, utime #14, stime #15.
    let rest = st.get(st.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// kengate's figures over the window, from two snapshots.
fn window_figures(a: &Snapshot, b: &Snapshot, clk_tck: u64) -> Value {
    let sub = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?));
    let blocks = sub(a.blocks, b.blocks);
    let to_ms = |t: u64| t as f64 * 1000.0 / clk_tck.max(1) as f64;
    let cpu_ms = sub(a.cpu_ticks, b.cpu_ticks).map(to_ms);
    let own_ms = sub(a.own_cpu_ticks, b.own_cpu_ticks).map(to_ms);
    let per_block = |c: Option<f64>| match (c, blocks) {
        (Some(c), Some(n)) if n > 0 => json!((c / n as f64 * 10.0).round() / 10.0),
        _ => Value::Null,
    };
    let mut fetches = serde_json::Map::new();
    let mut fetches_per_block = serde_json::Map::new();
    for (kind, after) in &b.fetches {
        let d = after.saturating_sub(a.fetches.get(kind).copied().unwrap_or(0));
        fetches.insert(kind.clone(), json!(d));
        if let Some(n) = blocks.filter(|n| *n > 0) {
            fetches_per_block.insert(kind.clone(), json!((d as f64 / n as f64 * 100.0).round() / 100.0));
        }
    }
    let secs = match (a.at, b.at) {
        (Some(x), Some(y)) => y.duration_since(x).as_secs_f64(),
        _ => 0.0,
    };
    json!({
        "window_s": (secs * 100.0).round() / 100.0,
        "event_blocks": blocks,
        "cpu_ms": cpu_ms.map(|c| c.round()),
        "cpu_ms_per_block": per_block(cpu_ms),
        "client_cpu_ms_per_block": per_block(own_ms),
        "rss_kb_start": a.rss_kb,
        "rss_kb_end": b.rss_kb,
        "fetches": fetches,
        "fetches_per_block": fetches_per_block,
    })
}

/// What a subscriber task saw.
#[derive(Debug, Default)]
struct Received {
    /// Whether the subscribe call succeeded.
    subscribed: bool,
    /// (block, µs since start) for every notification, in arrival order.
    notes: Vec<(u64, u64)>,
    /// Close code, when the server closed the connection.
    closed: Option<u16>,
}

/// State shared by the subscriber tasks and the main task.
struct Shared {
    t0: Instant,
    /// The window's last block (u64::MAX until known).
    last_block: AtomicU64,
    /// Subscribers that received the window's last block.
    done: AtomicUsize,
    /// Connections that ended before the stop signal.
    ended: AtomicUsize,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A message from kengate.
enum Msg {
    /// A `newHeads` notification of this block.
    Head(u64),
    /// The reply to the subscribe call: the id, or the error.
    Reply(Result<String, String>),
    Other,
}

fn classify(text: &str) -> Msg {
    if text.contains("\"subscription\"") {
        // Fast path: the header's `"number":"0x…"` (kengate passes the node's bytes through).
        if let Some(i) = text.find("\"number\":\"0x") {
            let rest = &text[i + 12..];
            let end = rest.find('"').unwrap_or(rest.len());
            if let Ok(n) = u64::from_str_radix(&rest[..end], 16) {
                return Msg::Head(n);
            }
        }
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        return match v["params"]["result"]["number"].as_str().and_then(parse_hex) {
            Some(n) => Msg::Head(n),
            None => Msg::Other,
        };
    }
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return Msg::Other,
    };
    if v.get("id").is_none() {
        return Msg::Other;
    }
    match (v.get("result").and_then(Value::as_str), v.get("error")) {
        (Some(id), _) => Msg::Reply(Ok(id.to_owned())),
        (None, Some(e)) => Msg::Reply(Err(e.to_string())),
        (None, None) => Msg::Reply(Err(format!("unexpected reply: {text}"))),
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// One subscriber: connects, subscribes, reports setup on `ready`, then records notifications
/// until `stop`.
async fn subscriber(
    url: String,
    method: String,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    permit: tokio::sync::OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut rec = Received::default();
    let cfg = WebSocketConfig {
        write_buffer_size: 0,
        ..WebSocketConfig::default()
    };
    let connect = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(cfg), true),
    );
    let mut ws = match connect.await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            let _ = ready.send(Err(format!("connect: {e}")));
            return rec;
        }
        Err(_) => {
            let _ = ready.send(Err("connect: timed out after 30 s".into()));
            return rec;
        }
    };
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": ["newHeads"]}).to_string();
    if let Err(e) = ws.send(Message::text(call)).await {
        let _ = ready.send(Err(format!("send subscribe: {e}")));
        return rec;
    }
    let mut permit = Some(permit);
    let mut done = false;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                rec.closed = Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                if !rec.subscribed {
                    let _ = ready.send(Err(format!("read: {e}")));
                    return rec;
                }
                rec.closed = Some(1006);
                break;
            }
            None => {
                rec.closed = Some(1006);
                break;
            }
        };
        match classify(&text) {
            Msg::Head(n) => {
                let t = shared.now_us();
                rec.notes.push((n, t));
                if !done && n >= shared.last_block.load(Ordering::Relaxed) {
                    done = true;
                    shared.done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Msg::Reply(Ok(_)) if !rec.subscribed => {
                rec.subscribed = true;
                // Let the next connection start its handshake.
                drop(permit.take());
                let _ = ready.send(Ok(()));
            }
            Msg::Reply(Err(e)) if !rec.subscribed => {
                let _ = ready.send(Err(format!("subscribe: {e}")));
                return rec;
            }
            _ => {}
        }
    }
    drop(permit);
    if !rec.subscribed {
        let _ = ready.send(Err(format!("closed before the subscribe reply ({:?})", rec.closed)));
    } else if rec.closed.is_some() {
        shared.ended.fetch_add(1, Ordering::Relaxed);
    }
    if rec.closed.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    rec
}

/// The head probe: (block, first µs the probe saw blockNumber ≥ block), from the first answer on.
async fn probe(
    http: String,
    every: Duration,
    shared: Arc<Shared>,
    seen: Arc<Mutex<BTreeMap<u64, u64>>>,
    head: watch::Sender<u64>,
    polls: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http();
    let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[]}"#);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<u64> = None;
    let mut errors = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return Ok(()),
        }
        let sent = shared.now_us();
        let req = hyper::Request::post(http.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| format!("probe request: {e}"))?;
        let answer = async {
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            v["result"]
                .as_str()
                .and_then(parse_hex)
                .ok_or_else(|| format!("no block number in {v}"))
        };
        let n = match answer.await {
            Ok(n) => n,
            Err(e) => {
                errors += 1;
                if errors >= 100 {
                    return Err(format!("probe: klay_blockNumber failed 100 times, last: {e}"));
                }
                continue;
            }
        };
        // The head moved after the previous answer and before this one: stamp the send time
        // (at most one interval late, at most one round trip early).
        let t = sent;
        polls.fetch_add(1, Ordering::Relaxed);
        if last.is_none_or(|l| n > l) {
            let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
            // Blocks skipped between two polls moved at the same time as far as we can tell.
            let from = last.map_or(n, |l| l + 1);
            for b in from..=n {
                s.entry(b).or_insert(t);
            }
            drop(s);
            last = Some(n);
            head.send_replace(n);
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!((x * 100.0).round() / 100.0))
}

/// The soft limit on open files, from /proc/self/limits (Linux), if readable.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("ws_subscribers: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.blocks == 0 || args.concurrency == 0 {
        return Err("--blocks and --concurrency must be > 0".into());
    }
    if let Some(limit) = open_files_limit() {
        if limit < args.n as u64 + 64 {
            return Err(format!(
                "{} connections need more open files than the limit {limit}: raise it (ulimit -n)",
                args.n
            ));
        }
    }
    let http = match &args.http {
        Some(h) => h.clone(),
        None => {
            if let Some(rest) = args.url.strip_prefix("ws://") {
                format!("http://{rest}")
            } else if let Some(rest) = args.url.strip_prefix("wss://") {
                format!("https://{rest}")
            } else {
                return Err(format!("--url must start with ws:// or wss://, not {:?}", args.url));
            }
        }
    };
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        last_block: AtomicU64::new(u64::MAX),
        done: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    // Subscribers, at most `concurrency` handshakes at a time.
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(args.n);
    let opening = Instant::now();
    for _ in 0..args.n {
        let permit = gate.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(subscriber(
            args.url.clone(),
            args.method.clone(),
            shared.clone(),
            ready_tx.clone(),
            permit,
            stop_rx.clone(),
        )));
        // The task holds the permit until its subscribe reply arrives.
    }
    drop(ready_tx);
    let mut connected = 0usize;
    let mut first_error = None;
    for _ in 0..args.n {
        match ready_rx.recv().await {
            Some(Ok(())) => connected += 1,
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => break,
        }
    }
    let connect_s = opening.elapsed().as_secs_f64();
    if connected == 0 && args.n > 0 {
        let _ = stop_tx.send(true);
        return Err(format!(
            "no subscriber connected: {}",
            first_error.unwrap_or_else(|| "?".into())
        ));
    }
    if let Some(e) = &first_error {
        eprintln!(
            "ws_subscribers: {} of {} connections failed, first: {e}",
            args.n - connected,
            args.n
        );
    }

    // The probe, and the window: the `blocks` blocks after the head it first sees.
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let (head_tx, mut head_rx) = watch::channel(0u64);
    let polls = Arc::new(AtomicU64::new(0));
    // On its own thread and current-thread runtime: on the shared runtime its replies would
    // wait behind the subscriber tasks busy with the very notifications being timed.
    let probe_task = {
        let every = Duration::from_millis(args.probe_ms.max(1));
        let (shared, seen, polls, stop) = (shared.clone(), seen.clone(), polls.clone(), stop_rx.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("head-probe".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(probe(http, every, shared, seen, head_tx, polls, stop)),
                    Err(e) => Err(format!("probe runtime: {e}")),
                };
                let _ = done_tx.send(result);
            })
            .map_err(|e| format!("probe thread: {e}"))?;
        done_rx
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let start_head = tokio::time::timeout(Duration::from_secs(30), async {
        head_rx.wait_for(|h| *h > 0).await.map(|h| *h)
    });
    let h0 = match start_head.await {
        Ok(Ok(h)) => h,
        _ => {
            let _ = stop_tx.send(true);
            let why = match probe_task.await {
                Ok(Err(e)) => e,
                _ => "no answer to klay_blockNumber in 30 s".into(),
            };
            return Err(why);
        }
    };
    let (from, to) = (h0 + 1, h0 + args.blocks);
    shared.last_block.store(to, Ordering::Relaxed);
    let meter: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let before = snapshot(&meter, args.pid, args.metrics.as_deref()).await;
    let reached = tokio::time::timeout_at(deadline.into(), head_rx.wait_for(|h| *h >= to));
    let timed_out = !matches!(reached.await, Ok(Ok(_)));
    // Wait for subscribers still missing the last block (or gone), then a little for stragglers.
    let grace = Instant::now() + Duration::from_millis(args.grace_ms);
    while !timed_out && Instant::now() < grace {
        let live = connected.saturating_sub(shared.ended.load(Ordering::Relaxed));
        if shared.done.load(Ordering::Relaxed) >= live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = snapshot(&meter, args.pid, args.metrics.as_deref()).await;
    let _ = stop_tx.send(true);
    let probe_result = probe_task.await.map_err(|_| "probe thread died".to_string())?;
    let mut received = Vec::with_capacity(tasks.len());
    for t in tasks {
        received.push(t.await.map_err(|e| e.to_string())?);
    }
    probe_result?;

    // Per block of the window: first and last arrival, over the subscribers that got it.
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    let window: Vec<u64> = (from..=to).filter(|b| seen.contains_key(b)).collect();
    let mut first_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last_at: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut missing, mut missed, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let mut close_codes: BTreeMap<u16, u64> = BTreeMap::new();
    let mut closed = 0u64;
    let mut got = Vec::new();
    for r in received.iter().filter(|r| r.subscribed) {
        if let Some(c) = r.closed {
            closed += 1;
            *close_codes.entry(c).or_default() += 1;
        }
        got.clear();
        let mut max_seen: Option<u64> = None;
        for &(b, t) in &r.notes {
            if got.contains(&b) {
                duplicates += 1;
            } else if max_seen.is_some_and(|m| b < m) {
                out_of_order += 1;
            }
            got.push(b);
            max_seen = Some(max_seen.map_or(b, |m| m.max(b)));
            if (from..=to).contains(&b) {
                let f = first_at.entry(b).or_insert(t);
                *f = (*f).min(t);
                let l = last_at.entry(b).or_insert(t);
                *l = (*l).max(t);
            }
        }
        let lacking = window.iter().filter(|b| !got.contains(b)).count() as u64;
        if lacking > 0 {
            missing += 1;
            missed += lacking;
        }
    }

    let lat = |at: &BTreeMap<u64, u64>| -> Vec<f64> {
        let mut v: Vec<f64> = window
            .iter()
            .filter_map(|b| Some((*at.get(b)? as f64 - seen[b] as f64) / 1000.0))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let last_lat = lat(&last_at);
    let first_lat = lat(&first_at);
    let mut out = json!({
        "n": args.n,
        "connected": connected,
        "blocks": window.len(),
        "from_block": from,
        "to_block": to,
        "p50_ms": ms(pct(&last_lat, 50.0)),
        "p99_ms": ms(pct(&last_lat, 99.0)),
        "max_ms": ms(last_lat.last().copied()),
        "first_p50_ms": ms(pct(&first_lat, 50.0)),
        "first_p99_ms": ms(pct(&first_lat, 99.0)),
        "missing": missing,
        "missed_notifications": missed,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "closed": closed,
        "close_codes": close_codes.iter().map(|(c, k)| (c.to_string(), json!(k))).collect::<serde_json::Map<_, _>>(),
        "connect_s": (connect_s * 100.0).round() / 100.0,
        "probe_polls": polls.load(Ordering::Relaxed),
        "timed_out": timed_out,
    });
    out["window"] = window_figures(&before, &after, args.clk_tck);
    println!("{out}");
    if window.is_empty() {
        return Err(format!("no block of {from}..={to} seen in {} s", args.timeout_s));
    }
    Ok(())
}
