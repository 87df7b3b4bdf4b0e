//! THE method table: every JSON-RPC method kengate knows, its routing class, the position
//! and kind of its block parameter, and whether clients may call it by default, for each
//! node software ([`Dialect`]: Klaytn v1.12 or Kaia v2). `klay_`, `kaia_` and `eth_`
//! spellings are resolved here and nowhere else.
//!
//! Architecture invariant: routing never guesses from a method's name; it reads this table.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// `kaia_x` → `klay_x` (the same method on either software); other names as they are. Access
/// keys compare method permissions in this spelling, so one spelling in a key's list allows
/// both. A permission's name, never one sent upstream (that is [`MethodSpec::upstream`]).
pub fn klay_spelling(m: &str) -> Cow<'_, str> {
    match m.strip_prefix("kaia_") {
        Some(rest) => Cow::Owned(format!("klay_{rest}")),
        None => Cow::Borrowed(m),
    }
}

/// `klay_x` ↔ `kaia_x` (the same methods on Kaia); `None` for other names. Access uses it to
/// give both spellings of a weighted method the same weight.
pub fn other_spelling(m: &str) -> Option<String> {
    if let Some(rest) = m.strip_prefix("klay_") {
        Some(format!("kaia_{rest}"))
    } else {
        m.strip_prefix("kaia_").map(|rest| format!("klay_{rest}"))
    }
}

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
    /// The answer is an account's transaction count (`getTransactionCount`): at `pending`,
    /// the write path raises it to the nonces kengate has in hand for that sender.
    pub nonce_count: bool,
}

/// An event method: subscriptions and polling filters, served by kengate from the served
/// head (`events/`), never by a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOp {
    /// `*_subscribe` (WebSocket only).
    Subscribe,
    /// `*_unsubscribe`.
    Unsubscribe,
    /// `*_newFilter`.
    NewFilter,
    /// `*_newBlockFilter`.
    NewBlockFilter,
    /// `*_newPendingTransactionFilter`.
    NewPendingTransactionFilter,
    /// `*_getFilterChanges`.
    FilterChanges,
    /// `*_getFilterLogs`.
    FilterLogs,
    /// `*_uninstallFilter`.
    Uninstall,
}

/// What a write method submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// One transaction the client signed (`sendRawTransaction`): decoded, sent from its
    /// sender's node in nonce order.
    Raw,
    /// Several signed transactions in one call (Kaia's `sendRawTransactions`): each sent as
    /// [`WriteKind::Raw`].
    RawMany,
    /// A transaction the node signs with a key it holds (`sendTransaction`, `resend`, ...).
    NodeSigned,
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
    /// Subscriptions and polling filters, served by kengate itself.
    Event(EventOp),
    /// Transaction submission: not retried blindly.
    Write(WriteKind),
    /// Reads that do not depend on the head (chain id, gas price, client version ...).
    Chain,
    /// `kengate_getTransactionStatus`: answered from kengate's lifecycle records.
    TxStatus,
}

/// Why a method is denied by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// It makes the node use keys it holds (list accounts, sign, send from them): on a node
    /// with unlocked accounts anyone who reaches kengate would spend from them.
    NodeKey,
    /// A node-operator namespace (debug, admin, txpool, governance, ...).
    Operator,
    /// Node-internal wiring that Klaytn happens to register as a method (`eth_setPublicKlayAPI`,
    /// `klay_events`, ...): calling it can break the node.
    Internal,
    /// Listed under `[methods] deny` in `proxy.toml`.
    Config,
}

/// The node software a network runs, as far as the method table cares: which namespace is
/// native and which methods exist with which arguments. Detected per node from `rpc_modules`
/// (`cluster`); a network is [`Dialect::Kaia`] only when every node that answered is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Klaytn v1.x (and the default before any node answered): `klay_` is native, `kaia_x`
    /// goes upstream as `klay_x` (which Kaia nodes serve too, as an alias).
    #[default]
    Klaytn,
    /// Kaia v2.x: `kaia_` is native and goes upstream as sent.
    Kaia,
}

impl Dialect {
    /// Lower-case name for `/status`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Klaytn => "klaytn",
            Dialect::Kaia => "kaia",
        }
    }
}

/// Default policy of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Allow,
    Deny(Deny),
}

