//! The per-call plan: which nodes may answer, with which params, and how failures and
//! `null` answers are retried — decided from the method class and one cluster snapshot.

use super::params::{block_param, logs_range, parse_address, BlockRef, RouteError};
use crate::cluster::{ClusterView, NodeId};
use crate::jsonrpc::{format_quantity, json_str, split_params, RawJson};
use crate::methods::{Class, EventOp, MethodSpec, WriteKind};
use crate::rawtx::decode_hex;

/// Which nodes may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any in-sync node.
    InSync,
    /// Any up node whose head is at least this block; the highest up node if none is.
    AtLeast(u64),
    /// The up node with the highest head (pending state, blocks known only by hash).
    Highest,
    /// The sender's home node (rendezvous over in-sync nodes): where its writes go, so its
    /// `pending` state is read there too.
    SenderHome([u8; 20]),
    /// A stable in-sync node, for writes whose sender cannot be read.
    Primary,
    /// Exactly this node.
    Node(NodeId),
}

/// How transport failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Idempotent read: retry timeouts, broken connections and 5xx on another candidate.
    Read,
    /// Submission: retried only when it provably never reached a node (a decoded signed tx
    /// is re-sent by the write path instead: same bytes, same hash).
    Write,
}

/// Where and how to forward a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Candidate nodes.
    pub target: Target,
    /// Rewritten params (a JSON array), or `None` to send the client's params unchanged.
    pub params: Option<String>,
    /// Transport retry policy.
    pub retry: RetryClass,
    /// A `null` result is not final while a node with a higher head exists.
    pub retry_null: bool,
    /// `getTransactionCount(addr, "pending")`: never answer below what kengate forwarded.
    pub nonce_floor: Option<[u8; 20]>,
    /// A decoded raw transaction: submitted in its sender's nonce order.
    pub write: Option<WriteTx>,
    /// Whether the answer may be cached.
    pub cache: CachePolicy,
    /// Identical in-flight calls may share one upstream request (a read whose answer does
    /// not depend on who asks).
    pub shared: bool,
}

/// Whether an answer is final and may be cached. Klaytn has immediate finality (BFT, no
/// reorgs): whatever is at or below the served head never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Never cached (pending state, head-dependent reads, node-local state, writes).
    No,
    /// Data of a block at or below the served head: any non-null, non-error answer is final.
    Final,
    /// A by-hash lookup: final once the answer is mined in a block at or below the served
    /// head (its `blockNumber` / `number` says so).
    IfMined,
}

/// What the write path needs of a raw transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTx {
    /// Its sender (explicit `from` for Klaytn native types, recovered otherwise).
    pub sender: [u8; 20],
    /// Its nonce.
    pub nonce: u64,
    /// Its hash, by Klaytn's rules.
    pub hash: [u8; 32],
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer locally with this result JSON.
    Answer(String),
    /// Forward upstream.
    Forward(Plan),
    /// A subscription or polling-filter method: served by kengate's event hub.
    Event(EventOp),
    /// Look up kengate's lifecycle record of this tx hash.
    TxStatus(String),
}

impl Plan {
    fn new(target: Target, retry: RetryClass) -> Self {
        Self {
            target,
            params: None,
            retry,
            retry_null: false,
            nonce_floor: None,
            write: None,
            cache: CachePolicy::No,
            shared: false,
        }
    }

    /// A read any client may share.
    fn shared(target: Target, cache: CachePolicy) -> Self {
        Self {
            cache,
            shared: true,
            ..Self::new(target, RetryClass::Read)
        }
    }
}

