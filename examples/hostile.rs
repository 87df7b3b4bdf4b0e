//! Hostile clients against a running kengate, in bounded time, while an honest client keeps
//! calling it: the `scripts/hostile` stage of `scripts/test`.
//!
//! ```sh
//! scripts/hostile    # builds, starts a static upstream and a kengate set up for this, runs it
//! cargo run --release --example hostile -- --url http://127.0.0.1:8545 --admin http://127.0.0.1:9545 \
//!     --pid "$(pidof kengate)" --token ID.SECRET [the limits kengate runs with: --max-body-bytes ...]
//! ```
//!
//! kengate must run with `[auth] enabled` (`--token` is a working key), `auth.trusted_proxies`
//! holding 127.0.0.1 (the phases act as several client addresses through `X-Forwarded-For`) and
//! `admin_listen` (`--admin`: /metrics is read there, where the connection caps do not apply).
//! The limit flags (`--max-body-bytes`, `--body-timeout-ms`, ...; defaults: kengate's) must be
//! the ones it was started with: the assertions are made against them.
//!
//! Throughout, an honest client (X-Forwarded-For 192.0.2.10, the good key) calls
//! `klay_blockNumber` every 20 ms on ONE keep-alive connection, opened first: the attackers share
//! its TCP peer (127.0.0.1), so a new connection of its own would count against the per-address
//! cap during the flood. Any answer but 200 with a `result` is a failure. The phases:
//!
//! 1. baseline: kengate's RSS (`/proc/PID/status` VmRSS) once the honest client is warm;
//! 2. stalled bodies: `--stalled` connections each declare `max_body_bytes`, send 7/8 of it and
//!    stop. Each must get 408 (idle deadline) or 503 with `retry-after` (the shared byte budget
//!    is spent) within `body_idle_timeout + 3 s` of stopping, and be closed. kengate's peak RSS
//!    meanwhile must stay under [`rss_bound`];
//! 3. a trickled body, 1 byte every 100 ms: 408 at `body_timeout` (-0.25 s / +3 s), closed;
//! 4. oversized: a declared Content-Length over `max_body_bytes` and a chunked body over it get
//!    413; a WebSocket message over it, close code 1009 naming `limits.max_body_bytes`;
//! 5. connection flood: with only the honest connection open, 50 connections more than the
//!    per-address cap has room for: those 50 read `503 ... too many connections; retry` and are
//!    closed, the others stay open (the gauge reads the cap); once all are dropped,
//!    `kengate_open_connections` is back to 1;
//! 6. credential guessing: `--guesses` wrong secrets from 192.0.2.66: the first
//!    `--auth-failure-burst` get 401 (-32001), the rest 429 (-32005, retry-after), except one 401
//!    per token refilled meanwhile (`--auth-failure-rps`); the good key from 192.0.2.66 then
//!    gets 429 too, and from 192.0.2.67 200; /metrics counts each 401 as `bad_credentials`
//!    and each 429 as `auth_lockout` in `kengate_denied_requests_total`;
//! 7. after: RSS once only the honest connection is left (reported; asserted only under the
//!    same bound as the peak: returning memory to the allocator is separate work).
//!
//! Prints one JSON line on stdout (each phase's figures, RSS baseline / peak / after in MB,
//! refusals as the clients saw them and as /metrics counts them) and exits 1, with one
//! `hostile: FAILED: ...` line per failed assertion on stderr, when any fails or the whole run
//! takes longer than `--seconds`. Progress goes to stderr.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Hostile clients (stalled and oversized bodies, a connection flood, credential guessing)
/// against a running kengate while an honest client keeps calling it.
#[derive(Debug, Parser)]
struct Args {
    /// kengate's public URL (http://host:port).
    #[arg(long)]
    url: String,
    /// kengate's admin URL (`admin_listen`), for /metrics.
    #[arg(long)]
    admin: String,
    /// kengate's process id (RSS from /proc/PID/status).
    #[arg(long)]
    pid: u32,
    /// A working access key, `<id>.<secret>`.
    #[arg(long)]
    token: String,
    /// The whole run must end within this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// kengate's `limits.max_body_bytes`.
    #[arg(long, default_value_t = 5_242_880)]
    max_body_bytes: usize,
    /// kengate's `limits.max_buffered_body_bytes`.
    #[arg(long, default_value_t = 268_435_456)]
    max_buffered_body_bytes: u64,
    /// kengate's `limits.body_timeout_ms`.
    #[arg(long, default_value_t = 30_000)]
    body_timeout_ms: u64,
    /// kengate's `limits.body_idle_timeout_ms`.
    #[arg(long, default_value_t = 10_000)]
    body_idle_timeout_ms: u64,
    /// kengate's `limits.max_connections_per_ip`.
    #[arg(long, default_value_t = 2000)]
    max_connections_per_ip: usize,
    /// kengate's `throttle.auth_failures_per_ip.burst`.
    #[arg(long, default_value_t = 30)]
    auth_failure_burst: usize,
    /// kengate's `throttle.auth_failures_per_ip.rps`.
    #[arg(long, default_value_t = 1)]
    auth_failure_rps: u64,
    /// Stalled-body connections (keep them under the per-address cap: they share 127.0.0.1).
    #[arg(long, default_value_t = 200)]
    stalled: usize,
    /// Wrong secrets sent by the guesser.
    #[arg(long, default_value_t = 100)]
    guesses: usize,
    /// MiB of RSS allowed above baseline + max_buffered_body_bytes (see `rss_bound`).
    #[arg(long, default_value_t = 64)]
    rss_allowance_mib: u64,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const HONEST_IP: &str = "192.0.2.10";
const STALLER_IP: &str = "192.0.2.20";
const TRICKLER_IP: &str = "192.0.2.21";
const OVERSIZER_IP: &str = "192.0.2.30";
const GUESSER_IP: &str = "192.0.2.66";
const BYSTANDER_IP: &str = "192.0.2.67";
const MIB: f64 = 1024.0 * 1024.0;

/// What every phase needs: where kengate is, its limits, and the failed assertions so far.
struct Gate {
    args: Args,
    /// `host:port` of the public listener (raw sockets connect here).
    addr: String,
    /// Pooled keep-alive client for /metrics (on the admin port: not counted by the caps).
    http: HttpClient,
    failures: Vec<String>,
}

impl Gate {
    /// Records a failed assertion (`what` says what was expected and what was seen).
    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            eprintln!("hostile: FAILED: {what}");
            self.failures.push(what);
        }
    }

    /// Records a failed assertion unless `seen == want`.
    fn expect<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, seen: T, want: T) {
        self.check(seen == want, format!("{what}: {seen:?}, expected {want:?}"));
    }

    fn rss_kb(&self) -> u64 {
        rss_kb(self.args.pid).unwrap_or(0)
    }

    async fn metrics(&self) -> Result<String, String> {
        let uri = format!("{}/metrics", self.args.admin.trim_end_matches('/'));
        let req = Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, body) = send(&self.http, req).await?;
        if status != 200 {
            return Err(format!("/metrics: HTTP {status}"));
        }
        Ok(body)
    }

    /// The sum of the samples of `name` (with `label` in their labels, when given); 0 when
    /// /metrics cannot be read.
    async fn metric(&self, name: &str, label: Option<&str>) -> f64 {
        self.metrics().await.map_or(0.0, |m| metric(&m, name, label))
    }

    async fn open_connections(&self) -> f64 {
        self.metric("kengate_open_connections", None).await
    }
}

