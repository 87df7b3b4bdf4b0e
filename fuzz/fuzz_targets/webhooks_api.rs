//! The webhooks API's requests as clients send them — method, path and JSON body (URLs,
//! types, filters of every kind) — answered without panicking, always with a status and a
//! JSON body, and never a webhook whose URL the SSRF guard refuses.
#![no_main]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use kengate::config::WebhooksConfig;
use kengate::store::{SqliteStore, Store};
use kengate::webhooks::api::{answer, Owner, Request};
use kengate::webhooks::deliver::{Answer, Sender};
use kengate::webhooks::send::check_url;
use kengate::webhooks::Webhooks;
use libfuzzer_sys::fuzz_target;

struct NoSender;

impl Sender for NoSender {
    fn post<'a>(
        &'a self,
        _: &'a str,
        _: Vec<(&'static str, String)>,
        _: String,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, String>> + Send + 'a>> {
        Box::pin(async { Err("no delivery while fuzzing".to_owned()) })
    }
}

fn webhooks() -> &'static Webhooks {
    static WH: OnceLock<Webhooks> = OnceLock::new();
    WH.get_or_init(|| {
        let file = std::env::temp_dir().join(format!("kengate-fuzz-webhooks-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
        let cfg = WebhooksConfig {
            enabled: true,
            max_per_key: 4,
            ..WebhooksConfig::default()
        };
        Webhooks::new(&cfg, &file, Vec::new(), store, Arc::new(NoSender)).expect("webhooks")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // "<METHOD> <path>[?<query>]\n<body>"
    let (head, body) = text.split_once('\n').unwrap_or((text, ""));
    let (method, target) = head.split_once(' ').unwrap_or(("POST", head));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // Keys make webhooks (bounded by max_per_key); the operator only reads.
    let owner = match method {
        "GET" if body.len() % 2 == 0 => Owner::Admin,
        _ => Owner::Key(if body.len() % 3 == 0 { "k1" } else { "k2" }),
    };
    let r = answer(
        webhooks(),
        &Request {
            method,
            path,
            query,
            body: body.as_bytes(),
            network: "n",
            owner,
        },
    );
    assert!((200..600).contains(&r.status));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON body");
    if r.status == 201 {
        let url = v["url"].as_str().expect("a created webhook has its url");
        assert!(check_url(url, false).is_ok(), "a refused URL was stored: {url}");
        assert!(v["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    }
});
