//! Webhooks over a deterministic chain and a recording receiver: events in block order per
//! webhook with stable ids, signed over the exact body, retried, a webhook paused as failing
//! when its retries run out and resumed with its backlog, the SSRF guard, and each access key
//! seeing only its own webhooks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;

use kengate::config::WebhooksConfig;
use kengate::events::Fetch;
use kengate::methods::Dialect;
use kengate::store::{SqliteStore, Store};
use kengate::webhooks::api::{answer, Owner, Request};
use kengate::webhooks::deliver::{signature, Answer, Sender};
use kengate::webhooks::{Net, Webhooks};

const A: u8 = 0x11;
const B: u8 = 0x22;

fn h(n: u64, salt: u8) -> String {
    format!("0x{salt:02x}{n:062x}")
}

/// A chain where block n holds one KLAY transfer of n peb from A to B.
struct Chain {
    served: watch::Sender<u64>,
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
            if n > *self.served.borrow() {
                return Err(format!("block {n} is above the served head"));
            }
            let body = match method {
                "klay_getBlockByNumber" => format!(
                    r#"{{"number":"{n:#x}","hash":"{}","parentHash":"{}","timestamp":"{:#x}","transactions":[
                      {{"hash":"{}","from":"0x{}","to":"0x{}","value":"{n:#x}","typeInt":0,"gasPrice":"0x1","input":"0x"}}]}}"#,
                    h(n, 0),
                    h(n.saturating_sub(1), 0),
                    1000 + n,
                    h(n, 0xee),
                    format!("{A:02x}").repeat(20),
                    format!("{B:02x}").repeat(20),
                ),
                "klay_getBlockReceipts" => format!(
                    r#"[{{"transactionHash":"{}","status":"0x1","gasUsed":"0x5208","logs":[]}}]"#,
                    h(n, 0xee)
                ),
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

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Post {
    url: String,
    signature: String,
    event_id: String,
    attempt: String,
    body: String,
}

/// Records every POST; answers 500 to the first `fail` ones of each URL listed in `failing`.
#[derive(Default)]
struct Receiver {
    posts: Mutex<Vec<Post>>,
    failing: Mutex<Vec<String>>,
    fail: AtomicU32,
}

impl Sender for Receiver {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, String>> + Send + 'a>> {
        Box::pin(async move {
            let get = |k: &str| {
                headers
                    .iter()
                    .find(|(h, _)| *h == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            self.posts.lock().unwrap().push(Post {
                url: url.to_owned(),
                signature: get("kengate-signature"),
                event_id: get("kengate-event-id"),
                attempt: get("kengate-delivery-attempt"),
                body,
            });
            if self.failing.lock().unwrap().iter().any(|u| u == url) {
                return match self.fail.load(Ordering::SeqCst) {
                    0 => Err("connection refused".into()),
                    _ => {
                        self.fail.fetch_sub(1, Ordering::SeqCst);
                        Ok(Answer {
                            status: 503,
                            retry_after: None,
                        })
                    }
                };
            }
            Ok(Answer {
                status: 200,
                retry_after: None,
            })
        })
    }
}

impl Receiver {
    fn posts_to(&self, url: &str) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.url == url)
            .cloned()
            .collect()
    }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Setup {
    wh: Arc<Webhooks>,
    chain: Arc<Chain>,
    rx: Arc<Receiver>,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    pub fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("kengate-wh-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

fn setup(tag: &str, schedule: Vec<u64>) -> Setup {
    let dir = tempdir::new(tag);
    let chain = Arc::new(Chain {
        served: watch::channel(5).0,
    });
    let rx = Arc::new(Receiver::default());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.0.join("kengate.db")).unwrap());
    let cfg = WebhooksConfig {
        enabled: true,
        allow_private: false,
        retry_schedule_s: schedule,
        max_per_key: 3,
        ..WebhooksConfig::default()
    };
    let wh = Webhooks::new(
        &cfg,
        &dir.0.join("webhooks.db"),
        vec![Net {
            name: "n".into(),
            fetch: chain.clone(),
        }],
        store,
        rx.clone(),
    )
    .unwrap();
    Setup {
        wh: Arc::new(wh),
        chain,
        rx,
        _dir: dir,
    }
}