// ------------------------------------------------------------------------------------------ main

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hostile: FAILED: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let failures = runtime.block_on(run(args));
    if !failures.is_empty() {
        eprintln!("hostile: {} assertion(s) failed", failures.len());
        std::process::exit(1);
    }
    eprintln!("hostile: OK");
}

/// Runs every phase within `--seconds`; returns the failed assertions.
async fn run(args: Args) -> Vec<String> {
    let addr = match args.url.parse::<Uri>().ok().and_then(|u| u.authority().cloned()) {
        Some(a) => a.to_string(),
        None => return fatal(format!("--url {}: expected http://host:port", args.url)),
    };
    let budget = Duration::from_secs(args.seconds);
    let mut gate = Gate {
        args,
        addr,
        http: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build_http(),
        failures: Vec::new(),
    };
    let started = Instant::now();
    let (phase_tx, phase_rx) = watch::channel("start");
    let honest = match Honest::start(&gate, phase_rx).await {
        Ok(h) => h,
        Err(e) => return fatal(format!("the honest client cannot connect: {e}")),
    };
    // Each phase's figures, kept when the time runs out.
    let mut summary = serde_json::Map::new();
    let phases = async {
        let label = |name| {
            let _ = phase_tx.send(name);
        };
        label("baseline");
        let base_kb = baseline(&mut gate, &honest).await;
        summary.insert("baseline".into(), json!({ "rss_mb": mb(base_kb) }));
        label("stalled bodies");
        let figures = timed(stalled_bodies(&mut gate, base_kb)).await;
        summary.insert("stalled".into(), figures);
        label("trickled body");
        summary.insert("trickle".into(), timed(trickled_body(&mut gate)).await);
        label("oversized");
        summary.insert("oversized".into(), timed(oversized(&mut gate)).await);
        label("connection flood");
        summary.insert("flood".into(), timed(flood(&mut gate)).await);
        label("credential guessing");
        summary.insert("guessing".into(), timed(guessing(&mut gate)).await);
        label("after");
        summary.insert("after".into(), timed(after(&mut gate, base_kb)).await);
    };
    if tokio::time::timeout(budget.saturating_sub(started.elapsed()), phases)
        .await
        .is_err()
    {
        let seconds = gate.args.seconds;
        gate.check(false, format!("the run took longer than --seconds {seconds}"));
    }
    let honest = honest.stop().await;
    gate.check(
        honest.failures == 0,
        format!(
            "the honest client had {} failure(s) in {} calls: {}",
            honest.failures,
            honest.calls,
            honest.examples.join("; ")
        ),
    );
    gate.check(
        honest.calls >= 50,
        format!("the honest client made only {} calls", honest.calls),
    );
    let counted = refusal_metrics(&gate).await;
    let mut line = json!({
        "ok": gate.failures.is_empty(),
        "seconds": round1(started.elapsed().as_secs_f64()),
        "honest": honest.to_json(),
        "metrics": counted,
    });
    if let Value::Object(o) = &mut line {
        o.extend(summary);
        if !gate.failures.is_empty() {
            o.insert("failures".into(), json!(gate.failures));
        }
    }
    println!("{line}");
    gate.failures
}

/// A failure that ends the run before any phase.
fn fatal(what: String) -> Vec<String> {
    eprintln!("hostile: FAILED: {what}");
    vec![what]
}

// ------------------------------------------------------------------------------------------ phases

