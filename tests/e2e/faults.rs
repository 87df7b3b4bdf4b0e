//! Faults without client-visible errors, on the real cluster: real clients (ethers-ext sending
//! all four tx kinds with a pending-nonce read before every send, plus read loops; caver-js
//! the same) through one kengate while EN2 is detached and re-attached, EN3 stopped and
//! started and EN1 paused — overlapping, so that for moments no node is in sync — for more
//! than 10⁵ calls. Through kengate: no read error, no write error but a node's own refusal, no
//! stale pending nonce, every sent tx mined exactly once. The same workload through nginx
//! round-robin over the same ENs is reported beside it.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::client::Http;
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::{Localnet, Restore};
use crate::support::nginx::Nginx;

/// The workload's one JSON line (`examples/*/faults.js`).
#[derive(Debug, Default, Deserialize)]
struct Report {
    calls: u64,
    sent: Vec<String>,
    #[serde(default)]
    sent_by_kind: Value,
    write_errors: Vec<Value>,
    #[serde(default)]
    write_error_count: u64,
    read_errors: Vec<String>,
    #[serde(default)]
    read_error_count: u64,
    stale_nonce: u64,
}

/// Calls the test must pass through kengate (the issue: "long enough to pass 10⁵ calls").
const TARGET_CALLS: u64 = 100_000;

/// One running `examples/<client>/faults.js` against a URL, ended by [`Workload::finish`].
struct Workload {
    client: &'static str,
    child: tokio::process::Child,
    /// Calls made so far (its progress lines, one a second).
    calls: Arc<AtomicU64>,
    /// Its last stdout line that is not a progress line: the report.
    last: tokio::task::JoinHandle<String>,
}

impl Workload {
    fn spawn(net: &Localnet, client: &'static str, url: &str, senders: &str, readers: u32) -> Workload {
        let mut child = net
            .example(client, "node")
            .arg("faults.js")
            .env("RPC_URL", url)
            .env("SENDERS", senders)
            .env("READERS", readers.to_string())
            // Ended by SIGTERM; this only bounds a workload nobody ends.
            .env("DURATION_S", "3600")
            .env("PROGRESS_MS", "1000")
            .env("FEE_PAYER", "19")
            // Longer than kengate's own bound (cluster.node_wait_ms plus an attempt's timeout):
            // what kengate answers late is still its answer, as with clients' default timeouts.
            .env("REQUEST_TIMEOUT_MS", "30000")
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node (scripts/clients install installs the examples' dependencies)");
        let calls = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("piped stdout");
        let last = {
            let calls = calls.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                let mut last = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v["progress"]["calls"].as_u64())
                    {
                        Some(n) => calls.store(n, Ordering::SeqCst),
                        None => last = line,
                    }
                }
                last
            })
        };
        Workload {
            client,
            child,
            calls,
            last,
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Ends the run (SIGTERM: in-flight calls finish) and reads its report.
    async fn finish(mut self) -> Report {
        let client = self.client;
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(Duration::from_secs(90), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{client} workload did not end after SIGTERM"))
            .expect("wait for node");
        let text = self.last.await.expect("stdout reader");
        assert!(status.success(), "{client} workload failed: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{client}: {e}: {text}"))
    }
}

/// Runs the ethers-ext and caver-js workloads against `url` for at least `min`, then until
/// they made `target` calls together or `max` passed.
async fn workloads(net: &Localnet, url: &str, min: Duration, target: u64, max: Duration) -> (Report, Report) {
    let t0 = Instant::now();
    let ethers = Workload::spawn(net, "ethers-ext", url, "0-7", 4);
    let caver = Workload::spawn(net, "caver-js", url, "10-13", 1);
    while t0.elapsed() < max && (t0.elapsed() < min || ethers.calls() + caver.calls() < target) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "workloads on {url} ended after {:.0} s ({} calls counted by progress)",
        t0.elapsed().as_secs_f64(),
        ethers.calls() + caver.calls()
    );
    tokio::join!(ethers.finish(), caver.finish())
}

/// The fault schedule: one timeline per EN, in seconds from the start, each run on its own
/// thread so a slow `start` of one node never delays another's fault. Overlaps leave, twice
/// for about 5 s (less than `cluster.node_wait_ms`), no node in sync at all: 78–83 s (EN1
/// paused, EN2 detached, EN3 stopped) and 126–131 s.
const SCHEDULE: &[&[(u64, &[&str])]] = &[
    // EN1: paused for 18 s while EN2 lags, then twice briefly while nothing else is in sync.
    &[
        (42, &["pause", "1"]),
        (60, &["resume", "1"]),
        (78, &["pause", "1"]),
        (83, &["resume", "1"]),
        (126, &["pause", "1"]),
        (131, &["resume", "1"]),
    ],
    // EN2: detached and re-attached five times.
    &[
        (5, &["detach", "2"]),
        (20, &["attach", "2"]),
        (46, &["detach", "2"]),
        (64, &["attach", "2"]),
        (74, &["detach", "2"]),
        (86, &["attach", "2"]),
        (120, &["detach", "2"]),
        (135, &["attach", "2"]),
        (150, &["detach", "2"]),
        (160, &["attach", "2"]),
    ],
    // EN3: stopped and started three times.
    &[
        (24, &["stop", "3"]),
        (34, &["start", "3"]),
        (70, &["stop", "3"]),
        (88, &["start", "3"]),
        (116, &["stop", "3"]),
        (134, &["start", "3"]),
    ],
];

