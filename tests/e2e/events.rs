//! Subscriptions on the real cluster, with real clients: ethers' `WebSocketProvider`
//! (`on("block")` and a contract event listener), caver-js (`newBlockHeaders` and contract
//! events) and web3.py (a `newHeads` subscription) subscribed through kengate while a contract
//! emits events and senders make value transfers, EN2 is detached and re-attached and EN3
//! stopped and started. Every block number is seen once and in order, every announced block
//! is readable at once through kengate, every emitted event is seen once (checked against
//! `getLogs` afterwards). The same clients through nginx (WebSocket round-robin per
//! connection, reconnecting when their node goes) are reported beside it.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::client::{quantity, Http};
use crate::support::gate::{test_config, Gate};
use crate::support::localnet::{Localnet, Restore};
use crate::support::nginx::Nginx;

/// One subscriber program's report (`examples/*/subscribe.*`).
#[derive(Debug, Default, Deserialize)]
struct Seen {
    blocks: Vec<u64>,
    #[serde(default)]
    events: Vec<Value>,
    #[serde(default)]
    unreadable: Vec<Value>,
    #[serde(default)]
    reconnects: u64,
    #[serde(default)]
    errors: Vec<Value>,
}

/// What one client saw, judged.
#[derive(Debug, Default)]
struct Verdict {
    blocks: usize,
    gaps: usize,
    duplicates: usize,
    out_of_order: usize,
    unreadable: usize,
    events: usize,
    missed_events: usize,
    duplicate_events: usize,
    reconnects: u64,
}

const CLIENTS: &[(&str, &str, &[&str])] = &[
    ("ethers-ext", "node", &["subscribe.js"]),
    ("caver-js", "node", &["subscribe.js"]),
    ("web3py", "python", &["subscribe.py"]),
];

async fn subscriber(
    net: &Localnet,
    (dir, program, args): (&str, &str, &[&str]),
    ws: &str,
    http: &str,
    address_file: &str,
    secs: u64,
) -> Seen {
    let program = match program {
        "python" => crate::support::web3py_python(),
        p => p.to_owned(),
    };
    let run = net
        .example(dir, &program)
        .args(args)
        .env("WS_URL", ws)
        .env("HTTP_URL", http)
        .env("ADDRESS_FILE", address_file)
        .env("DURATION_S", secs.to_string())
        .env("STALL_S", "5")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(secs + 60), run)
        .await
        .unwrap_or_else(|_| panic!("{dir} subscriber did not end"))
        .unwrap_or_else(|e| panic!("run {program}: {e} (scripts/clients install installs it)"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{dir} subscriber failed: {text}");
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{dir}: {e}: {text}"))
}

/// Runs `examples/ethers-ext/emitter.js` (deploys the Ping contract, then calls it).
async fn emitter(net: &Localnet, rpc: &str, address_file: &str, secs: u64) -> Value {
    let run = net
        .example("ethers-ext", "node")
        .arg("emitter.js")
        .env("RPC_URL", rpc)
        .env("ADDRESS_FILE", address_file)
        .env("DURATION_S", secs.to_string())
        .env("DEPLOYER", "18")
        .env("PACE_MS", "150")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(secs + 90), run)
        .await
        .expect("emitter did not end")
        .expect("run node");
    // A failed deploy (through the nginx baseline it can be) is reported as null; the kengate
    // run asserts the contract address.
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or(Value::Null)
}

/// Value transfers alongside (the fault workload with its senders only).
async fn transfers(net: &Localnet, rpc: &str, secs: u64) {
    let _ = net
        .example("ethers-ext", "node")
        .arg("faults.js")
        .env("RPC_URL", rpc)
        .env("SENDERS", "0-3")
        .env("READERS", "0")
        .env("DURATION_S", secs.to_string())
        .env("PACE_MS", "50")
        .env("REQUEST_TIMEOUT_MS", "30000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The emitted logs of `contract` in blocks `from..=to`, read through `url` afterwards.
async fn logs(url: &str, contract: &str, from: u64, to: u64) -> HashSet<(String, u64)> {
    let r = Http::default()
        .result(
            url,
            "eth_getLogs",
            json!([{"address": contract, "fromBlock": format!("{from:#x}"), "toBlock": format!("{to:#x}")}]),
        )
        .await;
    r.as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["transactionHash"].as_str().unwrap_or("").to_ascii_lowercase(),
                quantity(&l["logIndex"]),
            )
        })
        .collect()
}