/// Phase 1: once the honest client is warm (20 calls answered), kengate's RSS is the
/// baseline (returned, in kB).
async fn baseline(gate: &mut Gate, honest: &Honest) -> u64 {
    let warm = wait_for(Duration::from_secs(10), || async { honest.calls() >= 20 }).await;
    gate.check(warm, "the honest client did not get 20 calls through in 10 s".into());
    let open = gate.open_connections().await;
    gate.expect("kengate_open_connections with only the honest client", open, 1.0);
    let kb = gate.rss_kb();
    gate.check(kb > 0, format!("cannot read VmRSS of pid {}", gate.args.pid));
    eprintln!("hostile: baseline RSS {:.1} MB", kb as f64 / 1024.0);
    kb
}

/// A phase's figures, with how long it took (`ms`).
async fn timed(phase: impl Future<Output = Value>) -> Value {
    let started = Instant::now();
    let mut figures = phase.await;
    if let Value::Object(o) = &mut figures {
        o.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    }
    figures
}

/// The most kengate's RSS may grow while stalled bodies are held: the shared body budget
/// (`max_buffered_body_bytes`, the request bytes kengate holds at most) plus a fixed
/// allowance (`--rss-allowance-mib`, 64 by default) for what is not body bytes and does not
/// scale with what the attackers send: each connection's HTTP read buffer (hyper's, at most
/// 2 × `max_header_bytes` = 128 KiB by default; ~31 MiB for 250 connections at the worst),
/// connection tasks, and the allocator's slack for many ~100 KiB chunks. The attackers try to
/// put `stalled × 7/8 × max_body_bytes` in kengate's memory (219 MiB with `scripts/hostile`'s
/// settings, against a bound of baseline + 128 MiB); without the budget it would hold all of
/// it. Measured there: peak 90–113 MB from a baseline of 10 MB (jemalloc keeps freed pages up
/// to a second, so the churn of refused bodies shows in the peak).
fn rss_bound(gate: &Gate, base_kb: u64) -> u64 {
    base_kb + gate.args.max_buffered_body_bytes / 1024 + gate.args.rss_allowance_mib * 1024
}

/// Phase 2: many connections declare a large body, send most of it and stall.
async fn stalled_bodies(gate: &mut Gate, base_kb: u64) -> Value {
    let a = &gate.args;
    let (n, declared) = (a.stalled, a.max_body_bytes);
    let sent = declared - declared / 8;
    let idle = Duration::from_millis(a.body_idle_timeout_ms);
    let total = Duration::from_millis(a.body_timeout_ms);
    let margin = Duration::from_secs(3);
    let before = refused_bodies(gate).await;
    eprintln!(
        "hostile: {n} connections declare {declared} bytes each, send {sent} and stall ({:.0} MiB offered)",
        (n * sent) as f64 / MIB
    );
    let peak = RssPeak::start(gate.args.pid);
    let mut set = JoinSet::new();
    for _ in 0..n {
        let head = post_head(
            &gate.addr,
            &gate.args.token,
            STALLER_IP,
            &format!("content-length: {declared}"),
        );
        set.spawn(stall(gate.addr.clone(), head, sent, idle.max(total) + margin * 2));
    }
    let mut outcomes = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        outcomes.push(done.unwrap_or_else(|e| Stall::failed(format!("task: {e}"))));
    }
    let peak_kb = peak.stop().await;
    let (bound_kb, allowance) = (rss_bound(gate, base_kb), gate.args.rss_allowance_mib);

    let (mut timed_out, mut busy, mut other, mut open, mut slow) = (0, 0, Vec::new(), 0, 0);
    let mut worst_after_stop = Duration::ZERO;
    for s in &outcomes {
        match &s.response {
            Ok(r) if r.status == 408 => {
                timed_out += 1;
                let after = s.after_stop.unwrap_or_default();
                worst_after_stop = worst_after_stop.max(after);
                if after > idle + margin || s.since_connect > total + margin {
                    slow += 1;
                }
            }
            Ok(r) if r.status == 503 && r.header("retry-after") == Some("1") => busy += 1,
            Ok(r) => other.push(format!("HTTP {} {:?}", r.status, r.body.trim())),
            Err(e) => other.push(e.clone()),
        }
        if s.response.is_ok() && !s.closed {
            open += 1;
        }
    }
    let after = refused_bodies(gate).await;
    let counted = (after.0 - before.0, after.1 - before.1);
    gate.check(
        other.is_empty(),
        format!(
            "stalled bodies: {} of {n} did not get 408 or 503+retry-after: {}",
            other.len(),
            first(&other, 3)
        ),
    );
    gate.check(
        slow == 0,
        format!(
            "stalled bodies: {slow} got 408 later than body_idle_timeout + 3 s after stalling (or body_timeout + 3 s)"
        ),
    );
    gate.check(
        open == 0,
        format!("stalled bodies: {open} connections left open after the refusal"),
    );
    gate.check(timed_out > 0, "stalled bodies: none got 408 (idle deadline)".into());
    gate.check(
        counted.0 + counted.1 == n as f64,
        format!(
            "stalled bodies: /metrics counted {} body_timeout + {} buffer_full refusals for {n} connections",
            counted.0, counted.1
        ),
    );
    gate.check(
        peak_kb <= bound_kb,
        format!(
            "stalled bodies: peak RSS {:.1} MB over the bound {:.1} MB (baseline + max_buffered_body_bytes + {} MiB)",
            peak_kb as f64 / 1024.0,
            bound_kb as f64 / 1024.0,
            allowance
        ),
    );
    eprintln!(
        "hostile: stalled bodies: {timed_out} × 408, {busy} × 503, {} other; peak RSS {:.1} MB (bound {:.1} MB)",
        other.len(),
        peak_kb as f64 / 1024.0,
        bound_kb as f64 / 1024.0
    );
    json!({
        "connections": n,
        "offered_mib": round1((n * sent) as f64 / MIB),
        "408": timed_out,
        "503": busy,
        "other": other.len(),
        "worst_408_after_stall_ms": worst_after_stop.as_millis() as u64,
        "rss_peak_mb": mb(peak_kb),
        "rss_bound_mb": mb(bound_kb),
        "metrics_body_timeout": counted.0,
        "metrics_buffer_full": counted.1,
    })
}