/// Namespaces a row exists in.
#[derive(Debug, Clone, Copy)]
struct Ns(u8);
const KLAY: Ns = Ns(1); // klay_ and kaia_ (the same methods on Kaia; kaia_ → klay_ on Klaytn)
const ETH: Ns = Ns(2);
const BOTH: Ns = Ns(3);
/// Flag: the row exists on Klaytn v1.12 only (Kaia v2 removed the method).
const KLAYTN_ONLY: u8 = 4;
const fn klaytn_only(ns: Ns) -> Ns {
    Ns(ns.0 | KLAYTN_ONLY)
}

/// A required block argument (a non-pointer Go argument: omitted, the node answers
/// "missing value for required argument N", so kengate never fills it in).
const fn at(pos: u8, kind: BlockKind) -> Class {
    Class::AtBlock(BlockArg {
        pos,
        kind,
        fill: false,
        nonce_count: false,
    })
}
/// An optional block argument the node reads as `latest` when omitted (a pointer Go
/// argument with nil meaning the current block): kengate fills in the served head.
const fn opt(pos: u8, kind: BlockKind) -> Class {
    Class::AtBlock(BlockArg {
        pos,
        kind,
        fill: true,
        nonce_count: false,
    })
}
/// `getTransactionCount`: the block argument at 1, and a count the write path may raise.
const NONCE_COUNT: Class = Class::AtBlock(BlockArg {
    pos: 1,
    kind: BlockKind::NumberOrHash,
    fill: false,
    nonce_count: true,
});
use BlockKind::{Number as N, NumberOrHash as NH};
use Policy::{Allow as A, Deny as D};
const NODE_KEY: Policy = D(Deny::NodeKey);
const INTERNAL: Policy = D(Deny::Internal);