/// Decides what to do with one call.
pub fn plan(spec: &MethodSpec, params: Option<RawJson<'_>>, view: &ClusterView) -> Result<Decision, RouteError> {
    let served = view.served_head;
    let need_served = || {
        if served == 0 {
            Err(RouteError::NotReady)
        } else {
            Ok(served)
        }
    };
    let read = |t| Plan::new(t, RetryClass::Read);
    // Params kengate cannot read: sent unchanged to an in-sync node, whose answer (its own
    // error, usually) is the client's.
    let as_sent = || read(Target::InSync);
    Ok(match spec.class {
        // Extra arguments: the node's "too many arguments" is the answer.
        Class::BlockNumber if !no_args(params) => Decision::Forward(as_sent()),
        Class::BlockNumber => Decision::Answer(format_quantity(need_served()?)),
        Class::Chain => Decision::Forward(Plan::shared(Target::InSync, CachePolicy::No)),
        Class::ByHash => Decision::Forward(Plan {
            retry_null: true,
            ..Plan::shared(Target::InSync, CachePolicy::IfMined)
        }),
        Class::Write(kind) => Decision::Forward(write_plan(kind, params)),
        Class::Event(op) => Decision::Event(op),
        Class::TxStatus => {
            let ps = split_params(params).map_err(|e| RouteError::InvalidParams(e.message))?;
            let hash = ps
                .first()
                .and_then(|p| serde_json::from_str::<String>(p).ok())
                .filter(|h| h.len() == 66 && h.starts_with("0x") && h[2..].bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| RouteError::InvalidParams("expected a transaction hash".into()))?;
            Decision::TxStatus(hash)
        }
        Class::Logs => {
            let ps = match split_params(params) {
                Ok(ps) => ps,
                Err(_) => return Ok(Decision::Forward(as_sent())),
            };
            let Some(range) = ps.first().and_then(|filter| logs_range(filter, served)) else {
                return Ok(Decision::Forward(as_sent()));
            };
            if range.rewritten.is_some() {
                need_served()?;
            }
            let (target, cache) = match (range.by_hash, range.needs) {
                (true, _) | (false, None) => (Target::Highest, CachePolicy::No),
                (false, Some(n)) if n <= served => (Target::AtLeast(n), CachePolicy::Final),
                (false, Some(n)) => (Target::AtLeast(n), CachePolicy::No),
            };
            let mut p = Plan::shared(target, cache);
            p.params = range.rewritten.map(|f| join_params(&ps, 0, &f));
            Decision::Forward(p)
        }
        Class::AtBlock(arg) => {
            let ps = match split_params(params) {
                Ok(ps) => ps,
                // Object params: Klaytn refuses them; let the node say so.
                Err(_) => return Ok(Decision::Forward(as_sent())),
            };
            let pos = usize::from(arg.pos);
            let (block, rewritten) = match ps.get(pos) {
                Some(raw) => match block_param(raw, arg.kind, served) {
                    Some(bp) => (bp.block, bp.rewritten),
                    // A block the node would refuse too: its error is the answer.
                    None => return Ok(Decision::Forward(as_sent())),
                },
                // Omitted where the node reads an omitted block as its current one.
                None if ps.len() == pos && arg.fill => {
                    let s = need_served()?;
                    (BlockRef::Number(s), Some(format_quantity(s)))
                }
                // A required argument is missing: the node will name it.
                None => return Ok(Decision::Forward(as_sent())),
            };
            if rewritten.is_some() {
                need_served()?;
            }
            let target = match block {
                BlockRef::Number(n) => Target::AtLeast(n),
                BlockRef::Pending => match ps.first().and_then(|p| parse_address(p)) {
                    Some(addr) => Target::SenderHome(addr),
                    None => Target::Highest,
                },
                BlockRef::Earliest => Target::InSync,
                BlockRef::Hash => Target::Highest,
                BlockRef::Latest => Target::AtLeast(served),
            };
            let mut p = match (&target, block) {
                (Target::SenderHome(_), _) => read(target.clone()),
                (_, BlockRef::Number(n)) if n <= served => Plan::shared(target.clone(), CachePolicy::Final),
                _ => Plan::shared(target.clone(), CachePolicy::No),
            };
            p.params = rewritten.map(|r| join_params(&ps, pos, &r));
            if let (Target::SenderHome(addr), true) = (target, arg.nonce_count) {
                p.nonce_floor = Some(addr);
            }
            Decision::Forward(p)
        }
    })
}

/// Raw transactions go to their sender's home node in nonce order; node-signed sends
/// (`sendTransaction`) stick by `from`. What cannot be read goes to a stable node, which
/// answers with the node's own error.
fn write_plan(kind: WriteKind, params: Option<RawJson<'_>>) -> Plan {
    let ps = split_params(params).unwrap_or_default();
    let mut plan = Plan::new(Target::Primary, RetryClass::Write);
    let Some(first) = ps.first() else { return plan };
    if kind == WriteKind::Raw {
        let decoded = json_str(first).and_then(|h| decode_hex(h).ok());
        if let Some(tx) = decoded {
            plan.target = Target::SenderHome(tx.sender.0);
            plan.write = Some(WriteTx {
                sender: tx.sender.0,
                nonce: tx.nonce,
                hash: tx.hash,
            });
        }
    } else if kind == WriteKind::NodeSigned {
        let from = serde_json::from_str::<serde_json::Value>(first)
            .ok()
            .and_then(|v| v.get("from").map(|f| f.to_string()))
            .and_then(|f| parse_address(&f));
        if let Some(from) = from {
            plan.target = Target::SenderHome(from);
        }
    }
    plan
}