/// Phase 3: one body trickled a byte every 100 ms must be cut at `body_timeout`.
async fn trickled_body(gate: &mut Gate) -> Value {
    let total = Duration::from_millis(gate.args.body_timeout_ms);
    let declared = gate.args.max_body_bytes.min(1_000_000);
    let head = post_head(
        &gate.addr,
        &gate.args.token,
        TRICKLER_IP,
        &format!("content-length: {declared}"),
    );
    let outcome = trickle(&gate.addr, head, total + Duration::from_secs(5)).await;
    let (status, elapsed) = match &outcome {
        Ok((r, elapsed, _)) => (r.status, *elapsed),
        Err(_) => (0, Duration::ZERO),
    };
    let in_time = elapsed + Duration::from_millis(250) >= total && elapsed <= total + Duration::from_secs(3);
    gate.check(
        status == 408 && in_time,
        match &outcome {
            Ok((r, elapsed, _)) => format!(
                "trickled body: HTTP {} after {} ms (expected 408 after body_timeout_ms {})",
                r.status,
                elapsed.as_millis(),
                total.as_millis()
            ),
            Err(e) => format!("trickled body: {e}"),
        },
    );
    let closed = matches!(outcome, Ok((_, _, true)));
    gate.check(closed, "trickled body: connection not closed after the 408".into());
    eprintln!("hostile: trickled body: HTTP {status} after {} ms", elapsed.as_millis());
    json!({ "status": status, "answered_after_ms": elapsed.as_millis() as u64, "closed": closed })
}

/// Phase 4: bodies and messages over `max_body_bytes`.
async fn oversized(gate: &mut Gate) -> Value {
    let max = gate.args.max_body_bytes;
    let within = Duration::from_secs(10);

    // A Content-Length over the limit: refused before any body byte.
    let head = post_head(
        &gate.addr,
        &gate.args.token,
        OVERSIZER_IP,
        &format!("content-length: {}", max + 1),
    );
    let declared = match exchange(&gate.addr, head.as_bytes(), within).await {
        Ok(r) => r.status,
        Err(e) => {
            gate.check(false, format!("oversized (declared): {e}"));
            0
        }
    };
    gate.expect("oversized (declared Content-Length): HTTP status", declared, 413);

    // A chunked body that grows past the limit.
    let head = post_head(&gate.addr, &gate.args.token, OVERSIZER_IP, "transfer-encoding: chunked");
    let chunked = match chunked_over(&gate.addr, head, max + 256 * 1024, within).await {
        Ok(r) => r.status,
        Err(e) => {
            gate.check(false, format!("oversized (chunked): {e}"));
            0
        }
    };
    gate.expect("oversized (chunked): HTTP status", chunked, 413);

    // A WebSocket message over the limit.
    let ws = ws_over(&gate.addr, &gate.args.token, max + 1, within).await;
    let (code, reason) = match &ws {
        Ok(c) => c.clone(),
        Err(e) => (0, e.clone()),
    };
    gate.check(
        code == 1009 && reason.contains("limits.max_body_bytes"),
        format!("oversized (WebSocket): close {code} {reason:?}, expected 1009 naming limits.max_body_bytes"),
    );
    eprintln!("hostile: oversized: declared {declared}, chunked {chunked}, WebSocket close {code} {reason:?}");
    json!({ "declared": declared, "chunked": chunked, "ws_close": code, "ws_reason": reason })
}

