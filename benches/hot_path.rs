//! Micro-benchmarks of the per-call work kengate adds: parsing, classification, planning
//! (including the `latest` rewrite), raw-tx decoding, cache keys and hits, authentication and
//! admission, and the served-head recomputation. `cargo bench`.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use kengate::access::Access;
use kengate::cluster::{compute_view, NodeObservation};
use kengate::config::{AuthConfig, KeyConfig, KeyScope, ThrottleConfig};
use kengate::jsonrpc::{parse_body, Incoming, UpstreamReply};
use kengate::methods::{Dialect, Lookup, MethodTable};
use kengate::proxy::cache::{read_key, FinalCache};
use kengate::rawtx::decode::decode_hex;
use kengate::routing::{plan, CachePolicy};
use kengate::store::SqliteStore;

const SINGLE: &[u8] =
    br#"{"jsonrpc":"2.0","id":1,"method":"klay_getBalance","params":["0x5dfb226b1e9b3083aa0d294cdf51fe4ed1e4b509","latest"]}"#;

fn batch10() -> Vec<u8> {
    let one = std::str::from_utf8(SINGLE).unwrap_or_default();
    format!("[{}]", [one; 10].join(",")).into_bytes()
}

fn observations() -> Vec<NodeObservation> {
    [1000, 1001, 997]
        .iter()
        .map(|&h| NodeObservation {
            head: Some(h),
            ..NodeObservation::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let table = MethodTable::new(&[], &[]);
    let view = compute_view(0, &observations(), 3);
    c.bench_function("parse single call", |b| {
        b.iter(|| parse_body(black_box(SINGLE), 100).is_ok())
    });
    c.bench_function("parse + classify + plan getBalance(latest)", |b| {
        b.iter(|| {
            let Ok(Incoming::Single(Ok(call))) = parse_body(black_box(SINGLE), 100) else {
                return;
            };
            if let Lookup::Allowed(spec) = table.lookup(&call.method, Dialect::Klaytn) {
                black_box(plan(&spec, call.params, &view).is_ok());
            }
        })
    });
    let batch = batch10();
    c.bench_function("parse + plan batch of 10", |b| {
        b.iter(|| {
            let Ok(Incoming::Batch(calls)) = parse_body(black_box(&batch), 100) else {
                return;
            };
            for call in calls.iter().flatten() {
                if let Lookup::Allowed(spec) = table.lookup(&call.method, Dialect::Klaytn) {
                    black_box(plan(&spec, call.params, &view).is_ok());
                }
            }
        })
    });
    let obs = observations();
    c.bench_function("compute_view (3 nodes)", |b| {
        b.iter(|| compute_view(black_box(999), &obs, 3))
    });
    bench_decode(c);
    bench_cache(c);
    bench_access(c);
    bench_reply(c);
}

/// Raw transactions from the recorded vectors: a legacy tx (sender recovered from the
/// signature) and a fee-delegated Klaytn tx (explicit `from`).
fn bench_decode(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/klaytn_txs.json"))
        .unwrap_or_default();
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    let raw_of = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        vectors
            .iter()
            .find(|v| pred(v))
            .and_then(|v| v["raw"].as_str())
            .unwrap_or("0x")
            .to_owned()
    };
    let legacy = raw_of(&|v| v["typeInt"] == 0);
    let native = raw_of(&|v| {
        v["type"]
            .as_str()
            .is_some_and(|t| t.contains("FeeDelegatedValueTransfer"))
    });
    c.bench_function("decode raw tx: legacy (ecrecover)", |b| {
        b.iter(|| decode_hex(black_box(&legacy)).is_ok())
    });
    c.bench_function("decode raw tx: fee-delegated value transfer", |b| {
        b.iter(|| decode_hex(black_box(&native)).is_ok())
    });
}

fn bench_cache(c: &mut Criterion) {
    let params = r#"["0x1a2b",true]"#;
    c.bench_function("cache key getBlockByNumber", |b| {
        b.iter(|| read_key(black_box("klay_getBlockByNumber"), black_box(params)))
    });
    let cache = FinalCache::new(64 << 20);
    let block = Bytes::from(vec![b'1'; 4096]);
    cache.offer(
        read_key("klay_getBlockByNumber", params),
        block,
        CachePolicy::Final,
        1 << 20,
    );
    c.bench_function("cache key + hit (4 KiB block)", |b| {
        b.iter(|| {
            cache
                .get(&read_key("klay_getBlockByNumber", black_box(params)))
                .is_some()
        })
    });
}

fn bench_access(c: &mut Criterion) {
    let Ok(store) = SqliteStore::in_memory() else { return };
    let auth = AuthConfig {
        enabled: true,
        keys: vec![KeyConfig {
            scope: KeyScope {
                ip_allow: vec!["127.0.0.0/8".into()],
                rps: Some(1_000_000_000),
                burst: Some(1_000_000_000),
                ..Default::default()
            },
            ..KeyConfig::new("bench", "bench-secret-0123456789abcdef")
        }],
        ..AuthConfig::default()
    };
    let Ok(access) = Access::new(&auth, &ThrottleConfig::default(), &["klaytn".into()], Arc::new(store)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer bench.bench-secret-0123456789abcdef"),
    );
    let peer = "127.0.0.1:40000"
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 1)));
    c.bench_function("auth: client ip + Bearer authenticate + admit", |b| {
        b.iter(|| {
            let ip = access.client_ip(peer, black_box(&headers));
            let Ok(caller) = access.authenticate(ip, &headers, None, "klaytn") else {
                return;
            };
            black_box(access.admit(&caller, 1).is_ok());
        })
    });
}

/// A node's reply read as the forwarding path reads one when it must look at it (result or
/// error, null or not): what passing a reply on unread saves.
fn bench_reply(c: &mut Criterion) {
    // klay_getBlockByNumber(0x10, true) from examples/static_upstream: 4.7 KB, four full txs.
    let block = include_bytes!("../fuzz/corpus/upstream_reply/block_full_txs.json");
    c.bench_function("read upstream reply: block, 4 full txs", |b| {
        b.iter(|| UpstreamReply::parse(black_box(block)).is_ok())
    });
    c.bench_function("result_follows + first byte: block, 4 full txs", |b| {
        b.iter(|| kengate::jsonrpc::unread_result(black_box(block)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