/// Absent, `null` or `[]` params.
fn no_args(params: Option<RawJson<'_>>) -> bool {
    matches!(split_params(params), Ok(ps) if ps.is_empty())
}

/// Rebuilds a params array with element `pos` replaced (or appended when `pos == len`).
fn join_params(ps: &[&str], pos: usize, replacement: &str) -> String {
    let mut out = String::with_capacity(ps.iter().map(|p| p.len() + 1).sum::<usize>() + replacement.len() + 2);
    out.push('[');
    let n = ps.len().max(pos + 1);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        if i == pos {
            out.push_str(replacement);
        } else if let Some(p) = ps.get(i) {
            out.push_str(p);
        }
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{compute_view, NodeObservation};
    use crate::methods::{Lookup, MethodTable};

    fn view(heads: &[u64]) -> ClusterView {
        let obs: Vec<_> = heads
            .iter()
            .map(|&h| NodeObservation {
                head: Some(h),
                ..NodeObservation::default()
            })
            .collect();
        compute_view(0, &obs, 3)
    }

    fn decide(method: &str, params: &str, heads: &[u64]) -> Result<Decision, RouteError> {
        let t = MethodTable::new(&[], &[]);
        let Lookup::Allowed(spec) = t.lookup(method, crate::methods::Dialect::Klaytn) else {
            panic!("{method} not allowed")
        };
        let raw = serde_json::value::RawValue::from_string(params.to_owned()).unwrap();
        plan(&spec, Some((&*raw).into()), &view(heads))
    }

    fn fwd(method: &str, params: &str) -> (Target, Option<String>) {
        match decide(method, params, &[100, 101, 102]).unwrap() {
            Decision::Forward(p) => (p.target, p.params),
            other => panic!("{method}: {other:?}"),
        }
    }

    #[test]
    fn latest_is_rewritten_to_the_served_head_in_every_namespace() {
        for m in ["klay_getBalance", "kaia_getBalance", "eth_getBalance"] {
            assert_eq!(
                fwd(m, r#"["0xaa","latest"]"#),
                (Target::AtLeast(100), Some(r#"["0xaa","0x64"]"#.into())),
                "{m}"
            );
        }
        assert_eq!(
            fwd("eth_getStorageAt", r#"["0xaa","0x0","latest"]"#),
            (Target::AtLeast(100), Some(r#"["0xaa","0x0","0x64"]"#.into()))
        );
        assert_eq!(
            fwd("klay_getBlockByNumber", r#"["latest",true]"#),
            (Target::AtLeast(100), Some(r#"["0x64",true]"#.into()))
        );
        // Klaytn v1.12.1 refuses `safe` and `finalized`: they reach the node as sent.
        assert_eq!(fwd("klay_getBlockByNumber", r#"["safe",true]"#), (Target::InSync, None));
    }

    #[test]
    fn omitted_optional_blocks_are_filled_only_where_the_node_takes_one() {
        assert_eq!(
            fwd("eth_estimateGas", r#"[{"to":"0x01"}]"#),
            (Target::AtLeast(100), Some(r#"[{"to":"0x01"},"0x64"]"#.into()))
        );
        // Required on Klaytn (a non-pointer argument): the node says "missing value".
        assert_eq!(fwd("eth_call", r#"[{"to":"0x01"}]"#), (Target::InSync, None));
        assert_eq!(fwd("klay_getBalance", r#"["0xaa"]"#), (Target::InSync, None));
        for m in [
            "klay_getBlockTransactionCountByNumber",
            "eth_getBlockReceipts",
            "eth_getUncleCountByBlockNumber",
            "klay_getBlockWithConsensusInfoByNumber",
            "klay_forkStatus",
            "eth_getUncleByBlockNumberAndIndex",
            "klay_getTransactionByBlockNumberAndIndex",
        ] {
            assert_eq!(fwd(m, "[]"), (Target::InSync, None), "{m}");
        }
        assert_eq!(
            fwd("klay_getCouncil", "[]"),
            (Target::AtLeast(100), Some(r#"["0x64"]"#.into()))
        );
        assert_eq!(fwd("klay_estimateGas", r#"[{"to":"0x01"}]"#), (Target::InSync, None));
        assert_eq!(fwd("klay_getStorageAt", r#"["0xaa"]"#), (Target::InSync, None));
    }

    #[test]
    fn explicit_pending_earliest_and_hash() {
        assert_eq!(
            fwd("klay_getBlockByNumber", r#"["0x66",false]"#),
            (Target::AtLeast(102), None)
        );
        let addr = "0x00000000000000000000000000000000000000aa";
        let mut want = [0u8; 20];
        want[19] = 0xaa;
        assert_eq!(
            fwd("klay_getTransactionCount", &format!(r#"["{addr}","pending"]"#)),
            (Target::SenderHome(want), None)
        );
        assert_eq!(
            fwd("eth_getBalance", &format!(r#"["{addr}","pending"]"#)),
            (Target::SenderHome(want), None)
        );
        assert_eq!(
            fwd("klay_getTransactionCount", r#"["0xaa","pending"]"#),
            (Target::Highest, None)
        );
        let Decision::Forward(p) =
            decide("kaia_getTransactionCount", &format!(r#"["{addr}","pending"]"#), &[1]).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.nonce_floor, Some(want));
        let Decision::Forward(p) = decide("eth_getBalance", &format!(r#"["{addr}","pending"]"#), &[1]).unwrap() else {
            panic!()
        };
        assert_eq!(p.nonce_floor, None);
        assert_eq!(fwd("klay_getBalance", r#"["0xaa","earliest"]"#), (Target::InSync, None));
        let h = r#"["0xaa","0x1111111111111111111111111111111111111111111111111111111111111111"]"#;
        assert_eq!(fwd("klay_getBalance", h), (Target::Highest, None));
    }

    #[test]
    fn other_classes() {
        assert_eq!(
            decide("klay_blockNumber", "[]", &[100, 104]).unwrap(),
            Decision::Answer("\"0x68\"".into())
        );
        assert_eq!(decide("eth_blockNumber", "[]", &[]).unwrap_err(), RouteError::NotReady);
        assert_eq!(fwd("klay_blockNumber", "[1]"), (Target::InSync, None));
        assert_eq!(
            decide("klay_getBalance", r#"["0xaa","latest"]"#, &[]).unwrap_err(),
            RouteError::NotReady
        );
        assert_eq!(
            decide("klay_subscribe", r#"["newHeads"]"#, &[1]).unwrap(),
            Decision::Event(EventOp::Subscribe)
        );
        assert_eq!(
            decide("eth_getFilterChanges", r#"["0xabc"]"#, &[1]).unwrap(),
            Decision::Event(EventOp::FilterChanges)
        );
        let Decision::Forward(p) = decide("klay_getTransactionReceipt", r#"["0x01"]"#, &[1]).unwrap() else {
            panic!()
        };
        assert!(p.retry_null && p.retry == RetryClass::Read && p.target == Target::InSync);
        let Decision::Forward(p) = decide("kaia_sendRawTransaction", r#"["0x01"]"#, &[1]).unwrap() else {
            panic!()
        };
        assert_eq!((p.target, p.retry), (Target::Primary, RetryClass::Write));
        // What kengate cannot read goes to the node as sent; never an error of kengate's.
        assert_eq!(fwd("klay_getBalance", r#"["0xaa","soon"]"#), (Target::InSync, None));
        assert_eq!(fwd("klay_getBalance", r#"["0xaa","0x01"]"#), (Target::InSync, None));
        assert_eq!(fwd("klay_getBalance", r#"{"a":1}"#), (Target::InSync, None));
        // A JSON integer is a block number to the node.
        assert_eq!(fwd("klay_getBlockReceipts", "[10]"), (Target::AtLeast(10), None));
        assert_eq!(fwd("eth_getBlockByNumber", "[101,false]"), (Target::AtLeast(101), None));
    }

    #[test]
    fn logs() {
        let (t, p) = fwd("eth_getLogs", r#"[{"address":"0x01"}]"#);
        assert_eq!(t, Target::AtLeast(100));
        let v: serde_json::Value = serde_json::from_str(&p.unwrap()).unwrap();
        assert_eq!(v[0]["toBlock"], "0x64");
        assert_eq!(
            fwd("klay_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x65"}]"#),
            (Target::AtLeast(101), None)
        );
        assert_eq!(fwd("klay_getLogs", r#"[{"blockHash":"0x01"}]"#).0, Target::Highest);
        assert_eq!(fwd("klay_getLogs", "[]"), (Target::InSync, None));
        assert_eq!(fwd("klay_getLogs", r#"[{"toBlock":"soon"}]"#), (Target::InSync, None));
        assert_eq!(fwd("klay_getLogs", r#"[1]"#), (Target::InSync, None));
    }

    #[test]
    fn join_params_replaces_and_appends() {
        let (a, b) = ("1", "{\"x\":[2]}");
        assert_eq!(join_params(&[a, b], 1, "3"), "[1,3]");
        assert_eq!(join_params(&[a, b], 2, "3"), "[1,{\"x\":[2]},3]");
        assert_eq!(join_params(&[], 0, "3"), "[3]");
    }
}
