//! THE method table: every JSON-RPC method kengate knows, its routing class, the position
//! and kind of its block parameter, and whether clients may call it by default.
//! `klay_`, `kaia_` and `eth_` spellings are resolved here and nowhere else.
//!
//! Architecture invariant: routing never guesses from a method's name; it reads this table.

use std::collections::HashMap;

/// How a block parameter is typed by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// `rpc.BlockNumber`: a tag or a hex number.
    Number,
    /// `rpc.BlockNumberOrHash`: also a 32-byte hash or `{blockNumber|blockHash, requireCanonical}`.
    NumberOrHash,
}

/// Where a method's block parameter is and whether kengate may fill it in when omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockArg {
    /// 0-based position in the params array.
    pub pos: u8,
    /// Accepted forms.
    pub kind: BlockKind,
    /// Omitted → filled with the served head. False where the node takes no such argument
    /// (appending one would be "too many arguments").
    pub fill: bool,
}

/// What a filter method does with node-local filter state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// Creates a filter on one node and returns its id.
    Create,
    /// Reads a filter by the id at param 0.
    Use,
    /// Removes the filter with the id at param 0.
    Uninstall,
}

/// The routing class of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `blockNumber`: answered from the served head without an upstream call.
    BlockNumber,
    /// Reads state or chain data at a block given by a parameter.
    AtBlock(BlockArg),
    /// `getLogs`: a filter object at param 0 with `fromBlock`/`toBlock`/`blockHash`.
    Logs,
    /// Lookup by a hash: a `null` from one node is not final while a higher node exists.
    ByHash,
    /// Node-local filter state.
    Filter(FilterOp),
    /// Transaction submission (raw or node-signed): not retried blindly.
    Write,
    /// Reads that do not depend on the head (chain id, gas price, client version ...).
    Chain,
    /// WebSocket subscriptions.
    Subscribe,
    /// `kengate_getTransactionStatus`: answered from kengate's lifecycle records.
    TxStatus,
}

/// Namespaces a row exists in.
#[derive(Debug, Clone, Copy)]
struct Ns(u8);
const KLAY: Ns = Ns(1); // klay_ and kaia_ (the same methods on Kaia; kaia_ → klay_ on Klaytn)
const ETH: Ns = Ns(2);
const BOTH: Ns = Ns(3);

const fn at(pos: u8, kind: BlockKind) -> Class {
    Class::AtBlock(BlockArg { pos, kind, fill: true })
}
use BlockKind::{Number as N, NumberOrHash as NH};

