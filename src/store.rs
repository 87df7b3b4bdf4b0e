//! One storage interface for what kengate persists, so the engine can change without its
//! callers: the embedded SQLite file by default (PostgreSQL later for multi-replica
//! deployments). Today it holds the transaction lifecycle; the token index, webhook outbox and
//! audit data will live behind the same interface. It also holds the access keys managed by
//! `kengate keys` and the admin API (another process may change them while kengate runs).
//!
//! Calls are blocking (SQLite is in-process and fast); async callers use `spawn_blocking`.
//! Architecture invariant: nothing on the read hot path touches the store.

mod sqlite;

pub use sqlite::SqliteStore;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::KeyScope;

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The engine failed.
    #[error("store: {0}")]
    Engine(String),
    /// A stored record could not be read back.
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
}

/// A transaction's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum TxStatus {
    /// Received by kengate.
    Created,
    /// Accepted by a node.
    Submitted,
    /// Seen in a node's pool.
    Pending,
    /// Mined (receipt seen).
    InBlock,
    /// Refused by the node; the error is kept.
    Rejected,
    /// Gone without a block, or replaced by another tx with the same nonce.
    Dropped,
}

impl TxStatus {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Created => "Created",
            TxStatus::Submitted => "Submitted",
            TxStatus::Pending => "Pending",
            TxStatus::InBlock => "InBlock",
            TxStatus::Rejected => "Rejected",
            TxStatus::Dropped => "Dropped",
        }
    }

    /// Parses an API/store name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            TxStatus::Created,
            TxStatus::Submitted,
            TxStatus::Pending,
            TxStatus::InBlock,
            TxStatus::Rejected,
            TxStatus::Dropped,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// No further transition is expected.
    pub fn is_final(self) -> bool {
        matches!(self, TxStatus::InBlock | TxStatus::Rejected | TxStatus::Dropped)
    }
}

/// Everything kengate records about one transaction that passed through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    /// Tx hash, `0x` lowercase hex.
    pub hash: String,
    /// Sender, `0x` lowercase hex.
    pub sender: String,
    /// Nonce.
    pub nonce: u64,
    /// Current state.
    pub status: TxStatus,
    /// Name of the node that accepted it (its home node at the time; a URL in records made
    /// before node names).
    pub node: Option<String>,
    /// The upstream request that submitted it (for re-submission after a restart).
    pub request: String,
    /// Milliseconds since the Unix epoch at which each state was reached.
    pub created_at: u64,
    /// See `created_at`.
    pub submitted_at: Option<u64>,
    /// See `created_at`.
    pub pending_at: Option<u64>,
    /// See `created_at`.
    pub in_block_at: Option<u64>,
    /// See `created_at`.
    pub rejected_at: Option<u64>,
    /// See `created_at`.
    pub dropped_at: Option<u64>,
    /// Block it was mined in.
    pub block_number: Option<u64>,
    /// Receipt status: true = success.
    pub success: Option<bool>,
    /// Gas used, from the receipt.
    pub gas_used: Option<u64>,
    /// The node's error (Rejected) or why it was dropped.
    pub error: Option<String>,
    /// The network it was sent on (empty in records from before networks: the first one's).
    #[serde(default)]
    pub network: String,
    /// Submissions that failed at the transport level before a node accepted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The access key it was sent with (auth on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A failed submission attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The node's name.
    pub node: String,
    /// What went wrong (`timeout`, `io`, `connect`, `status`, `bad_reply`).
    pub outcome: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

impl TxRecord {
    /// A record in the `Created` state.
    pub fn created(hash: String, sender: String, nonce: u64, request: String, at: u64) -> Self {
        Self {
            hash,
            sender,
            nonce,
            status: TxStatus::Created,
            node: None,
            request,
            created_at: at,
            submitted_at: None,
            pending_at: None,
            in_block_at: None,
            rejected_at: None,
            dropped_at: None,
            block_number: None,
            success: None,
            gas_used: None,
            error: None,
            network: String::new(),
            attempts: Vec::new(),
            key: None,
        }
    }
}

/// A history query; all filters optional. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxQuery {
    /// Only this sender (`0x` lowercase hex).
    pub sender: Option<String>,
    /// Only this state.
    pub status: Option<TxStatus>,
    /// Created at or after (ms).
    pub from_time: Option<u64>,
    /// Created before (ms).
    pub to_time: Option<u64>,
    /// Only this network's records.
    pub network: Option<String>,
    /// With `network`: also records without a network (written before networks existed).
    pub untagged: bool,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<String>,
    /// Page size.
    pub size: usize,
}

/// One page of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxPage {
    /// Records, newest first.
    pub items: Vec<TxRecord>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub cursor: Option<String>,
}

/// An access key as stored. The secret itself is never stored, only its SHA-256 (see
/// `access::credential` for why a plain hash suffices); `Debug` leaves the hash out too.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id (`[A-Za-z0-9_-]{1,64}`; generated ones look like `KG` + 20 upper-case alphanumerics).
    pub id: String,
    /// SHA-256 of the secret, 64 lowercase hex digits.
    pub secret_sha256: String,
    /// What it may do (stored inline: `label`, `networks`, `methods`, ...).
    #[serde(flatten)]
    pub scope: KeyScope,
    /// A disabled key is refused.
    pub enabled: bool,
    /// Unix time (s) of creation.
    pub created_at: i64,
    /// Unix time (s) after which it is refused.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Unix time (s) of revocation; a revoked key is refused for good.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// The storage interface.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts or replaces a transaction record.
    fn put_tx(&self, rec: &TxRecord) -> Result<(), StoreError>;
    /// One record by hash.
    fn get_tx(&self, hash: &str) -> Result<Option<TxRecord>, StoreError>;
    /// History, newest first, cursor-paginated.
    fn list_txs(&self, q: &TxQuery) -> Result<TxPage, StoreError>;
    /// Records not yet in a final state (re-checked after a restart).
    fn unfinished_txs(&self) -> Result<Vec<TxRecord>, StoreError>;
    /// Records written after change number `seq`, oldest change first (at most `limit`), each
    /// with its change number: every `put_tx` gives its record the next one, so a reader that
    /// keeps the last number it handled sees every change once it looks again (the webhooks'
    /// transaction-status feed).
    fn txs_changed_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, TxRecord)>, StoreError>;
    /// The latest change number (0 when nothing was written).
    fn last_tx_change(&self) -> Result<u64, StoreError>;

    /// Inserts or replaces an access key, and bumps [`Store::keys_version`] in the same
    /// transaction.
    fn put_key(&self, rec: &KeyRecord) -> Result<(), StoreError>;
    /// One access key by id.
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Every access key (revoked ones included), by id.
    fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// A number that changes whenever a key changes, in this process or another one sharing
    /// the store (cheap: polled every second to pick up `kengate keys` changes).
    fn keys_version(&self) -> Result<u64, StoreError>;
}