/// Phase 5: connections from one address up to the cap and past it.
async fn flood(gate: &mut Gate) -> Value {
    let cap = gate.args.max_connections_per_ip;
    // Only the honest connection: the earlier phases' sockets must have been let go.
    wait_for(Duration::from_secs(10), || async {
        gate.open_connections().await == 1.0
    })
    .await;
    let before = gate.open_connections().await;
    gate.expect(
        "flood: kengate_open_connections before (the honest client)",
        before,
        1.0,
    );
    let admitted_expected = cap.saturating_sub(before as usize);
    let extra = 50;
    let to_open = admitted_expected + extra;
    let refused_before = gate.metric("kengate_refused_connections_total", Some("per_ip")).await;
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut held = JoinSet::new();
    let mut connect_errors = Vec::new();
    for _ in 0..to_open {
        match TcpStream::connect(&gate.addr).await {
            Ok(mut s) => {
                let tx = tx.clone();
                held.spawn(async move {
                    // An admitted connection hears nothing (it sent nothing); a refused one
                    // reads the 503 and the close. Held until the set is dropped.
                    let r = read_response(&mut s, Duration::from_secs(30)).await;
                    let closed = r.is_ok() && closed_after(&mut s, Duration::from_secs(3)).await;
                    let _ = tx.send((r, closed));
                    std::future::pending::<()>().await;
                });
            }
            Err(e) => connect_errors.push(e.to_string()),
        }
    }
    drop(tx);
    let opened = to_open - connect_errors.len();
    let expected_refused = opened.saturating_sub(admitted_expected);
    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while answers.len() < expected_refused {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) => answers.push(a),
            _ => break,
        }
    }
    // Anything more within a moment would be an admitted connection answered or closed.
    while let Ok(Some(a)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        answers.push(a);
    }
    let opening_ms = started.elapsed().as_millis() as u64;
    let refused = answers
        .iter()
        .filter(|(r, closed)| {
            *closed
                && r.as_ref()
                    .is_ok_and(|r| r.status == 503 && r.body.contains("too many connections; retry"))
        })
        .count();
    let odd: Vec<String> = answers
        .iter()
        .filter_map(|(r, closed)| match r {
            Ok(r) if r.status == 503 && r.body.contains("too many connections") && *closed => None,
            Ok(r) => Some(format!("HTTP {} {:?} closed={closed}", r.status, r.body.trim())),
            Err(e) => Some(e.clone()),
        })
        .collect();
    let open_at_peak = gate.open_connections().await;
    let refused_counted = gate.metric("kengate_refused_connections_total", Some("per_ip")).await - refused_before;
    drop(held);
    wait_for(Duration::from_secs(10), || async {
        gate.open_connections().await == 1.0
    })
    .await;
    let open_after = gate.open_connections().await;

    gate.check(
        connect_errors.is_empty(),
        format!(
            "flood: {} connects failed: {}",
            connect_errors.len(),
            first(&connect_errors, 3)
        ),
    );
    gate.check(refused == expected_refused && odd.is_empty(), format!(
            "flood: {refused} connections refused with 503 'too many connections; retry' and closed, expected {expected_refused} \
             (opened {opened}, cap {cap}, open before {before}); unexpected: {}",
            first(&odd, 3)
        ));
    gate.expect(
        "flood: kengate_open_connections at the peak (the cap)",
        open_at_peak,
        cap as f64,
    );
    gate.expect(
        "flood: per_ip refusals on /metrics (as seen)",
        refused_counted,
        refused as f64,
    );
    gate.expect("flood: kengate_open_connections once closed", open_after, 1.0);
    eprintln!(
        "hostile: flood: {opened} opened, {} admitted, {refused} refused; open connections {open_at_peak} → {open_after}",
        opened - answers.len()
    );
    json!({
        "opened": opened,
        "admitted": opened - answers.len(),
        "refused_503": refused,
        "open_at_peak": open_at_peak,
        "open_after": open_after,
        "metrics_refused_per_ip": refused_counted,
        "opening_ms": opening_ms,
    })
}

/// Phase 6: wrong secrets from one address until it is locked out.
async fn guessing(gate: &mut Gate) -> Value {
    let (burst, rps, n) = (
        gate.args.auth_failure_burst,
        gate.args.auth_failure_rps,
        gate.args.guesses,
    );
    let id = gate.args.token.split('.').next().unwrap_or_default().to_owned();
    let denied = |m: &str, reason: &str| metric(m, "kengate_denied_requests_total", Some(reason));
    let page = gate.metrics().await.unwrap_or_default();
    let before = (denied(&page, "\"bad_credentials\""), denied(&page, "\"auth_lockout\""));
    // One keep-alive connection, dropped at the end of the phase (a pooled one would stay
    // open and count in kengate_open_connections).
    let mut conn = match connect_http1(&gate.addr).await {
        Ok(c) => c,
        Err(e) => {
            gate.check(false, format!("guessing: {e}"));
            return json!({ "error": e });
        }
    };
    let host = gate.addr.clone();
    let started = Instant::now();
    let mut answers = Vec::with_capacity(n);
    for i in 0..n {
        let wrong = format!("{id}.wrong-secret-{i:04}-0123456789abcdef");
        answers.push(call(&mut conn, &host, GUESSER_IP, &wrong, i as u64).await);
    }
    let elapsed = started.elapsed();
    // Tokens that came back while guessing: each lets one more guess through to a 401.
    let refills = (elapsed.as_secs_f64() * rps as f64).ceil() as usize + 1;
    let status = |a: &Result<Answer, String>| a.as_ref().map_or(0, |a| a.status);
    let first_401 = answers.iter().take(burst).filter(|a| is_bad_credentials(a)).count();
    let late_401 = answers.iter().skip(burst).filter(|a| is_bad_credentials(a)).count();
    let locked = answers.iter().filter(|a| is_locked_out(a)).count();
    let other: Vec<String> = answers
        .iter()
        .filter(|a| !is_bad_credentials(a) && !is_locked_out(a))
        .map(|a| match a {
            Ok(a) => format!("HTTP {} {}", a.status, a.body),
            Err(e) => e.clone(),
        })
        .collect();
    let what = "guessing: 401 -32001 'invalid access key id or secret' among the first guesses";
    gate.expect(what, first_401, burst.min(n));
    gate.check(late_401 <= refills && other.is_empty(), format!(
            "guessing: after the burst, {late_401} more 401 (at most {refills} refills in {} ms) and {} neither 401 nor 429+retry-after -32005: {}",
            elapsed.as_millis(),
            other.len(),
            first(&other, 3)
        ));

    // The good key from the locked address: 429 before the credential is looked at. A token
    // that came back in between lets it through (200): take it with a wrong guess and retry.
    let good = gate.args.token.clone();
    let mut good_while_locked = Vec::new();
    let mut retaken = Vec::new();
    for _ in 0..3 {
        let a = call(&mut conn, &host, GUESSER_IP, &good, 1).await;
        good_while_locked.push(status(&a));
        if is_locked_out(&a) {
            break;
        }
        let wrong = format!("{id}.wrong-secret-again-0123456789");
        retaken.push(call(&mut conn, &host, GUESSER_IP, &wrong, 2).await);
    }
    let last = good_while_locked.last().copied().unwrap_or(0);
    gate.expect(
        "guessing: the good key from the locked-out address: HTTP status",
        last,
        429,
    );
    let bystander = status(&call(&mut conn, &host, BYSTANDER_IP, &good, 3).await);
    drop(conn);

    // Every refusal counted once, under its reason.
    let page = gate.metrics().await.unwrap_or_default();
    let counted = (
        denied(&page, "\"bad_credentials\"") - before.0,
        denied(&page, "\"auth_lockout\"") - before.1,
    );
    let all = || answers.iter().chain(&retaken);
    let saw = (
        all().filter(|a| is_bad_credentials(a)).count() as f64,
        (all().filter(|a| is_locked_out(a)).count() + good_while_locked.iter().filter(|s| **s == 429).count()) as f64,
    );
    gate.expect(
        "guessing: (bad_credentials, auth_lockout) denials on /metrics (as seen)",
        counted,
        saw,
    );
    gate.expect(
        "guessing: the good key from another address: HTTP status",
        bystander,
        200,
    );
    eprintln!(
        "hostile: guessing: {} × 401, {locked} × 429 in {} ms; good key while locked {good_while_locked:?}, from {BYSTANDER_IP} {bystander}",
        first_401 + late_401,
        elapsed.as_millis()
    );
    json!({
        "guesses": n,
        "401": first_401 + late_401,
        "429": locked,
        "other": other.len(),
        "guessing_ms": elapsed.as_millis() as u64,
        "good_key_while_locked": good_while_locked,
        "good_key_other_address": bystander,
    })
}