/// (method without namespace, namespaces, class). Block positions from Klaytn v1.12.1's
/// `api/` and `node/cn/filters` (see `../shared/KLAYTN.md`).
const TABLE: &[(&str, Ns, Class)] = &[
    ("blockNumber", BOTH, Class::BlockNumber),
    // state at a block: param 1
    ("getBalance", BOTH, at(1, NH)),
    ("getCode", BOTH, at(1, NH)),
    ("getTransactionCount", BOTH, at(1, NH)),
    ("call", BOTH, at(1, NH)),
    ("createAccessList", BOTH, at(1, NH)),
    ("getAccount", KLAY, at(1, NH)),
    ("getAccountKey", KLAY, at(1, NH)),
    ("accountCreated", KLAY, at(1, NH)),
    ("isContractAccount", KLAY, at(1, NH)),
    ("estimateComputationCost", KLAY, at(1, NH)),
    ("estimateGas", ETH, at(1, NH)),
    ("feeHistory", BOTH, at(1, N)),
    ("recoverFromTransaction", KLAY, at(1, N)),
    // state at a block: param 2
    ("getStorageAt", BOTH, at(2, NH)),
    ("getProof", BOTH, at(2, NH)),
    // chain data at a block: param 0
    ("getBlockByNumber", BOTH, at(0, N)),
    ("getHeaderByNumber", BOTH, at(0, N)),
    ("getBlockTransactionCountByNumber", BOTH, at(0, N)),
    ("getTransactionByBlockNumberAndIndex", BOTH, at(0, N)),
    ("getRawTransactionByBlockNumberAndIndex", BOTH, at(0, N)),
    ("getUncleByBlockNumberAndIndex", ETH, at(0, N)),
    ("getUncleCountByBlockNumber", ETH, at(0, N)),
    ("getBlockReceipts", BOTH, at(0, NH)),
    ("getBlockWithConsensusInfoByNumber", KLAY, at(0, N)),
    ("getBlockWithConsensusInfoByNumberRange", KLAY, at(1, N)),
    ("getCouncil", KLAY, at(0, N)),
    ("getCouncilSize", KLAY, at(0, N)),
    ("getCommittee", KLAY, at(0, N)),
    ("getCommitteeSize", KLAY, at(0, N)),
    ("getRewards", KLAY, at(0, N)),
    ("getChainConfig", KLAY, at(0, N)),
    ("getParams", KLAY, at(0, N)),
    ("getStakingInfo", KLAY, at(0, N)),
    ("forkStatus", KLAY, at(0, N)),
    ("getLogs", BOTH, Class::Logs),
    // by hash
    ("getBlockByHash", BOTH, Class::ByHash),
    ("getHeaderByHash", BOTH, Class::ByHash),
    ("getBlockTransactionCountByHash", BOTH, Class::ByHash),
    ("getTransactionByBlockHashAndIndex", BOTH, Class::ByHash),
    ("getRawTransactionByBlockHashAndIndex", BOTH, Class::ByHash),
    ("getUncleByBlockHashAndIndex", ETH, Class::ByHash),
    ("getUncleCountByBlockHash", ETH, Class::ByHash),
    ("getTransactionByHash", BOTH, Class::ByHash),
    ("getRawTransactionByHash", BOTH, Class::ByHash),
    ("getTransactionReceipt", BOTH, Class::ByHash),
    ("getTransactionBySenderTxHash", KLAY, Class::ByHash),
    ("getTransactionReceiptBySenderTxHash", KLAY, Class::ByHash),
    ("getDecodedAnchoringTransactionByHash", KLAY, Class::ByHash),
    ("getBlockWithConsensusInfoByHash", KLAY, Class::ByHash),
    // filters (node-local)
    ("newFilter", BOTH, Class::Filter(FilterOp::Create)),
    ("newBlockFilter", BOTH, Class::Filter(FilterOp::Create)),
    ("newPendingTransactionFilter", BOTH, Class::Filter(FilterOp::Create)),
    ("getFilterChanges", BOTH, Class::Filter(FilterOp::Use)),
    ("getFilterLogs", BOTH, Class::Filter(FilterOp::Use)),
    ("uninstallFilter", BOTH, Class::Filter(FilterOp::Uninstall)),
    // writes
    ("sendRawTransaction", BOTH, Class::Write),
    ("sendTransaction", BOTH, Class::Write),
    ("sendTransactionAsFeePayer", KLAY, Class::Write),
    // subscriptions
    ("subscribe", BOTH, Class::Subscribe),
    ("unsubscribe", BOTH, Class::Subscribe),
    // head-independent reads
    ("chainID", KLAY, Class::Chain),
    ("chainId", BOTH, Class::Chain),
    ("gasPrice", BOTH, Class::Chain),
    ("upperBoundGasPrice", BOTH, Class::Chain),
    ("lowerBoundGasPrice", BOTH, Class::Chain),
    ("maxPriorityFeePerGas", BOTH, Class::Chain),
    ("protocolVersion", KLAY, Class::Chain),
    ("syncing", BOTH, Class::Chain),
    ("estimateGas", KLAY, Class::Chain),
    ("isSenderTxHashIndexingEnabled", KLAY, Class::Chain),
    ("isParallelDBWrite", KLAY, Class::Chain),
    ("encodeAccountKey", KLAY, Class::Chain),
    ("decodeAccountKey", KLAY, Class::Chain),
    ("getCypressCredit", KLAY, Class::Chain),
    ("nodeAddress", KLAY, Class::Chain),
    ("rewardbase", KLAY, Class::Chain),
    ("accounts", BOTH, Class::Chain),
    ("mining", ETH, Class::Chain),
    ("hashrate", ETH, Class::Chain),
    ("coinbase", ETH, Class::Chain),
    ("etherbase", ETH, Class::Chain),
];

/// Other namespaces' methods kengate allows by default.
const OTHER_ALLOWED: &[&str] = &[
    "net_version",
    "net_listening",
    "net_peerCount",
    "net_networkID",
    "web3_clientVersion",
    "web3_sha3",
];

/// Methods denied by default but routed sensibly once `proxy.toml` allows them.
const OTHER_DENIED: &[(&str, Class)] = &[
    ("debug_traceTransaction", Class::ByHash),
    ("debug_traceBlockByHash", Class::ByHash),
    ("debug_traceBlockByNumber", at(0, N)),
    ("debug_traceCall", at(1, NH)),
    ("debug_getBlockRlp", at(0, N)),
    ("txpool_status", Class::Chain),
    ("txpool_content", Class::Chain),
    ("txpool_inspect", Class::Chain),
];

/// Everything routing needs to know about one method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSpec {
    /// The name as the table spells it (also the metrics label).
    pub name: &'static str,
    /// The name sent upstream: `kaia_x` is sent as `klay_x`, which both Klaytn and Kaia serve.
    pub upstream: &'static str,
    /// Routing class.
    pub class: Class,
    /// Whether clients may call it.
    pub allowed: bool,
}

/// The method table with `proxy.toml` overrides applied; built once at start.
#[derive(Debug)]
pub struct MethodTable {
    by_name: HashMap<&'static str, MethodSpec>,
}