/// Judges what a client saw: blocks consecutive and once, every block readable, every
/// emitted event of the blocks it covered seen once.
async fn judge(seen: &Seen, url: &str, contract: &str) -> Verdict {
    let mut v = Verdict {
        blocks: seen.blocks.len(),
        unreadable: seen.unreadable.len(),
        reconnects: seen.reconnects,
        events: seen.events.len(),
        ..Verdict::default()
    };
    let mut once = HashSet::new();
    for w in seen.blocks.windows(2) {
        match w[1].cmp(&w[0]) {
            std::cmp::Ordering::Greater => v.gaps += usize::try_from(w[1] - w[0] - 1).unwrap_or(0),
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Less => v.out_of_order += 1,
        }
    }
    for b in &seen.blocks {
        if !once.insert(*b) {
            v.duplicates += 1;
        }
    }
    let key = |e: &Value| {
        (
            e["tx"].as_str().unwrap_or("").to_ascii_lowercase(),
            e["logIndex"].as_u64().unwrap_or_else(|| quantity(&e["logIndex"])),
        )
    };
    let mut counts: HashMap<(String, u64), usize> = HashMap::new();
    for e in &seen.events {
        *counts.entry(key(e)).or_default() += 1;
    }
    v.duplicate_events = counts.values().map(|c| c - 1).sum();
    // The blocks it was subscribed for events: from its first event's block to two blocks
    // before its last announced block (what arrived after its end is not held against it).
    let first = seen
        .events
        .iter()
        .map(|e| e["block"].as_u64().unwrap_or(u64::MAX))
        .min();
    let last = seen.blocks.iter().max().map(|b| b.saturating_sub(2));
    if let (Some(first), Some(last), false) = (first, last, contract.is_empty()) {
        if first <= last {
            let want = logs(url, contract, first, last).await;
            v.missed_events = want.iter().filter(|k| !counts.contains_key(*k)).count();
        }
    }
    v
}

