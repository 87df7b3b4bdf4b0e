//! Live reload of proxy.toml: the node list changes under load with no failed call and the
//! served head never going back; method policy, CORS and limits change for the next request;
//! an invalid file is refused and the running configuration kept.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::client::Http;
use crate::support::fake::{self, Fake};
use crate::support::gate::{spawn_binary, Gate};

fn toml(fakes: &[&Fake], store: &Path, extra: &str) -> String {
    let mut t = format!(
        "admin_listen = \"off\"\n[store]\npath = {:?}\n[cluster]\npoll_interval_ms = 50\nprobe_timeout_ms = 500\nupstream_timeout_ms = 2000\n[drain]\nws_grace_ms = 100\n[cache]\nmax_bytes = 0\n",
        store.display().to_string()
    );
    t.push_str(extra);
    for f in fakes {
        t.push_str(&format!("[[nodes]]\nhttp = \"{}\"\nname = \"n{}\"\n", f.url, f.id));
    }
    t
}

/// Rewrites the file so the watch sees it (a new length or a later mtime).
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn names(s: &Value) -> Vec<String> {
    s["nodes"]
        .as_array()
        .map(|n| n.iter().map(|n| n["name"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_node_list_changes_under_load_without_a_failed_call() {
    let fakes = fake::cluster(&[100, 100, 100]).await;
    let dir = std::env::temp_dir().join(format!("kengate-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let store = dir.join("kengate.db");
    write(&path, &toml(&[&fakes[0], &fakes[1]], &store, ""));
    let gate = Gate::start_from_file(&path).await;
    gate.wait_all_in_sync().await;

    // Load: four clients calling without pause, each checking the served head never goes back.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (gate.url.clone(), stop.clone());
            tokio::spawn(async move {
                let http = Http::default();
                let (mut calls, mut last) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let r = http.rpc(&url, "klay_blockNumber", json!([])).await;
                    let head =
                        u64::from_str_radix(r["result"].as_str().expect("a result").trim_start_matches("0x"), 16)
                            .unwrap();
                    assert!(head >= last, "the served head went back: {last} then {head}");
                    last = head;
                    // A read no cache answers (a new account each time), so calls keep
                    // reaching nodes and the new one gets its share.
                    let acct = format!("0x{:040x}", calls);
                    let r = http.rpc(&url, "klay_getBalance", json!([acct, "latest"])).await;
                    assert!(r["result"].is_object(), "a failed call: {r}");
                    calls += 2;
                }
                calls
            })
        })
        .collect();
    for f in &fakes {
        f.set_head(101);
    }

    // n1 leaves, n2 joins.
    write(&path, &toml(&[&fakes[0], &fakes[2]], &store, ""));
    gate.wait_status("the new node list", |s| names(s) == ["n0", "n2"])
        .await;
    let before = fakes[2].requests();
    gate.wait_status("n2 in sync", |s| s["nodes"][1]["state"] == "in_sync")
        .await;
    for f in &fakes {
        f.set_head(102);
    }
    // Calls go to the node that answers fastest (its latency and calls in flight): slow n0
    // down so the new node's share does not depend on which fake happens to be quicker.
    fakes[0].set_delay(5);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fakes[2].requests() == before {
        if tokio::time::Instant::now() >= deadline {
            let s = gate.status().await;
            let reqs: Vec<u64> = fakes.iter().map(|f| f.requests()).collect();
            panic!("the new node never served: requests {reqs:?} (before {before}); status {s}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The node that left gets nothing new once its calls in flight are done.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = fakes[1].requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fakes[1].requests(), left, "a removed node still gets calls");

    // An invalid file is refused: the running configuration stays.
    write(&path, "[[nodes]]\nhttp = \"ftp://nope\"\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(names(&gate.status().await), ["n0", "n2"]);

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for l in load {
        total += l.await.expect("no call failed and the head never went back");
    }
    eprintln!("{total} calls across two reloads, none failed");
    assert!(total > 100, "the load ran ({total} calls)");
    gate.stop().await;
}

#[tokio::test]
async fn methods_cors_and_limits_change_for_the_next_request() {
    let fakes = fake::cluster(&[100]).await;
    let dir = std::env::temp_dir().join(format!("kengate-reload-b-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let store = dir.join("kengate.db");
    write(&path, &toml(&[&fakes[0]], &store, ""));
    let gate = Gate::start_from_file(&path).await;
    gate.wait_all_in_sync().await;
    let http = Http::default();
    assert!(http.rpc(&gate.url, "klay_gasPrice", json!([])).await["result"].is_object());
    let preflight = || async {
        Http::default()
            .request(
                http::Method::OPTIONS,
                &gate.url,
                &[
                    ("origin", "https://app.example"),
                    ("access-control-request-method", "POST"),
                ],
                "",
            )
            .await
    };
    assert_ne!(preflight().await.status, 204);

    let extra = "[methods]\ndeny = [\"klay_gasPrice\"]\n[cors]\nallowed_origins = [\"https://app.example\"]\n[limits]\nmax_body_bytes = 2048\nmax_buffered_body_bytes = 1048576\n";
    write(&path, &toml(&[&fakes[0]], &store, extra));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = http.rpc_lenient(&gate.url, "klay_gasPrice", json!([])).await;
        if r["error"].is_object() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the method policy was not reloaded: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = preflight().await;
    assert_eq!(p.status, 204);
    assert_eq!(p.header("access-control-allow-origin"), Some("https://app.example"));
    let big = json!({"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[], "pad": "x".repeat(4096)});
    assert_eq!(http.post(&gate.url, big.to_string()).await.status, 413);
    gate.stop().await;
}

#[tokio::test]
async fn the_binary_reloads_on_sighup() {
    let fakes = fake::cluster(&[100]).await;
    let dir = std::env::temp_dir().join(format!("kengate-reload-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let store = dir.join("kengate.db");
    // Two files of the same length: only the signal can tell the running kengate.
    let denying = |m: &str| toml(&[&fakes[0]], &store, &format!("[methods]\ndeny = [\"{m}\"]\n"));
    let (first, second) = (denying("klay_chainID"), denying("eth_gasPrice"));
    assert_eq!(first.len(), second.len());
    write(&path, &first);
    let (mut child, _stdout, url) = spawn_binary(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&path),
    )
    .await;
    let http = Http::default();
    let denied = |r: &Value| r["error"].is_object();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while http.rpc_lenient(&url, "eth_gasPrice", json!([])).await["result"].is_null() {
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The new text with the old modification time: the watch sees nothing.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, &second).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !denied(&http.rpc_lenient(&url, "eth_gasPrice", json!([])).await),
        "reloaded without the signal"
    );
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !denied(&http.rpc_lenient(&url, "eth_gasPrice", json!([])).await) {
        assert!(tokio::time::Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!denied(&http.rpc_lenient(&url, "klay_chainID", json!([])).await));
    let _ = child.kill().await;
}

#[tokio::test]
async fn keys_on_a_public_address_without_a_private_surface_are_refused_by_a_reload_too() {
    let fakes = fake::cluster(&[100]).await;
    let dir = std::env::temp_dir().join(format!("kengate-reload-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let store = dir.join("kengate.db");
    let public = "listen = \"0.0.0.0:0\"\n";
    write(&path, &(public.to_owned() + &toml(&[&fakes[0]], &store, "")));
    let gate = Gate::start_from_file(&path).await;
    gate.wait_all_in_sync().await;
    let http = Http::default();
    let auth = "[auth]\nenabled = true\nkeys = [{ id = \"app\", secret = \"0123456789abcdef\" }]\n";
    write(&path, &(public.to_owned() + &toml(&[&fakes[0]], &store, auth)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Refused: calls without a key still go through, and /status is not behind a key.
    assert!(http.rpc(&gate.url, "klay_blockNumber", json!([])).await["result"].is_string());
    assert_eq!(gate.status().await["nodes"][0]["state"], "in_sync");
    gate.stop().await;
}

/// A node WebSocket that answers `newPendingTransactions` with a stream of hashes starting
/// `0x{tag}`; counts its open connections.
async fn pending_ws(tag: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mut n = 0u64;
                let mut subscribed = false;
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tokio::select! {
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Text(t))) if t.contains("newPendingTransactions") => {
                                subscribed = true;
                                let ok = r#"{"jsonrpc":"2.0","id":1,"result":"0x5ub"}"#;
                                if ws.send(Message::text(ok)).await.is_err() { break; }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                        _ = tick.tick(), if subscribed => {
                            n += 1;
                            let note = format!(
                                r#"{{"jsonrpc":"2.0","method":"klay_subscription","params":{{"subscription":"0x5ub","result":"0x{tag}{n:060x}"}}}}"#
                            );
                            if ws.send(Message::text(note)).await.is_err() { break; }
                        }
                    }
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open)
}

#[tokio::test]
async fn pending_tx_watchers_follow_the_node_list() {
    let fakes = fake::cluster(&[100, 100]).await;
    let (ws_a, open_a) = pending_ws("aaaa").await;
    let (ws_b, open_b) = pending_ws("bbbb").await;
    let dir = std::env::temp_dir().join(format!("kengate-reload-ws-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let store = dir.join("kengate.db");
    let with_ws = |f: &Fake, ws: &str| {
        let t = toml(&[f], &store, "");
        t.replace(
            &format!("http = \"{}\"\n", f.url),
            &format!("http = \"{}\"\nws = \"{ws}\"\n", f.url),
        )
        .replace("[cluster]\n", "[cluster]\nws_heads = false\n")
    };
    write(&path, &with_ws(&fakes[0], &ws_a));
    let gate = Gate::start_from_file(&path).await;
    gate.wait_all_in_sync().await;
    let http = Http::default();
    let filter = http
        .result(&gate.url, "klay_newPendingTransactionFilter", json!([]))
        .await;
    // Polls the filter until a hash starting with `tag` arrives (and `also` holds).
    let until = |tag: &'static str, also: &'static (dyn Fn() -> bool + Sync)| {
        let (http, url, filter) = (http.clone(), gate.url.clone(), filter.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let got = http.result(&url, "klay_getFilterChanges", json!([filter])).await;
                let seen = got
                    .as_array()
                    .is_some_and(|a| a.iter().any(|h| h.as_str().is_some_and(|h| h.starts_with(tag))));
                if seen && also() {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no pending hash {tag}… within 10 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    until("0xaaaa", &|| true).await;
    assert_eq!(open_b.load(Ordering::SeqCst), 0);

    // The network's node moves to another one with another WebSocket.
    write(&path, &with_ws(&fakes[1], &ws_b));
    until("0xbbbb", &|| true).await;
    // The old node's watcher is gone, not left running beside the new one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open_a.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old node's pending watcher is still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open_b.load(Ordering::SeqCst), 1);
    gate.stop().await;
}