/// Phase 7: the attackers are gone; RSS is reported.
async fn after(gate: &mut Gate, base_kb: u64) -> Value {
    wait_for(Duration::from_secs(10), || async {
        gate.open_connections().await == 1.0
    })
    .await;
    let open = gate.open_connections().await;
    gate.expect("after: kengate_open_connections", open, 1.0);
    let kb = gate.rss_kb();
    let bound_kb = rss_bound(gate, base_kb);
    gate.check(
        kb <= bound_kb,
        format!(
            "after: RSS {:.1} MB over the bound {:.1} MB",
            kb as f64 / 1024.0,
            bound_kb as f64 / 1024.0
        ),
    );
    eprintln!(
        "hostile: after: RSS {:.1} MB, {open} open connection(s)",
        kb as f64 / 1024.0
    );
    json!({ "rss_mb": mb(kb), "open_connections": open })
}

/// The refusals /metrics counted over the whole run.
async fn refusal_metrics(gate: &Gate) -> Value {
    let m = gate.metrics().await.unwrap_or_default();
    let get = |name: &str, label: &str| metric(&m, name, Some(label));
    json!({
        "refused_bodies": {
            "body_timeout": get("kengate_refused_bodies_total", "\"body_timeout\""),
            "buffer_full": get("kengate_refused_bodies_total", "\"buffer_full\""),
        },
        "refused_connections": {
            "per_ip": get("kengate_refused_connections_total", "\"per_ip\""),
            "global": get("kengate_refused_connections_total", "\"global\""),
        },
        "denied_requests": {
            "bad_credentials": get("kengate_denied_requests_total", "\"bad_credentials\""),
            "auth_lockout": get("kengate_denied_requests_total", "\"auth_lockout\""),
        },
    })
}

async fn refused_bodies(gate: &Gate) -> (f64, f64) {
    let m = gate.metrics().await.unwrap_or_default();
    (
        metric(&m, "kengate_refused_bodies_total", Some("\"body_timeout\"")),
        metric(&m, "kengate_refused_bodies_total", Some("\"buffer_full\"")),
    )
}

// ------------------------------------------------------------------------------------------ clients

/// The honest client: `klay_blockNumber` every 20 ms on one keep-alive connection.
struct Honest {
    stop: watch::Sender<bool>,
    calls: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<HonestReport>,
}

#[derive(Debug, Default)]
struct HonestReport {
    calls: u64,
    failures: u64,
    /// The first few failures, with the phase they happened in.
    examples: Vec<String>,
    max_latency: Duration,
    /// Connections opened (1 unless the first one broke).
    connections: u64,
}

