//! Fuzz target: arbitrary request bodies through the parser, the method table and the routing
//! planner, the way the per-call pipeline uses them. Owns the invariants "never panics",
//! "every answer kengate builds from client input (errors, local results, batches) is valid JSON"
//! "the scanner (`parse_body`), serde's one pass (`parse_body_serde`) and the checked parse
//! (`parse_body_checked`) read every body alike" and "params are split into the elements serde reads".
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use kengate::cluster::{compute_view, ClusterView, NodeObservation};
use kengate::jsonrpc::{self, Call, Incoming, RawJson, RpcError};
use kengate::methods::{Dialect, Lookup, MethodTable};
use kengate::proxy::ProxyError;
use kengate::routing::{self, Decision};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The batch limit the server would apply (`limits.max_batch`).
const MAX_BATCH: usize = 100;

/// Built once: `MethodTable::new` leaks its names, so building it per input would grow RSS.
struct Fixture {
    /// The default table (no allow/deny overrides).
    table: MethodTable,
    /// Cluster snapshots every allowed call is planned against.
    views: Vec<ClusterView>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let up = |h| NodeObservation {
        head: Some(h),
        ..NodeObservation::default()
    };
    let down = |h| NodeObservation {
        head: Some(h),
        down: true,
        ..NodeObservation::default()
    };
    let views = vec![
        // All in sync: served head 100.
        compute_view(0, &[up(100), up(101), up(102)], 3),
        // One lagging node: served head 104, node 0 lagging.
        compute_view(100, &[up(100), up(104), up(104)], 3),
        // All down, nothing served yet: served head 0 (NotReady paths).
        compute_view(0, &[down(0), down(0), down(0)], 3),
        // Heads at the top of u64: catches overflow in block arithmetic.
        compute_view(0, &[up(u64::MAX), up(u64::MAX - 1), up(u64::MAX)], 3),
    ];
    assert!(views[0].served_head > 0 && views[1].served_head > 0 && views[2].served_head == 0);
    Fixture {
        table: MethodTable::new(&[], &[]),
        views,
    }
});

/// The shape every error answer must parse back into.
#[derive(Deserialize)]
struct ErrorReply<'a> {
    jsonrpc: String,
    #[serde(borrow)]
    id: &'a RawValue,
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    message: String,
}

/// Builds the error answer and checks it round-trips: valid JSON, same id, same error.
fn error_bytes(id: Option<RawJson<'_>>, err: &RpcError) -> Bytes {
    let bytes = jsonrpc::error_response(id, err);
    let reply: ErrorReply<'_> = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => panic!(
            "error response is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert_eq!(reply.jsonrpc, "2.0");
    assert_eq!(reply.id.get(), id.map_or("null", |id| id.get()));
    assert_eq!(reply.error.code, err.code);
    assert_eq!(reply.error.message, err.message);
    bytes
}

/// Builds a result answer and checks it is valid JSON.
fn result_bytes(id: Option<RawJson<'_>>, result_json: &str) -> Bytes {
    let bytes = jsonrpc::result_response(id, result_json);
    if let Err(e) = serde_json::from_slice::<&RawValue>(&bytes) {
        panic!(
            "result response is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    bytes
}

/// Runs one parsed call through split_params, the table and the planner under `view`, and
/// returns the answer kengate would build locally (a stand-in `null` result when forwarded).
fn answer(call: &Call<'_>, table: &MethodTable, view: &ClusterView, dialect: Dialect) -> Bytes {
    // Params are split without being read again: the elements serde reads, text for text.
    let read = call.params.map(|p| serde_json::from_str::<Vec<&RawValue>>(p.get()));
    match (jsonrpc::split_params(call.params), read) {
        (Ok(ps), None) => assert!(ps.is_empty()),
        (Ok(ps), Some(Ok(read))) => assert_eq!(ps, read.iter().map(|r| r.get()).collect::<Vec<_>>()),
        (Err(e), Some(Err(_))) => {
            error_bytes(call.id, &e);
        }
        (split, read) => panic!("split_params {split:?}, serde {read:?}: {:?}", call.params),
    }
    let spec = match table.lookup(&call.method, dialect) {
        Lookup::Allowed(spec) => spec,
        Lookup::Denied(why) => {
            return error_bytes(call.id, &ProxyError::MethodDenied(call.method.to_string(), why).to_rpc())
        }
        Lookup::Unknown => return error_bytes(call.id, &ProxyError::MethodNotFound(call.method.to_string()).to_rpc()),
    };
    match routing::plan(&spec, call.params, view) {
        Err(e) => error_bytes(call.id, &ProxyError::Route(e).to_rpc()),
        Ok(Decision::Answer(result)) => result_bytes(call.id, &result),
        // Served by the event hub (no planning beyond the class).
        Ok(Decision::Event(_)) => result_bytes(call.id, "null"),
        Ok(Decision::Forward(plan)) => {
            if let Some(p) = &plan.params {
                // Rewritten params are sent to a node as-is: they must still be a JSON array.
                if let Err(e) = serde_json::from_str::<Vec<&RawValue>>(p) {
                    panic!(
                        "{}: rewritten params are not a JSON array ({e}): {p:?} (sent {:?})",
                        spec.name,
                        call.params.map(|p| p.get())
                    );
                }
            }
            result_bytes(call.id, "null")
        }
        Ok(Decision::TxStatus(hash)) => {
            // Only a well-formed tx hash gets this far (the store is looked up by it).
            assert!(
                hash.len() == 66 && hash.starts_with("0x"),
                "bad tx hash accepted: {hash:?}"
            );
            result_bytes(call.id, "null")
        }
    }
}

/// The answer for one batch element or single body.
fn element(el: &Result<Call<'_>, RpcError>, fx: &Fixture, view: &ClusterView) -> Bytes {
    match el {
        // Both node lines' tables plan the same call (Kaia's differs in rows and block args).
        Ok(call) => {
            answer(call, &fx.table, view, Dialect::Kaia);
            answer(call, &fx.table, view, Dialect::Klaytn)
        }
        Err(e) => error_bytes(None, e),
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let parsed = jsonrpc::parse_body(data, MAX_BATCH);
    // The parses compare through `Debug`, which shows every slice (`RpcError` has no `Eq`).
    let checked = format!("{:?}", jsonrpc::parse_body_checked(data, MAX_BATCH));
    assert_eq!(
        format!("{parsed:?}"),
        checked,
        "the scanner's parse differs from the checked one"
    );
    assert_eq!(
        format!("{:?}", jsonrpc::parse_body_serde(data, MAX_BATCH)),
        checked,
        "serde's one-pass parse differs from the checked one"
    );
    let incoming = match parsed {
        Ok(i) => i,
        Err(e) => {
            error_bytes(None, &e.to_rpc());
            return;
        }
    };
    for view in &fx.views {
        match &incoming {
            Incoming::Single(el) => {
                element(el, fx, view);
            }
            Incoming::Batch(els) => {
                assert!(!els.is_empty() && els.len() <= MAX_BATCH, "batch of {}", els.len());
                let parts: Vec<Bytes> = els.iter().map(|el| element(el, fx, view)).collect();
                let batch = jsonrpc::batch_response(&parts);
                match serde_json::from_slice::<Vec<&RawValue>>(&batch) {
                    Ok(v) => assert_eq!(v.len(), parts.len(), "batch answer length"),
                    Err(e) => panic!(
                        "batch response is not valid JSON ({e}): {:?}",
                        String::from_utf8_lossy(&batch)
                    ),
                }
            }
        }
    }
});