/// Detaches EN2 and stops EN3 during the run (each on its own thread: localnet blocks).
fn faults(net: Arc<Localnet>, plan: &'static [(u64, &'static [&'static str])]) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut done = 0;
        for (at, args) in plan {
            while t0.elapsed() < Duration::from_secs(*at) {
                std::thread::sleep(Duration::from_millis(50));
            }
            net.ctl(args);
            done += 1;
        }
        done
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_subscribers_see_every_block_and_event_once_through_kengate() {
    let secs: u64 = std::env::var("EVENTS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let net = Arc::new(Localnet::load());
    let gate = Gate::start(test_config(&net.nodes())).await;
    gate.wait_all_in_sync().await;
    let _restore = [
        Restore {
            net: &net,
            args: vec!["attach", "2"],
        },
        Restore {
            net: &net,
            args: vec!["start", "3"],
        },
    ];
    let dir = std::env::temp_dir().join(format!("kengate-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let address_file = dir.join("contract").display().to_string();
    let _ = std::fs::remove_file(&address_file);
    let ws = format!("ws://{}", gate.addr);

    let stop = Arc::new(AtomicBool::new(false));
    let states = gate.watch_states(stop.clone());
    const PLAN: &[(u64, &[&str])] = &[
        (8, &["detach", "2"]),
        (18, &["attach", "2"]),
        (22, &["stop", "3"]),
        (32, &["start", "3"]),
    ];
    let schedule = faults(net.clone(), PLAN);
    let (emitted, _, a, b, c) = tokio::join!(
        emitter(&net, &gate.url, &address_file, secs),
        transfers(&net, &gate.url, secs),
        subscriber(&net, CLIENTS[0], &ws, &gate.url, &address_file, secs),
        subscriber(&net, CLIENTS[1], &ws, &gate.url, &address_file, secs),
        subscriber(&net, CLIENTS[2], &ws, &gate.url, &address_file, secs),
    );
    stop.store(true, Ordering::SeqCst);
    let done = schedule.join().expect("fault schedule");
    let states = states.await.expect("status watcher");
    let contract = emitted["contract"]
        .as_str()
        .expect("the emitter deployed its contract")
        .to_owned();

    assert_eq!(done, PLAN.len(), "the fault schedule did not finish");
    assert!(
        states.contains(&(1, "lagging".to_owned())),
        "EN2 never lagged: {states:?}"
    );
    assert!(
        states.contains(&(2, "down".to_owned())),
        "EN3 never went down: {states:?}"
    );
    let mut verdicts = Vec::new();
    for ((name, _, _), seen) in CLIENTS.iter().zip([&a, &b, &c]) {
        let v = judge(seen, &gate.url, &contract).await;
        println!(
            "kengate {name:<10} {v:?} (errors: {:?})",
            seen.errors.iter().take(3).collect::<Vec<_>>()
        );
        verdicts.push((name, v));
    }
    for (name, v) in &verdicts {
        assert!(v.blocks as u64 >= secs / 2, "{name} saw only {} blocks", v.blocks);
        assert_eq!(
            (v.gaps, v.duplicates, v.out_of_order, v.unreadable),
            (0, 0, 0, 0),
            "{name}: gaps, duplicate blocks, blocks out of order, announced blocks unreadable"
        );
        assert_eq!(v.reconnects, 0, "{name} had to reconnect to kengate");
    }
    for (name, v) in verdicts.iter().filter(|(n, _)| **n != "web3py") {
        assert!(v.events > 0, "{name} saw no event");
        assert_eq!(
            (v.missed_events, v.duplicate_events),
            (0, 0),
            "{name}: missed, duplicate events"
        );
    }
    gate.stop().await;

    // The same clients through nginx round-robin (WebSocket per connection), same faults.
    let nginx = Nginx::start_with_ws(&net.en_http, &net.en_ws);
    let nws = nginx.ws_url.clone().expect("nginx WS port");
    let _ = std::fs::remove_file(&address_file);
    const NGINX_PLAN: &[(u64, &[&str])] = &[
        (5, &["detach", "2"]),
        (13, &["attach", "2"]),
        (15, &["stop", "3"]),
        (22, &["start", "3"]),
    ];
    let schedule = faults(net.clone(), NGINX_PLAN);
    let nsecs = 30;
    let (emitted, a, b, c) = tokio::join!(
        emitter(&net, &nginx.url, &address_file, nsecs),
        subscriber(&net, CLIENTS[0], &nws, &nginx.url, &address_file, nsecs),
        subscriber(&net, CLIENTS[1], &nws, &nginx.url, &address_file, nsecs),
        subscriber(&net, CLIENTS[2], &nws, &nginx.url, &address_file, nsecs),
    );
    let _ = schedule.join();
    let contract = emitted["contract"].as_str().unwrap_or_default().to_owned();
    if contract.is_empty() {
        println!("nginx: the emitter could not deploy its contract through nginx (events not judged)");
    }
    for ((name, _, _), seen) in CLIENTS.iter().zip([&a, &b, &c]) {
        let v = judge(seen, &net.en_http[0], &contract).await;
        println!("nginx   {name:<10} {v:?}");
    }
}

/// `newHeads` notifications, subscribed on EN1 directly and through kengate, in both header
/// formats: for each block both saw, the same object field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_heads_match_a_direct_en_subscription_field_by_field() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let net = Localnet::load();
    let gate = Gate::start(test_config(&net.nodes())).await;
    gate.wait_all_in_sync().await;
    // (url, method) → block number → header
    let mut got: Vec<HashMap<u64, Value>> = Vec::new();
    // Kaia v2 nodes serve kaia_subscribe too (notifying as kaia_subscription); Klaytn's lack it.
    let namespaces: &[&str] = match net.flavour.as_str() {
        "kaia" => &["klay", "kaia", "eth"],
        _ => &["klay", "eth"],
    };
    let direct = namespaces
        .iter()
        .map(|ns| (net.en_ws[0].clone(), format!("{ns}_subscribe")));
    let through = namespaces
        .iter()
        .map(|ns| (format!("ws://{}", gate.addr), format!("{ns}_subscribe")));
    let targets: Vec<(String, String)> = direct.chain(through).collect();
    let runs = targets.iter().map(|(url, method)| async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("ws connect");
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": ["newHeads"]});
        ws.send(Message::text(req.to_string())).await.expect("send");
        let mut heads = HashMap::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(8);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
            let h = &v["params"]["result"];
            if h.is_object() {
                heads.insert(quantity(&h["number"]), h.clone());
            }
        }
        heads
    });
    got.extend(futures_util::future::join_all(runs).await);
    for (direct, ns) in namespaces.iter().enumerate() {
        let through = direct + namespaces.len();
        let common: Vec<u64> = got[direct]
            .keys()
            .filter(|n| got[through].contains_key(n))
            .copied()
            .collect();
        assert!(common.len() >= 3, "{ns}: too few blocks seen by both: {common:?}");
        for n in common {
            assert_eq!(got[direct][&n], got[through][&n], "{ns} header of block {n}");
        }
    }
}