impl HonestReport {
    fn fail(&mut self, phase: &str, what: String) {
        self.failures += 1;
        if self.examples.len() < 5 {
            self.examples.push(format!("[{phase}] {what}"));
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "failures": self.failures,
            "max_latency_ms": self.max_latency.as_millis() as u64,
            "connections": self.connections,
        })
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Honest {
    /// Opens the connection and starts calling.
    async fn start(gate: &Gate, phase: watch::Receiver<&'static str>) -> Result<Honest, String> {
        let conn = connect_http1(&gate.addr).await?;
        let (stop, stopped) = watch::channel(false);
        let (count, calls) = watch::channel(0);
        let (addr, token) = (gate.addr.clone(), gate.args.token.clone());
        let task = tokio::spawn(honest_loop(addr, token, conn, phase, stopped, count));
        Ok(Honest { stop, calls, task })
    }

    fn calls(&self) -> u64 {
        *self.calls.borrow()
    }

    async fn stop(self) -> HonestReport {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_else(|e| HonestReport {
            failures: 1,
            examples: vec![format!("task: {e}")],
            ..HonestReport::default()
        })
    }
}

async fn honest_loop(
    addr: String,
    token: String,
    mut conn: Sender,
    phase: watch::Receiver<&'static str>,
    mut stop: watch::Receiver<bool>,
    count: watch::Sender<u64>,
) -> HonestReport {
    let mut rep = HonestReport {
        connections: 1,
        ..HonestReport::default()
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return rep,
        }
        let current = *phase.borrow();
        if conn.is_closed() {
            rep.fail(current, "the keep-alive connection was closed; reconnecting".into());
            match connect_http1(&addr).await {
                Ok(c) => {
                    conn = c;
                    rep.connections += 1;
                }
                Err(e) => {
                    rep.fail(current, e);
                    continue;
                }
            }
        }
        rep.calls += 1;
        let sent = Instant::now();
        let answer = call(&mut conn, &addr, HONEST_IP, &token, rep.calls).await;
        rep.max_latency = rep.max_latency.max(sent.elapsed());
        let _ = count.send(rep.calls);
        let outcome = match answer {
            Err(e) => Err(e),
            Ok(a) if a.status == 200 => match serde_json::from_str::<Value>(&a.body) {
                Ok(v) if v["result"].as_str().is_some_and(|r| r.starts_with("0x")) => Ok(()),
                _ => Err(format!("HTTP 200 {}", a.body)),
            },
            Ok(a) => Err(format!("HTTP {} {}", a.status, a.body)),
        };
        if let Err(e) = outcome {
            rep.fail(current, e);
        }
    }
}

async fn connect_http1(addr: &str) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A stalled body's fate.
struct Stall {
    response: Result<Raw, String>,
    /// From the last byte written to the response; `None` if it came while still writing.
    after_stop: Option<Duration>,
    since_connect: Duration,
    /// The server closed the connection after its answer.
    closed: bool,
}

impl Stall {
    fn failed(e: String) -> Stall {
        Stall {
            response: Err(e),
            after_stop: None,
            since_connect: Duration::ZERO,
            closed: false,
        }
    }
}

/// One stalled body: the head, `send` body bytes (64 KiB writes), then nothing, until kengate
/// answers (reading all along, so an early 503 stops the writing).
async fn stall(addr: String, head: String, send: usize, within: Duration) -> Stall {
    let connected = Instant::now();
    let stream = match TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => return Stall::failed(format!("connect: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let write = async {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut left = send;
        while left > 0 {
            let n = left.min(chunk.len());
            wr.write_all(&chunk[..n]).await?;
            left -= n;
        }
        Ok::<_, std::io::Error>(())
    };
    let mut stopped: Option<Instant> = None;
    let response = {
        let read = read_response(&mut rd, within);
        tokio::pin!(write, read);
        loop {
            tokio::select! {
                // A write error is kengate closing after its answer: the answer is read next.
                _ = &mut write, if stopped.is_none() => stopped = Some(Instant::now()),
                r = &mut read => break r,
            }
        }
    };
    let answered = Instant::now();
    let closed = response.is_ok() && closed_after(&mut rd, Duration::from_secs(3)).await;
    Stall {
        response,
        after_stop: stopped.map(|s| answered.duration_since(s)),
        since_connect: answered.duration_since(connected),
        closed,
    }
}

/// One body sent a byte every 100 ms until kengate answers: (answer, time from the first body
/// byte, closed after).
async fn trickle(addr: &str, head: String, within: Duration) -> Result<(Raw, Duration, bool), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let started = Instant::now();
    let write = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            // A write error is kengate closing after its answer: the answer is read next.
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    };
    let r = {
        let read = read_response(&mut rd, within);
        tokio::pin!(write, read);
        let mut broken = false;
        loop {
            tokio::select! {
                () = &mut write, if !broken => broken = true,
                r = &mut read => break r?,
            }
        }
    };
    let elapsed = started.elapsed();
    let closed = closed_after(&mut rd, Duration::from_secs(3)).await;
    Ok((r, elapsed, closed))
}

/// A chunked body of `total` bytes, written while the answer is awaited.
async fn chunked_over(addr: &str, head: String, total: usize, within: Duration) -> Result<Raw, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let write = async {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            wr.write_all(&chunk[..n]).await?;
            wr.write_all(b"\r\n").await?;
            left -= n;
        }
        wr.write_all(b"0\r\n\r\n").await
    };
    let read = read_response(&mut rd, within);
    tokio::pin!(write, read);
    let mut written = false;
    loop {
        tokio::select! {
            _ = &mut write, if !written => written = true,
            r = &mut read => return r,
        }
    }
}