/// (method without namespace, namespaces, class, default policy): every method Klaytn
/// v1.12.1 registers in `klay_` and `eth_` (its `api/`, `node/cn/`, `node/cn/filters`,
/// `governance`, `consensus/istanbul/backend` and `datasync/downloader` services), with
/// block positions and optionality from the Go signatures. `scripts/conformance` checks the
/// table against a third-party suite run directly and through kengate.
const TABLE: &[(&str, Ns, Class, Policy)] = &[
    ("blockNumber", BOTH, Class::BlockNumber, A),
    // state at a block: param 1
    ("getBalance", BOTH, at(1, NH), A),
    ("getCode", BOTH, at(1, NH), A),
    ("getTransactionCount", BOTH, NONCE_COUNT, A),
    ("call", BOTH, at(1, NH), A),
    ("createAccessList", BOTH, opt(1, NH), A),
    ("getAccount", KLAY, at(1, NH), A),
    ("getAccountKey", KLAY, at(1, NH), A),
    ("accountCreated", KLAY, at(1, NH), A),
    ("isContractAccount", KLAY, at(1, NH), A),
    ("estimateComputationCost", KLAY, at(1, NH), A),
    ("estimateGas", ETH, opt(1, NH), A),
    // `klay_estimateGas` takes no block on Klaytn (a head-independent row below)
    ("feeHistory", BOTH, at(1, N), A),
    ("recoverFromTransaction", KLAY, at(1, N), A),
    ("recoverFromMessage", KLAY, at(3, N), A),
    // state at a block: param 2
    ("getStorageAt", BOTH, at(2, NH), A),
    ("getProof", BOTH, at(2, NH), A),
    // chain data at a block: param 0
    ("getBlockByNumber", BOTH, at(0, N), A),
    ("getHeaderByNumber", BOTH, at(0, N), A),
    ("getBlockTransactionCountByNumber", BOTH, at(0, N), A),
    ("getTransactionByBlockNumberAndIndex", BOTH, at(0, N), A),
    ("getRawTransactionByBlockNumberAndIndex", BOTH, at(0, N), A),
    ("getUncleByBlockNumberAndIndex", ETH, at(0, N), A),
    ("getUncleCountByBlockNumber", ETH, at(0, N), A),
    ("getBlockReceipts", BOTH, at(0, NH), A),
    ("forkStatus", KLAY, at(0, N), A),
    // a nil number is an error on the node ("block number is not assigned"), not latest
    ("getBlockWithConsensusInfoByNumber", KLAY, at(0, N), A),
    ("getBlockWithConsensusInfoByNumberRange", KLAY, at(1, N), A),
    // governance and committee reads: an omitted block means the current one
    ("getCouncil", KLAY, opt(0, N), A),
    ("getCouncilSize", KLAY, opt(0, N), A),
    ("getCommittee", KLAY, opt(0, N), A),
    ("getCommitteeSize", KLAY, opt(0, N), A),
    ("getRewards", KLAY, opt(0, N), A),
    ("getChainConfig", KLAY, opt(0, N), A),
    ("getParams", KLAY, opt(0, N), A),
    // Klaytn's is optional (a Kaia row below)
    ("getStakingInfo", klaytn_only(KLAY), opt(0, N), A),
    ("getLogs", BOTH, Class::Logs, A),
    // by hash
    ("getBlockByHash", BOTH, Class::ByHash, A),
    ("getHeaderByHash", BOTH, Class::ByHash, A),
    ("getBlockTransactionCountByHash", BOTH, Class::ByHash, A),
    ("getTransactionByBlockHashAndIndex", BOTH, Class::ByHash, A),
    ("getRawTransactionByBlockHashAndIndex", BOTH, Class::ByHash, A),
    ("getUncleByBlockHashAndIndex", ETH, Class::ByHash, A),
    ("getUncleCountByBlockHash", ETH, Class::ByHash, A),
    ("getTransactionByHash", BOTH, Class::ByHash, A),
    ("getRawTransactionByHash", BOTH, Class::ByHash, A),
    ("getTransactionReceipt", BOTH, Class::ByHash, A),
    ("getTransactionReceiptInCache", KLAY, Class::ByHash, A),
    ("getTransactionBySenderTxHash", KLAY, Class::ByHash, A),
    ("getTransactionReceiptBySenderTxHash", KLAY, Class::ByHash, A),
    ("getDecodedAnchoringTransactionByHash", KLAY, Class::ByHash, A),
    ("getBlockWithConsensusInfoByHash", KLAY, Class::ByHash, A),
    // polling filters, owned by kengate
    ("newFilter", BOTH, Class::Event(EventOp::NewFilter), A),
    ("newBlockFilter", BOTH, Class::Event(EventOp::NewBlockFilter), A),
    (
        "newPendingTransactionFilter",
        BOTH,
        Class::Event(EventOp::NewPendingTransactionFilter),
        A,
    ),
    ("getFilterChanges", BOTH, Class::Event(EventOp::FilterChanges), A),
    ("getFilterLogs", BOTH, Class::Event(EventOp::FilterLogs), A),
    ("uninstallFilter", BOTH, Class::Event(EventOp::Uninstall), A),
    // writes: raw transactions are signed by the client
    ("sendRawTransaction", BOTH, Class::Write(WriteKind::Raw), A),
    // the node signs with keys it holds
    ("sendTransaction", BOTH, Class::Write(WriteKind::NodeSigned), NODE_KEY),
    (
        "sendTransactionAsFeePayer",
        KLAY,
        Class::Write(WriteKind::NodeSigned),
        NODE_KEY,
    ),
    ("resend", BOTH, Class::Write(WriteKind::NodeSigned), NODE_KEY),
    ("sign", BOTH, Class::Chain, NODE_KEY),
    ("signTransaction", BOTH, Class::Chain, NODE_KEY),
    ("signTransactionAsFeePayer", KLAY, Class::Chain, NODE_KEY),
    ("accounts", BOTH, Class::Chain, NODE_KEY),
    // subscriptions
    ("subscribe", BOTH, Class::Event(EventOp::Subscribe), A),
    ("unsubscribe", BOTH, Class::Event(EventOp::Unsubscribe), A),
    // head-independent reads and pure functions
    ("chainID", KLAY, Class::Chain, A),
    ("chainId", BOTH, Class::Chain, A),
    ("clientVersion", KLAY, Class::Chain, A),
    ("sha3", KLAY, Class::Chain, A),
    ("gasPrice", BOTH, Class::Chain, A),
    ("upperBoundGasPrice", BOTH, Class::Chain, A),
    ("lowerBoundGasPrice", BOTH, Class::Chain, A),
    ("maxPriorityFeePerGas", BOTH, Class::Chain, A),
    ("protocolVersion", KLAY, Class::Chain, A),
    ("syncing", BOTH, Class::Chain, A),
    ("estimateGas", klaytn_only(KLAY), Class::Chain, A),
    ("fillTransaction", ETH, Class::Chain, A),
    ("pendingTransactions", BOTH, Class::Chain, A),
    ("isSenderTxHashIndexingEnabled", KLAY, Class::Chain, A),
    ("isParallelDBWrite", KLAY, Class::Chain, A),
    ("encodeAccountKey", KLAY, Class::Chain, A),
    ("decodeAccountKey", KLAY, Class::Chain, A),
    ("getCypressCredit", KLAY, Class::Chain, A),
    ("nodeAddress", KLAY, Class::Chain, A),
    ("rewardbase", KLAY, Class::Chain, A),
    ("mining", ETH, Class::Chain, A),
    ("hashrate", ETH, Class::Chain, A),
    ("getHashrate", ETH, Class::Chain, A),
    ("getWork", ETH, Class::Chain, A),
    ("submitWork", ETH, Class::Chain, A),
    ("submitHashrate", ETH, Class::Chain, A),
    ("coinbase", ETH, Class::Chain, A),
    ("etherbase", ETH, Class::Chain, A),
    // Go methods of the node's API structs that its RPC server registers by reflection
    ("doEstimateGas", klaytn_only(KLAY), Class::Chain, INTERNAL),
    ("events", KLAY, Class::Chain, INTERNAL),
    ("setGovernanceAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    ("setGovernanceKlayAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    ("setPublicAccountAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    ("setPublicBlockChainAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    ("setPublicFilterAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    ("setPublicKlayAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    ("setPublicTransactionPoolAPI", klaytn_only(ETH), Class::Chain, INTERNAL),
    // the downloader's Go-channel helper, registered next to its `syncing` subscription
    ("subscribeSyncStatus", BOTH, Class::Chain, INTERNAL),
];

/// What Kaia v2.2.1 serves beyond (or differently from) the rows above that it keeps: its
/// `api/`, `node/cn/`, `node/cn/filters`, `datasync/downloader` and `kaiax/*` services
/// registered in `kaia` and `eth` (node/cn/backend.go `APIs`, each kaiax module's `APIs`),
/// block positions and optionality from the Go signatures.
const KAIA_TABLE: &[(&str, Ns, Class, Policy)] = &[
    // now takes a block (pointer: omitted = latest) and state overrides
    ("estimateGas", KLAY, opt(1, NH), A),
    // kaiax/staking: `num rpc.BlockNumber`, required
    ("getStakingInfo", KLAY, at(0, N), A),
    // kaiax/randao, kaiax/supply, kaiax/valset
    ("getBlsInfos", KLAY, at(0, N), A),
    ("getTotalSupply", KLAY, opt(0, N), A),
    ("getAllRecordsFromRegistry", KLAY, at(1, N), A),
    ("getActiveAddressFromRegistry", KLAY, at(1, N), A),
    ("isConsoleLogEnabled", KLAY, Class::Chain, A),
    // several signed txs in one call: each goes through the write path (`txpath::multi`)
    ("sendRawTransactions", KLAY, Class::Write(WriteKind::RawMany), A),
    // blobs (EIP-4844 reads; Kaia keeps no blob txs of its own yet)
    ("config", ETH, Class::Chain, A),
    ("blobBaseFee", ETH, Class::Chain, A),
    // `number *rpc.BlockNumber` before a required bool: the number is required too
    ("getBlobSidecars", ETH, at(0, N), A),
    ("getBlobSidecarByTxHash", ETH, Class::ByHash, A),
    // node wiring: the filter API's event system is promoted into `eth` too, and the
    // downloader's Go-channel subscription helper is registered by reflection
    ("events", ETH, Class::Chain, INTERNAL),
];

/// The `net_` and `web3_` namespaces: all allowed, head-independent.
const OTHER_ALLOWED: &[&str] = &[
    "net_version",
    "net_listening",
    "net_peerCount",
    "net_peerCountByType",
    "net_networkID",
    "web3_clientVersion",
    "web3_sha3",
];

/// Operator methods denied by default but routed sensibly once `proxy.toml` allows them.
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

/// Namespaces whose methods are refused with a reason even when the table has no row for
/// them (a node answers "does not exist" only for namespaces it does not serve).
const DENIED_NAMESPACES: &[(&str, Deny)] = &[
    ("personal_", Deny::NodeKey),
    ("debug_", Deny::Operator),
    ("admin_", Deny::Operator),
    ("txpool_", Deny::Operator),
    ("governance_", Deny::Operator),
    ("istanbul_", Deny::Operator),
    ("miner_", Deny::Operator),
    ("mainbridge_", Deny::Operator),
    ("subbridge_", Deny::Operator),
    ("chaindatafetcher_", Deny::Operator),
    ("clique_", Deny::Operator),
    // Kaia v2: the block-space auction (bids and searcher subscriptions), off unless allowed
    ("auction_", Deny::Operator),
];

/// Everything routing needs to know about one method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSpec {
    /// The name as the table spells it (also the metrics label).
    pub name: &'static str,
    /// The name sent upstream: as sent, except `kaia_x` on a Klaytn network, sent as `klay_x`.
    pub upstream: &'static str,
    /// The name its answers are kept and shared under: `klay_x` for `kaia_x` too (the same
    /// method, the same answer, on either software).
    pub shared: &'static str,
    /// Routing class.
    pub class: Class,
    /// `None` when clients may call it; otherwise why not.
    pub denied: Option<Deny>,
}

/// The method tables of both dialects with `proxy.toml` overrides applied; built once at start.
#[derive(Debug)]
pub struct MethodTable {
    klaytn: Table,
    kaia: Table,
}

/// Whether and how a method can be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Known and allowed.
    Allowed(MethodSpec),
    /// Denied by policy, and why.
    Denied(Deny),
    /// Not a method kengate knows.
    Unknown,
}

impl MethodTable {
    /// Builds the tables; `allow` adds or enables methods (unknown ones route as
    /// head-independent reads), `deny` disables them. Deny wins.
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        Self {
            klaytn: build(Dialect::Klaytn, allow, deny),
            kaia: build(Dialect::Kaia, allow, deny),
        }
    }

    fn map(&self, dialect: Dialect) -> &Table {
        match dialect {
            Dialect::Klaytn => &self.klaytn,
            Dialect::Kaia => &self.kaia,
        }
    }

    /// Looks a method up in the table of the network's dialect.
    pub fn lookup(&self, method: &str, dialect: Dialect) -> Lookup {
        match self.map(dialect).get(method) {
            Some(s) => match s.denied {
                None => Lookup::Allowed(*s),
                Some(d) => Lookup::Denied(d),
            },
            None => match DENIED_NAMESPACES.iter().find(|(ns, _)| method.starts_with(ns)) {
                Some(&(_, d)) => Lookup::Denied(d),
                None => Lookup::Unknown,
            },
        }
    }

    /// A method's row whatever the policy (kengate's own reads, e.g. the event feed's, are
    /// not client calls).
    pub fn row(&self, method: &str, dialect: Dialect) -> Option<MethodSpec> {
        self.map(dialect).get(method).copied()
    }

    /// All names in either table (for metrics pre-registration and docs).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        let kaia_only = self.kaia.keys().filter(|k| !self.klaytn.contains_key(*k));
        self.klaytn.keys().chain(kaia_only).copied()
    }
}