/// Why a method cannot be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Known and allowed.
    Allowed(MethodSpec),
    /// Known but denied by policy.
    Denied,
    /// Not a method kengate knows.
    Unknown,
}

impl MethodTable {
    /// Builds the table; `allow` adds or enables methods (unknown ones route as
    /// head-independent reads), `deny` disables them. Deny wins.
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let mut by_name = HashMap::new();
        for &(base, ns, class) in TABLE {
            if ns.0 & KLAY.0 != 0 {
                let klay = leak(format!("klay_{base}"));
                by_name.insert(klay, spec(klay, klay, class, true));
                let kaia = leak(format!("kaia_{base}"));
                by_name.insert(kaia, spec(kaia, klay, class, true));
            }
            if ns.0 & ETH.0 != 0 {
                let eth = leak(format!("eth_{base}"));
                by_name.insert(eth, spec(eth, eth, class, true));
            }
        }
        for &name in OTHER_ALLOWED {
            by_name.insert(name, spec(name, name, Class::Chain, true));
        }
        by_name.insert(
            "kengate_getTransactionStatus",
            spec(
                "kengate_getTransactionStatus",
                "kengate_getTransactionStatus",
                Class::TxStatus,
                true,
            ),
        );
        for &(name, class) in OTHER_DENIED {
            by_name.insert(name, spec(name, name, class, false));
        }
        for name in allow {
            match by_name.get_mut(name.as_str()) {
                Some(s) => s.allowed = true,
                None => {
                    let n = leak(name.clone());
                    by_name.insert(n, spec(n, n, Class::Chain, true));
                }
            }
        }
        for name in deny {
            if let Some(s) = by_name.get_mut(name.as_str()) {
                s.allowed = false;
            }
        }
        Self { by_name }
    }

    /// Looks a method up.
    pub fn lookup(&self, method: &str) -> Lookup {
        match self.by_name.get(method) {
            Some(s) if s.allowed => Lookup::Allowed(*s),
            Some(_) => Lookup::Denied,
            None => Lookup::Unknown,
        }
    }

    /// All names in the table (for metrics pre-registration and docs).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

fn spec(name: &'static str, upstream: &'static str, class: Class, allowed: bool) -> MethodSpec {
    MethodSpec {
        name,
        upstream,
        class,
        allowed,
    }
}

/// Table names live for the whole process (built once at start): leaking them lets every
/// lookup hand out `&'static str` labels with no allocation on the request path.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MethodTable {
        MethodTable::new(
            &["debug_traceTransaction".into(), "admin_peers".into()],
            &["eth_accounts".into()],
        )
    }

    #[test]
    fn namespaces_resolve_to_one_class() {
        let t = table();
        let check = |m: &str, class: Class, upstream: &str| match t.lookup(m) {
            Lookup::Allowed(s) => {
                assert_eq!(s.class, class, "{m}");
                assert_eq!(s.upstream, upstream, "{m}");
            }
            other => panic!("{m}: {other:?}"),
        };
        check("klay_getBalance", at(1, NH), "klay_getBalance");
        check("kaia_getBalance", at(1, NH), "klay_getBalance");
        check("eth_getBalance", at(1, NH), "eth_getBalance");
        check("klay_getStorageAt", at(2, NH), "klay_getStorageAt");
        check("eth_getBlockByNumber", at(0, N), "eth_getBlockByNumber");
        check("kaia_getBlockReceipts", at(0, NH), "klay_getBlockReceipts");
        check(
            "klay_getTransactionReceipt",
            Class::ByHash,
            "klay_getTransactionReceipt",
        );
        check("klay_blockNumber", Class::BlockNumber, "klay_blockNumber");
        check("klay_estimateGas", Class::Chain, "klay_estimateGas");
        check("eth_estimateGas", at(1, NH), "eth_estimateGas");
        check("klay_chainID", Class::Chain, "klay_chainID");
        check("debug_traceTransaction", Class::ByHash, "debug_traceTransaction");
        check("admin_peers", Class::Chain, "admin_peers");
    }

    #[test]
    fn default_policy() {
        let t = table();
        assert_eq!(t.lookup("debug_traceBlockByNumber"), Lookup::Denied);
        assert_eq!(t.lookup("eth_accounts"), Lookup::Denied);
        assert_eq!(t.lookup("personal_unlockAccount"), Lookup::Unknown);
        assert_eq!(t.lookup("eth_getAccount"), Lookup::Unknown);
        assert_eq!(t.lookup("klay_nope"), Lookup::Unknown);
        assert!(matches!(t.lookup("net_version"), Lookup::Allowed(_)));
        assert!(matches!(
            t.lookup("klay_sendRawTransaction"),
            Lookup::Allowed(MethodSpec {
                class: Class::Write,
                ..
            })
        ));
    }
}