/// A WebSocket message of `len` bytes; the close frame's code and reason.
async fn ws_over(addr: &str, token: &str, len: usize, within: Duration) -> Result<(u16, String), String> {
    let mut req = format!("ws://{addr}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let h = req.headers_mut();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
    );
    h.insert("x-forwarded-for", HeaderValue::from_static(OVERSIZER_IP));
    let (ws, _) = tokio::time::timeout(within, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| "WebSocket connect timed out".to_owned())?
        .map_err(|e| format!("WebSocket connect: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let big = Message::Text(format!("\"{}\"", "a".repeat(len.saturating_sub(2).max(1))));
    // Sent beside the read: kengate may close before it has all of it.
    let sender = tokio::spawn(async move {
        let _ = sink.send(big).await;
        sink
    });
    let close = tokio::time::timeout(within, async {
        while let Some(m) = stream.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Ok((u16::from(f.code), f.reason.to_string())),
                Ok(Message::Close(None)) => return Ok((1005, String::new())),
                Ok(_) => continue,
                Err(e) => return Err(format!("WebSocket read: {e} (no close frame)")),
            }
        }
        Err("WebSocket ended without a close frame".to_owned())
    })
    .await
    .map_err(|_| "no close frame in time".to_owned())?;
    sender.abort();
    close
}

/// One `klay_blockNumber` call on `conn`, as `client_ip` (X-Forwarded-For), with `token`.
async fn call(conn: &mut Sender, host: &str, client_ip: &str, token: &str, id: u64) -> Result<Answer, String> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"klay_blockNumber","params":[]}}"#);
    let req = Request::post("/")
        .header("host", host)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("x-forwarded-for", client_ip)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    tokio::time::timeout(Duration::from_secs(10), async {
        conn.ready().await.map_err(|e| format!("connection: {e}"))?;
        let resp = conn.send_request(req).await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
        let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            retry_after,
            code: v["error"]["code"].as_i64(),
            body,
        })
    })
    .await
    .map_err(|_| "no answer within 10 s".to_owned())?
}

/// One answer to [`call`].
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: bool,
    code: Option<i64>,
    body: String,
}

fn is_bad_credentials(a: &Result<Answer, String>) -> bool {
    a.as_ref()
        .is_ok_and(|a| a.status == 401 && a.code == Some(-32001) && a.body.contains("invalid access key id or secret"))
}

fn is_locked_out(a: &Result<Answer, String>) -> bool {
    a.as_ref()
        .is_ok_and(|a| a.status == 429 && a.retry_after && a.code == Some(-32005))
}

/// Sends `req` on the pooled client: (status, body).
async fn send(http: &HttpClient, req: Request<Full<Bytes>>) -> Result<(u16, String), String> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let resp = http.request(req).await.map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
        Ok((status, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
    })
    .await
    .map_err(|_| "no answer within 10 s".to_owned())?
}

// ------------------------------------------------------------------------------------------ raw HTTP

/// A response read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    /// The head, lower-cased.
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

fn post_head(addr: &str, token: &str, client_ip: &str, framing: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nauthorization: Bearer {token}\r\n\
         x-forwarded-for: {client_ip}\r\n{framing}\r\n\r\n"
    )
}

/// Connects, writes `request`, reads the answer.
async fn exchange(addr: &str, request: &[u8], within: Duration) -> Result<Raw, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    s.write_all(request).await.map_err(|e| format!("write: {e}"))?;
    read_response(&mut s, within).await
}

/// Reads one response (head and a `content-length` body) within `within`.
async fn read_response<R: AsyncRead + Unpin>(r: &mut R, within: Duration) -> Result<Raw, String> {
    tokio::time::timeout(within, read_response_now(r))
        .await
        .map_err(|_| format!("no answer within {} ms", within.as_millis()))?
}

async fn read_response_now<R: AsyncRead + Unpin>(r: &mut R) -> Result<Raw, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err("answer head over 64 KiB".into());
        }
        let n = r.read(&mut tmp).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "closed without an answer".into()
            } else {
                format!("closed in the answer head: {:?}", String::from_utf8_lossy(&buf))
            });
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let mut raw = Raw {
        status,
        head,
        body: String::new(),
    };
    let len: Option<usize> = raw.header("content-length").and_then(|v| v.parse().ok());
    let mut body = buf.split_off(head_end + 4);
    while len.is_none_or(|l| body.len() < l) {
        let n = r.read(&mut tmp).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            if len.is_some() {
                return Err(format!("closed in the answer body (HTTP {status})"));
            }
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    raw.body = String::from_utf8_lossy(&body).into_owned();
    Ok(raw)
}

/// Whether the peer closes (EOF or reset) within `within`, sending nothing more.
async fn closed_after<R: AsyncRead + Unpin>(r: &mut R, within: Duration) -> bool {
    let mut tmp = [0u8; 1024];
    matches!(tokio::time::timeout(within, r.read(&mut tmp)).await, Ok(Ok(0) | Err(_)))
}

// ------------------------------------------------------------------------------------------ measures

/// VmRSS of `pid`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The highest RSS seen while it runs (sampled every 10 ms).
struct RssPeak {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = stopped.changed() => return peak.max(rss_kb(pid).unwrap_or(0)),
                }
            }
        });
        RssPeak { stop, task }
    }

    async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// The sum of the samples of `name` in a Prometheus text page (those whose labels contain
/// `label`, when given).
fn metric(page: &str, name: &str, label: Option<&str>) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            n == name && label.is_none_or(|want| labels.contains(want))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

/// Polls `cond` every 50 ms until it holds or `within` has passed.
async fn wait_for<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mb(kb: u64) -> f64 {
    round1(kb as f64 / 1024.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn first(items: &[String], n: usize) -> String {
    items.iter().take(n).cloned().collect::<Vec<_>>().join("; ")
}