/// One dialect's table: the shared rows (less those Kaia dropped), then the Kaia rows over
/// them, then kengate's own method and the operator rows, then `proxy.toml`.
/// Method name → row; looked up on every call (aHash: SipHash's DoS resistance buys nothing
/// for a table whose keys are fixed at build time).
type Table = HashMap<&'static str, MethodSpec, ahash::RandomState>;

fn build(dialect: Dialect, allow: &[String], deny: &[String]) -> Table {
    let mut by_name = Table::default();
    let extra: &[_] = match dialect {
        Dialect::Klaytn => &[],
        Dialect::Kaia => KAIA_TABLE,
    };
    for &(base, ns, class, policy) in TABLE.iter().chain(extra) {
        if dialect == Dialect::Kaia && ns.0 & KLAYTN_ONLY != 0 {
            continue;
        }
        let denied = match policy {
            Policy::Allow => None,
            Policy::Deny(d) => Some(d),
        };
        if ns.0 & KLAY.0 != 0 {
            let klay = leak(format!("klay_{base}"));
            by_name.insert(klay, spec(klay, klay, class, denied));
            let kaia = leak(format!("kaia_{base}"));
            let upstream = match dialect {
                Dialect::Klaytn => klay,
                Dialect::Kaia => kaia,
            };
            by_name.insert(
                kaia,
                MethodSpec {
                    shared: klay,
                    ..spec(kaia, upstream, class, denied)
                },
            );
        }
        if ns.0 & ETH.0 != 0 {
            let eth = leak(format!("eth_{base}"));
            by_name.insert(eth, spec(eth, eth, class, denied));
        }
    }
    for &name in OTHER_ALLOWED {
        by_name.insert(name, spec(name, name, Class::Chain, None));
    }
    by_name.insert(
        "kengate_getTransactionStatus",
        spec(
            "kengate_getTransactionStatus",
            "kengate_getTransactionStatus",
            Class::TxStatus,
            None,
        ),
    );
    for &(name, class) in OTHER_DENIED {
        by_name.insert(name, spec(name, name, class, Some(Deny::Operator)));
    }
    for name in allow {
        match by_name.get_mut(name.as_str()) {
            Some(s) => s.denied = None,
            None => {
                let n = leak(name.clone());
                by_name.insert(n, spec(n, n, Class::Chain, None));
            }
        }
    }
    for name in deny {
        match by_name.get_mut(name.as_str()) {
            Some(s) => s.denied = Some(Deny::Config),
            None => {
                let n = leak(name.clone());
                by_name.insert(n, spec(n, n, Class::Chain, Some(Deny::Config)));
            }
        }
    }
    by_name
}