/// Runs the schedule (scripts/localnet blocks, so on threads) until it ends or `stop`; returns
/// what was done, when.
fn run_schedule(net: Arc<Localnet>, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    let t0 = Instant::now();
    SCHEDULE
        .iter()
        .map(|timeline| {
            let (net, stop) = (net.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                for (at, args) in timeline.iter() {
                    while t0.elapsed() < Duration::from_secs(*at) {
                        if stop.load(Ordering::SeqCst) {
                            return done;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    net.ctl(args);
                    done.push(format!("{:>5.1}s {}", t0.elapsed().as_secs_f64(), args.join(" ")));
                }
                done
            })
        })
        .collect()
}

/// Hashes with no receipt on EN1 after waiting up to `wait` (batches of 100).
async fn unmined(en: &str, hashes: &[String], wait: Duration) -> Vec<String> {
    let http = Http::default();
    let deadline = Instant::now() + wait;
    let mut left: Vec<String> = hashes.to_vec();
    loop {
        let mut still = Vec::new();
        for chunk in left.chunks(100) {
            let batch: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| json!({"jsonrpc": "2.0", "id": i, "method": "klay_getTransactionReceipt", "params": [h]}))
                .collect();
            let r = http.post(en, Value::Array(batch).to_string()).await.json();
            let mut got = vec![false; chunk.len()];
            for el in r.as_array().into_iter().flatten() {
                if let (Some(i), true) = (el["id"].as_u64(), el["result"].is_object()) {
                    if let Some(g) = got.get_mut(i as usize) {
                        *g = true;
                    }
                }
            }
            still.extend(chunk.iter().zip(got).filter(|(_, g)| !g).map(|(h, _)| h.clone()));
        }
        left = still;
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// kengate's own error codes (everything else a client sees is a node's answer).
const GATEWAY_CODES: &[i64] = &[-32010, -32011, -32005, -32001, -32603];

/// Splits write errors into the gateway's (transport, or one of kengate's codes) and the
/// nodes' own refusals.
fn split_write_errors(errors: &[Value]) -> (Vec<&Value>, Vec<&Value>) {
    errors
        .iter()
        .partition(|e| e["via"] == "transport" || e["code"].as_i64().is_some_and(|c| GATEWAY_CODES.contains(&c)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_faults_reach_no_client_through_kengate() {
    // At least this long (the schedule's last fault is at 160 s), then until 10⁵ calls.
    let min_secs: u64 = std::env::var("FAULTS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let net = Arc::new(Localnet::load());
    let gate = Gate::start(test_config(&net.nodes())).await;
    gate.wait_all_in_sync().await;
    let _restore = [
        Restore {
            net: &net,
            args: vec!["resume", "1"],
        },
        Restore {
            net: &net,
            args: vec!["attach", "2"],
        },
        Restore {
            net: &net,
            args: vec!["start", "3"],
        },
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let schedule = run_schedule(net.clone(), stop.clone());
    let states = gate.watch_states(stop.clone());
    let t0 = Instant::now();
    let (ethers, caver) = workloads(
        &net,
        &gate.url,
        Duration::from_secs(min_secs),
        TARGET_CALLS,
        Duration::from_secs(min_secs.max(600)),
    )
    .await;
    let secs = t0.elapsed().as_secs();
    stop.store(true, Ordering::SeqCst);
    let mut done: Vec<String> = schedule
        .into_iter()
        .flat_map(|t| t.join().expect("fault schedule"))
        .collect();
    let at = |s: &String| {
        s.trim()
            .split('s')
            .next()
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    done.sort_by(|a, b| at(a).total_cmp(&at(b)));
    let states = states.await.expect("status watcher");
    for line in &done {
        println!("fault: {line}");
    }

    let calls = ethers.calls + caver.calls;
    let sent: Vec<String> = ethers.sent.iter().chain(&caver.sent).cloned().collect();
    let unique: HashSet<&String> = sent.iter().collect();
    let (gateway, refusals) = {
        let (g1, r1) = split_write_errors(&ethers.write_errors);
        let (g2, r2) = split_write_errors(&caver.write_errors);
        (
            g1.into_iter().chain(g2).collect::<Vec<_>>(),
            r1.into_iter().chain(r2).collect::<Vec<_>>(),
        )
    };
    let lost = unmined(&net.en_http[0], &sent, Duration::from_secs(120)).await;
    let metrics = Http::default().get(&format!("{}/metrics", gate.url)).await.text();
    let counter = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("0")
            .to_owned()
    };
    println!(
        "kengate: {calls} calls in {secs} s ({} ethers-ext + {} caver-js), {} txs sent ({} unique; ethers {}, caver {}), \
         {} read errors, {} write errors ({} gateway, {} node refusals), {} stale pending nonces, {} never mined; \
         no-node episodes {}, calls that waited {}, failed {}",
        ethers.calls,
        caver.calls,
        sent.len(),
        unique.len(),
        ethers.sent_by_kind,
        caver.sent_by_kind,
        ethers.read_error_count + caver.read_error_count,
        ethers.write_error_count + caver.write_error_count,
        gateway.len(),
        refusals.len(),
        ethers.stale_nonce + caver.stale_nonce,
        lost.len(),
        counter("kengate_no_node_episodes_total"),
        counter("kengate_no_node_waits_total"),
        counter("kengate_no_node_errors_total"),
    );

    // The scenario happened: every fault was applied and kengate saw each of them.
    let planned: usize = SCHEDULE.iter().map(|t| t.len()).sum();
    assert_eq!(done.len(), planned, "the fault schedule did not finish: {done:?}");
    assert!(
        counter("kengate_no_node_episodes_total").parse::<u64>().unwrap_or(0) >= 1,
        "the faults never overlapped into a moment with no node in sync"
    );
    for (node, state) in [(1, "lagging"), (2, "down"), (0, "down")] {
        assert!(
            states.contains(&(node, state.to_owned())),
            "kengate never saw EN{} {state}: {states:?}",
            node + 1
        );
    }
    assert!(
        calls >= TARGET_CALLS,
        "only {calls} calls in {secs} s: the machine is too slow for this test's bound"
    );
    for e in gateway.iter().chain(&refusals).take(10) {
        println!("kengate write error: {e}");
    }
    // ...and reached no client.
    let reads: Vec<&String> = ethers.read_errors.iter().chain(&caver.read_errors).collect();
    assert!(
        reads.is_empty(),
        "read errors through kengate: {:?}",
        &reads[..reads.len().min(5)]
    );
    assert!(
        gateway.is_empty(),
        "gateway write errors: {:?}",
        &gateway[..gateway.len().min(5)]
    );
    assert_eq!(
        ethers.stale_nonce + caver.stale_nonce,
        0,
        "stale pending nonces through kengate"
    );
    assert!(
        refusals.is_empty(),
        "nodes refused writes: {:?}",
        &refusals[..refusals.len().min(5)]
    );
    assert_eq!(unique.len(), sent.len(), "a hash was returned twice");
    assert!(lost.is_empty(), "never mined: {:?}", &lost[..lost.len().min(5)]);
    gate.stop().await;

    // The same workload through nginx round-robin, with one fault of each kind.
    let nginx = Nginx::start(&net.en_http);
    let stop = Arc::new(AtomicBool::new(false));
    let baseline_secs = 30;
    let faults = {
        let (net, stop) = (net.clone(), stop.clone());
        std::thread::spawn(move || {
            let steps: &[(u64, &[&str])] = &[
                (3, &["detach", "2"]),
                (10, &["stop", "3"]),
                (14, &["pause", "1"]),
                (18, &["resume", "1"]),
                (20, &["start", "3"]),
                (26, &["attach", "2"]),
            ];
            let t0 = Instant::now();
            for (at, args) in steps {
                while t0.elapsed() < Duration::from_secs(*at) && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                net.ctl(args);
            }
        })
    };
    let baseline = Duration::from_secs(baseline_secs);
    let (ethers, caver) = workloads(&net, &nginx.url, baseline, 0, baseline).await;
    stop.store(true, Ordering::SeqCst);
    faults.join().expect("baseline faults");
    let sent: Vec<String> = ethers.sent.iter().chain(&caver.sent).cloned().collect();
    let lost = unmined(&net.en_http[0], &sent, Duration::from_secs(20)).await;
    println!(
        "nginx:   {} calls in {baseline_secs} s, {} txs sent, {} read errors (e.g. {:?}), {} write errors (e.g. {:?}), \
         {} stale pending nonces, {} never mined",
        ethers.calls + caver.calls,
        sent.len(),
        ethers.read_error_count + caver.read_error_count,
        ethers.read_errors.first(),
        ethers.write_error_count + caver.write_error_count,
        ethers.write_errors.first().map(|e| e["message"].clone()),
        ethers.stale_nonce + caver.stale_nonce,
        lost.len()
    );
}