fn call(wh: &Webhooks, owner: Owner<'_>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let r = answer(
        wh,
        &Request {
            method,
            path,
            query: "",
            body: body.as_bytes(),
            network: "n",
            owner,
        },
    );
    (r.status, serde_json::from_str(&r.body).unwrap())
}

fn activity(url: &str) -> Value {
    json!({"url": url, "type": "address_activity", "filter": {"address": format!("0x{}", format!("{B:02x}").repeat(20))}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_signed_once_each_and_a_failing_receiver_is_paused_then_resumed_with_its_backlog() {
    let s = setup("order", vec![1, 1]);
    let tasks = s.wh.spawn();
    // The feed starts at the served head (5): the webhooks hear of blocks 6 on.
    let (st, good) = call(
        &s.wh,
        Owner::Key("k1"),
        "POST",
        "",
        activity("https://good.example/hook"),
    );
    assert_eq!(st, 201, "{good}");
    let secret = good["secret"].as_str().unwrap().to_owned();
    let (st, bad) = call(
        &s.wh,
        Owner::Key("k1"),
        "POST",
        "",
        activity("https://bad.example/hook"),
    );
    assert_eq!(st, 201);
    s.rx.failing.lock().unwrap().push("https://bad.example/hook".into());
    s.rx.fail.store(1, Ordering::SeqCst);
    until("the block feed started at 5", || {
        s.wh.db().position("n", "blocks").ok().flatten() == Some(5)
    })
    .await;
    s.chain.served.send_replace(12);

    // The good receiver: blocks 6..=12, in order, each event once, each signature valid.
    until("7 events at the good receiver", || {
        s.rx.posts_to("https://good.example/hook").len() >= 7
    })
    .await;
    let posts = s.rx.posts_to("https://good.example/hook");
    let blocks: Vec<u64> = posts
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(&p.body).unwrap()["blockNumber"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(blocks, (6..=12).collect::<Vec<_>>());
    for p in &posts {
        let env: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(env["id"].as_str(), Some(p.event_id.as_str()));
        assert_eq!(env["webhookId"], good["id"]);
        assert_eq!(env["type"], "address_activity");
        assert_eq!(env["event"]["direction"], "in");
        let t: u64 = p
            .signature
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("t=")
            .parse()
            .unwrap();
        assert_eq!(
            p.signature,
            signature(&secret, t, &p.body),
            "signed over the exact body"
        );
        assert_eq!(p.attempt, "1");
    }
    let ids: std::collections::HashSet<&str> = posts.iter().map(|p| p.event_id.as_str()).collect();
    assert_eq!(ids.len(), 7);

    // The bad one: 503, then refused connections; two retries (1 s each), then paused as
    // failing. The good receiver was never held up by it (checked above, while it failed).
    until("the bad webhook failing", || {
        call(
            &s.wh,
            Owner::Key("k1"),
            "GET",
            &format!("/{}", bad["id"].as_str().unwrap()),
            json!(null),
        )
        .1["state"]
            == "failing"
    })
    .await;
    let tries = s.rx.posts_to("https://bad.example/hook");
    assert_eq!(
        tries.len(),
        3,
        "1 attempt + 2 retries of its first event, nothing after it"
    );
    assert!(
        tries.iter().all(|p| p.event_id == tries[0].event_id),
        "order: the head event only"
    );
    let (_, d) = call(
        &s.wh,
        Owner::Key("k1"),
        "GET",
        &format!("/{}/deliveries", bad["id"].as_str().unwrap()),
        json!(null),
    );
    let head = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["eventId"] == tries[0].event_id.as_str())
        .unwrap();
    assert_eq!(head["attempts"][0]["status"], 503);
    assert_eq!(head["attempts"][2]["error"], "connection refused");

    // Resumed with the receiver back: the whole backlog, in order, the head event's id again.
    s.rx.failing.lock().unwrap().clear();
    let (st, _) = call(
        &s.wh,
        Owner::Key("k1"),
        "POST",
        &format!("/{}/resume", bad["id"].as_str().unwrap()),
        json!(null),
    );
    assert_eq!(st, 200);
    until("the backlog delivered", || {
        s.rx.posts_to("https://bad.example/hook").len() >= 3 + 7
    })
    .await;
    let after: Vec<String> = s.rx.posts_to("https://bad.example/hook")[3..]
        .iter()
        .map(|p| p.event_id.clone())
        .collect();
    assert_eq!(after[0], tries[0].event_id, "the head event first, same id");
    let blocks: Vec<u64> = s.rx.posts_to("https://bad.example/hook")[3..]
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(&p.body).unwrap()["blockNumber"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(blocks, (6..=12).collect::<Vec<_>>());

    // Replay from the 3rd event: the same ids again, in order.
    let third = &s.rx.posts_to("https://good.example/hook")[2].event_id.clone();
    let (st, r) = call(
        &s.wh,
        Owner::Key("k1"),
        "POST",
        &format!("/{}/replay", good["id"].as_str().unwrap()),
        json!({"from": third}),
    );
    assert_eq!((st, r["requeued"].as_u64()), (200, Some(5)));
    until("the replay", || s.rx.posts_to("https://good.example/hook").len() >= 12).await;
    let replayed: Vec<String> = s.rx.posts_to("https://good.example/hook")[7..]
        .iter()
        .map(|p| p.event_id.clone())
        .collect();
    let original: Vec<String> = s.rx.posts_to("https://good.example/hook")[2..7]
        .iter()
        .map(|p| p.event_id.clone())
        .collect();
    assert_eq!(replayed, original);
    // Past retention, delivered events go (their attempts too); nothing undelivered does.
    let before = s.wh.db().backlog().unwrap();
    assert!(s.wh.db().prune(u64::MAX).unwrap() >= 14);
    assert_eq!(s.wh.db().backlog().unwrap(), before);
    let (_, d) = call(
        &s.wh,
        Owner::Key("k1"),
        "GET",
        &format!("/{}/deliveries", good["id"].as_str().unwrap()),
        json!(null),
    );
    assert_eq!(d["items"], json!([]));
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn keys_see_their_own_webhooks_and_bad_definitions_name_the_field() {
    let s = setup("api", vec![1]);
    let (st, mine) = call(&s.wh, Owner::Key("k1"), "POST", "", activity("https://a.example/"));
    assert_eq!(st, 201);
    let id = mine["id"].as_str().unwrap();
    assert!(id.starts_with("wh_"));
    assert!(mine["secret"].as_str().unwrap().starts_with("whsec_"));
    // The secret is shown once.
    let (_, got) = call(&s.wh, Owner::Key("k1"), "GET", &format!("/{id}"), json!(null));
    assert!(got.get("secret").is_none(), "{got}");
    let (_, list) = call(&s.wh, Owner::Key("k1"), "GET", "", json!(null));
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h.get("secret").is_none()));
    // Another key sees nothing of it; the admin sees it.
    assert_eq!(
        call(&s.wh, Owner::Key("k2"), "GET", &format!("/{id}"), json!(null)).0,
        404
    );
    assert_eq!(
        call(&s.wh, Owner::Key("k2"), "DELETE", &format!("/{id}"), json!(null)).0,
        404
    );
    assert_eq!(
        call(&s.wh, Owner::Key("k2"), "GET", "", json!(null)).1["items"],
        json!([])
    );
    assert_eq!(call(&s.wh, Owner::Admin, "GET", &format!("/{id}"), json!(null)).0, 200);
    // Rotation gives a new secret.
    let (st, r) = call(
        &s.wh,
        Owner::Key("k1"),
        "POST",
        &format!("/{id}/rotate-secret"),
        json!(null),
    );
    assert_eq!(st, 200);
    assert_ne!(r["secret"], mine["secret"]);
    // Bad definitions: 400 naming the field.
    for (body, field) in [
        (json!({"url": "http://127.0.0.1:9/x", "type": "new_block"}), "url"),
        (
            json!({"url": "http://169.254.169.254/latest", "type": "new_block"}),
            "url",
        ),
        (json!({"url": "http://[::1]/", "type": "new_block"}), "url"),
        (json!({"url": "http://localhost/", "type": "new_block"}), "url"),
        (json!({"url": "ftp://a.example/", "type": "new_block"}), "url"),
        (json!({"url": "https://a.example/", "type": "nope"}), "type"),
        (
            json!({"url": "https://a.example/", "type": "balance_threshold", "filter": {"address": "0x1", "threshold": "1"}}),
            "filter.address",
        ),
        (
            json!({"url": "https://a.example/", "type": "new_block", "color": "red"}),
            "color",
        ),
    ] {
        let (st, e) = call(&s.wh, Owner::Key("k1"), "POST", "", body.clone());
        assert_eq!((st, e["field"].as_str()), (400, Some(field)), "{body}: {e}");
    }
    // The type cannot change; the URL is checked again.
    assert_eq!(
        call(
            &s.wh,
            Owner::Key("k1"),
            "PATCH",
            &format!("/{id}"),
            json!({"type": "log"})
        )
        .0,
        400
    );
    assert_eq!(
        call(
            &s.wh,
            Owner::Key("k1"),
            "PATCH",
            &format!("/{id}"),
            json!({"url": "http://10.0.0.1/"})
        )
        .0,
        400
    );
    let (st, u) = call(
        &s.wh,
        Owner::Key("k1"),
        "PATCH",
        &format!("/{id}"),
        json!({"description": "wallet B"}),
    );
    assert_eq!((st, u["description"].as_str()), (200, Some("wallet B")));
    // The per-key limit (3 here).
    for _ in 0..2 {
        assert_eq!(
            call(&s.wh, Owner::Key("k1"), "POST", "", activity("https://a.example/")).0,
            201
        );
    }
    assert_eq!(
        call(&s.wh, Owner::Key("k1"), "POST", "", activity("https://a.example/")).0,
        429
    );
    assert_eq!(
        call(&s.wh, Owner::Key("k2"), "POST", "", activity("https://a.example/")).0,
        201
    );
    // Unknown paths and methods.
    assert_eq!(
        call(&s.wh, Owner::Key("k1"), "GET", &format!("/{id}/nope"), json!(null)).0,
        404
    );
    assert_eq!(
        call(&s.wh, Owner::Key("k1"), "PUT", &format!("/{id}/pause"), json!(null)).0,
        405
    );
    assert_eq!(
        call(&s.wh, Owner::Key("k1"), "DELETE", &format!("/{id}"), json!(null)).0,
        200
    );
    assert_eq!(
        call(&s.wh, Owner::Key("k1"), "GET", &format!("/{id}"), json!(null)).0,
        404
    );
}

#[test]
fn the_cli_changes_what_the_api_shows() {
    let dir = tempdir::new("cli");
    let cfg = dir.0.join("proxy.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"{}\"\n[webhooks]\nenabled = true\n[[nodes]]\nhttp = \"http://127.0.0.1:9\"\n",
            dir.0.join("kengate.db").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
            .arg("--config")
            .arg(&cfg)
            .arg("webhooks")
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        (
            out.status.success(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
        )
    };
    let (ok, made) = run(&[
        "--key",
        "k1",
        "create",
        "--url",
        "https://a.example/",
        "--type",
        "new_block",
    ]);
    assert!(ok, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    let (ok, list) = run(&["list"]);
    assert!(ok);
    assert_eq!(list["items"][0]["id"], json!(id));
    assert_eq!(
        run(&["--key", "k2", "list"]).1["items"],
        json!([]),
        "another key sees none"
    );
    let (ok, paused) = run(&["pause", &id]);
    assert!(ok && paused["state"] == "paused", "{paused}");
    let (ok, e) = run(&["create", "--url", "http://127.0.0.1/", "--type", "new_block"]);
    assert!(!ok && e["field"] == "url", "{e}");
    assert!(run(&["delete", &id]).0);
    assert!(!run(&["show", &id]).0);
}
