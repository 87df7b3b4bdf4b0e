//! Micro-benchmarks of the per-call work kengate adds: parsing, classification, planning
//! (including the `latest` rewrite) and the served-head recomputation. `cargo bench`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kengate::cluster::{compute_view, NodeObservation};
use kengate::jsonrpc::{parse_body, Incoming};
use kengate::methods::{Lookup, MethodTable};
use kengate::routing::plan;

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
            down: false,
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
            if let Lookup::Allowed(spec) = table.lookup(&call.method) {
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
                if let Lookup::Allowed(spec) = table.lookup(&call.method) {
                    black_box(plan(&spec, call.params, &view).is_ok());
                }
            }
        })
    });
    let obs = observations();
    c.bench_function("compute_view (3 nodes)", |b| {
        b.iter(|| compute_view(black_box(999), &obs, 3))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