fn spec(name: &'static str, upstream: &'static str, class: Class, denied: Option<Deny>) -> MethodSpec {
    MethodSpec {
        name,
        upstream,
        shared: upstream,
        class,
        denied,
    }
}

/// Table names live for the whole process: leaking them lets every lookup hand out
/// `&'static str` labels with no allocation on the request path. Interned, so the tables a
/// reload builds again reuse the names already leaked (only new `[methods]` names add any).
fn leak(s: String) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&name) = names.get(s.as_str()) {
        return name;
    }
    let name: &'static str = Box::leak(s.into_boxed_str());
    names.insert(name);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MethodTable {
        MethodTable::new(
            &["debug_traceTransaction".into(), "admin_peers".into()],
            &["eth_chainId".into()],
        )
    }

    #[test]
    fn namespaces_resolve_to_one_class() {
        let t = table();
        let check = |m: &str, class: Class, upstream: &str| match t.lookup(m, Dialect::Klaytn) {
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
        check("eth_estimateGas", opt(1, NH), "eth_estimateGas");
        check("klay_getCouncil", opt(0, N), "klay_getCouncil");
        check("klay_recoverFromMessage", at(3, N), "klay_recoverFromMessage");
        check("klay_chainID", Class::Chain, "klay_chainID");
        check("debug_traceTransaction", Class::ByHash, "debug_traceTransaction");
        check("admin_peers", Class::Chain, "admin_peers");
    }

    #[test]
    fn required_block_arguments_are_never_filled() {
        let t = MethodTable::new(&[], &[]);
        // Non-pointer Go arguments in Klaytn v1.12.1: the node answers "missing value".
        for m in [
            "klay_getBalance",
            "eth_call",
            "klay_getBlockReceipts",
            "eth_getBlockTransactionCountByNumber",
            "eth_getUncleCountByBlockNumber",
            "klay_forkStatus",
            "klay_getBlockWithConsensusInfoByNumber",
            "eth_feeHistory",
        ] {
            let Lookup::Allowed(MethodSpec {
                class: Class::AtBlock(arg),
                ..
            }) = t.lookup(m, Dialect::Klaytn)
            else {
                panic!("{m}")
            };
            assert!(!arg.fill, "{m}");
        }
    }

    #[test]
    fn default_policy() {
        let t = table();
        assert_eq!(
            t.lookup("debug_traceBlockByNumber", Dialect::Klaytn),
            Lookup::Denied(Deny::Operator)
        );
        assert_eq!(
            t.lookup("debug_setHead", Dialect::Klaytn),
            Lookup::Denied(Deny::Operator)
        );
        assert_eq!(t.lookup("eth_chainId", Dialect::Klaytn), Lookup::Denied(Deny::Config));
        assert_eq!(
            t.lookup("personal_unlockAccount", Dialect::Klaytn),
            Lookup::Denied(Deny::NodeKey)
        );
        for m in [
            "klay_sendTransaction",
            "kaia_sendTransactionAsFeePayer",
            "eth_sendTransaction",
            "klay_sign",
            "eth_signTransaction",
            "klay_accounts",
            "eth_accounts",
            "eth_resend",
        ] {
            assert_eq!(t.lookup(m, Dialect::Klaytn), Lookup::Denied(Deny::NodeKey), "{m}");
        }
        assert_eq!(
            t.lookup("eth_setPublicKlayAPI", Dialect::Klaytn),
            Lookup::Denied(Deny::Internal)
        );
        assert_eq!(t.lookup("eth_getAccount", Dialect::Klaytn), Lookup::Unknown);
        assert_eq!(t.lookup("klay_nope", Dialect::Klaytn), Lookup::Unknown);
        for m in [
            "net_version",
            "net_peerCountByType",
            "klay_sha3",
            "klay_recoverFromMessage",
            "klay_clientVersion",
            "eth_getHashrate",
            "eth_pendingTransactions",
            "eth_fillTransaction",
            "eth_submitWork",
            "eth_submitHashrate",
        ] {
            assert!(matches!(t.lookup(m, Dialect::Klaytn), Lookup::Allowed(_)), "{m}");
        }
        assert!(matches!(
            t.lookup("klay_sendRawTransaction", Dialect::Klaytn),
            Lookup::Allowed(MethodSpec {
                class: Class::Write(WriteKind::Raw),
                ..
            })
        ));
    }

    #[test]
    fn kaia_sends_kaia_natively_and_knows_v2_rows() {
        let t = MethodTable::new(&[], &[]);
        let kaia = |m: &str| match t.lookup(m, Dialect::Kaia) {
            Lookup::Allowed(s) => s,
            other => panic!("{m}: {other:?}"),
        };
        assert_eq!(kaia("kaia_getBalance").upstream, "kaia_getBalance");
        assert_eq!(kaia("kaia_getBalance").shared, "klay_getBalance");
        assert_eq!(kaia("klay_getBalance").upstream, "klay_getBalance");
        assert_eq!(kaia("eth_getBalance").upstream, "eth_getBalance");
        // v2 takes a block for estimateGas; v1 does not (filling one in would be refused)
        assert_eq!(kaia("kaia_estimateGas").class, opt(1, NH));
        let Lookup::Allowed(v1) = t.lookup("klay_estimateGas", Dialect::Klaytn) else {
            panic!()
        };
        assert_eq!(v1.class, Class::Chain);
        // v2's staking reader requires its block; v1's treats an omitted one as latest
        assert_eq!(kaia("kaia_getStakingInfo").class, at(0, N));
        let Lookup::Allowed(v1) = t.lookup("klay_getStakingInfo", Dialect::Klaytn) else {
            panic!()
        };
        assert_eq!(v1.class, opt(0, N));
        assert_eq!(kaia("kaia_getTotalSupply").class, opt(0, N));
        assert_eq!(kaia("kaia_getBlsInfos").class, at(0, N));
        assert_eq!(kaia("kaia_getActiveAddressFromRegistry").class, at(1, N));
        assert_eq!(kaia("eth_getBlobSidecars").class, at(0, N));
        assert_eq!(kaia("eth_getBlobSidecarByTxHash").class, Class::ByHash);
        assert_eq!(kaia("kaia_sendRawTransactions").class, Class::Write(WriteKind::RawMany));
        assert_eq!(kaia("eth_blobBaseFee").class, Class::Chain);
        // gone in v2: the node answers "does not exist", and so does kengate
        assert_eq!(t.lookup("eth_setPublicKlayAPI", Dialect::Kaia), Lookup::Unknown);
        assert_eq!(t.lookup("kaia_doEstimateGas", Dialect::Kaia), Lookup::Unknown);
        assert_eq!(t.lookup("eth_events", Dialect::Kaia), Lookup::Denied(Deny::Internal));
        assert_eq!(t.lookup("eth_blobBaseFee", Dialect::Klaytn), Lookup::Unknown);
        // new namespaces are refused until allowed
        assert_eq!(
            t.lookup("auction_submitBid", Dialect::Kaia),
            Lookup::Denied(Deny::Operator)
        );
        let allowed = MethodTable::new(&["auction_submitBid".into()], &[]);
        assert!(matches!(
            allowed.lookup("auction_submitBid", Dialect::Kaia),
            Lookup::Allowed(_)
        ));
    }

    #[test]
    fn names_are_interned_across_rebuilds() {
        let a = MethodTable::new(&[], &[]);
        let b = MethodTable::new(&[], &[]);
        let (Lookup::Allowed(x), Lookup::Allowed(y)) = (
            a.lookup("kaia_getBalance", Dialect::Kaia),
            b.lookup("kaia_getBalance", Dialect::Kaia),
        ) else {
            panic!()
        };
        assert!(std::ptr::eq(x.name, y.name));
    }
}
