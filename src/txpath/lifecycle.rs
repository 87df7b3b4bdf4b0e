//! Transaction lifecycle: every tx that passes through kengate is recorded in the store with
//! a timestamp per state — Created → Submitted → Pending → InBlock, or Rejected / Dropped —
//! so it survives restarts and can be queried (`kengate_getTransactionStatus`, `/v1/tx`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::routing::WriteTx;
use crate::store::{Attempt, Store, StoreError, TxPage, TxQuery, TxRecord, TxStatus};

tokio::task_local! {
    /// The access key of the request being served (set by the server around a request when
    /// auth is on), recorded with the txs it sends.
    pub static ACCESS_KEY: std::sync::Arc<str>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Kept here for the modules that read them through `txpath::lifecycle`; defined in
/// [`crate::jsonrpc`], the one place for hex.
pub use crate::jsonrpc::{hex, unhex};

/// Receipt facts recorded with InBlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mined {
    /// Block number.
    pub block: u64,
    /// Receipt status.
    pub success: bool,
    /// Gas used.
    pub gas_used: u64,
}

/// A state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// A node accepted it.
    Submitted {
        /// The node's name.
        node: String,
    },
    /// Seen in a node's pool.
    Pending,
    /// Mined.
    InBlock(Mined),
    /// The node refused it.
    Rejected {
        /// The node's error object, verbatim.
        error: String,
    },
    /// An attempt to submit it failed at the transport level (it was re-sent elsewhere).
    Attempt {
        /// The node's name.
        node: String,
        /// What went wrong (`timeout`, `io`, `connect`, `status`, `bad_reply`).
        outcome: String,
    },
    /// Gone without a block.
    Dropped {
        /// Why.
        reason: String,
    },
}

/// Failed attempts kept per record (a tx is re-sent to each node at most once or twice).
const MAX_ATTEMPTS: usize = 16;

/// Applies a transition; final states are never left, and a tx that reached a state keeps
/// its first timestamp for it.
pub fn apply(rec: &mut TxRecord, t: Transition, at: u64) {
    if rec.status.is_final() {
        return;
    }
    match t {
        Transition::Attempt { node, outcome } => {
            if rec.attempts.len() < MAX_ATTEMPTS {
                rec.attempts.push(Attempt { node, outcome, at });
            }
        }
        Transition::Submitted { node } => {
            rec.node = Some(node);
            rec.submitted_at.get_or_insert(at);
            if rec.status == TxStatus::Created {
                rec.status = TxStatus::Submitted;
            }
        }
        Transition::Pending => {
            rec.pending_at.get_or_insert(at);
            if matches!(rec.status, TxStatus::Created | TxStatus::Submitted) {
                rec.status = TxStatus::Pending;
            }
        }
        Transition::InBlock(m) => {
            rec.status = TxStatus::InBlock;
            rec.in_block_at = Some(at);
            rec.block_number = Some(m.block);
            rec.success = Some(m.success);
            rec.gas_used = Some(m.gas_used);
        }
        Transition::Rejected { error } => {
            rec.status = TxStatus::Rejected;
            rec.rejected_at = Some(at);
            rec.error = Some(error);
        }
        Transition::Dropped { reason } => {
            rec.status = TxStatus::Dropped;
            rec.dropped_at = Some(at);
            rec.error = Some(reason);
        }
    }
}

/// The lifecycle recorder of one network over the shared store. Store calls run on the
/// blocking pool.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    store: Arc<dyn Store>,
    /// Records are tagged with it, and only its records are seen.
    network: String,
    /// The first network also owns untagged records (written before networks existed).
    first: bool,
}

impl Lifecycle {
    /// A recorder writing to `store` for `network`.
    pub fn new(store: Arc<dyn Store>, network: &str, first: bool) -> Self {
        Self {
            store,
            network: network.to_owned(),
            first,
        }
    }

    fn owns(&self, rec: &TxRecord) -> bool {
        rec.network == self.network || (self.first && rec.network.is_empty())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Engine(e.to_string()))?
    }

    /// Records a tx as received (before it is forwarded: a crash after this loses nothing).
    /// A tx sent again keeps its record.
    pub async fn created(&self, w: &WriteTx, request: &[u8]) -> Result<(), StoreError> {
        let request = String::from_utf8_lossy(request).into_owned();
        let mut rec = TxRecord::created(hex(&w.hash), hex(&w.sender), w.nonce, request, now_ms());
        rec.network = self.network.clone();
        rec.key = ACCESS_KEY.try_with(|k| k.to_string()).ok();
        self.blocking(move |s| match s.get_tx(&rec.hash)? {
            Some(_) => Ok(()),
            None => s.put_tx(&rec),
        })
        .await
    }

    /// Applies a transition to the tx `hash` (unknown hashes are ignored).
    pub async fn transition(&self, hash: [u8; 32], t: Transition) -> Result<(), StoreError> {
        let at = now_ms();
        self.blocking(move |s| {
            let Some(mut rec) = s.get_tx(&hex(&hash))? else {
                return Ok(());
            };
            let before = rec.clone();
            apply(&mut rec, t, at);
            if rec != before {
                s.put_tx(&rec)?;
            }
            Ok(())
        })
        .await
    }

    /// One record.
    pub async fn get(&self, hash: String) -> Result<Option<TxRecord>, StoreError> {
        let rec = self.blocking(move |s| s.get_tx(&hash.to_ascii_lowercase())).await?;
        Ok(rec.filter(|r| self.owns(r)))
    }

    /// History of this network.
    pub async fn list(&self, mut q: TxQuery) -> Result<TxPage, StoreError> {
        q.network = Some(self.network.clone());
        q.untagged = self.first;
        self.blocking(move |s| s.list_txs(&q)).await
    }

    /// This network's records not in a final state (re-checked after a restart).
    pub async fn unfinished(&self) -> Result<Vec<TxRecord>, StoreError> {
        let all = self.blocking(|s| s.unfinished_txs()).await?;
        Ok(all.into_iter().filter(|r| self.owns(r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn lc() -> Lifecycle {
        Lifecycle::new(Arc::new(SqliteStore::in_memory().unwrap()), "klaytn", true)
    }

    const W: WriteTx = WriteTx {
        sender: [1; 20],
        nonce: 4,
        hash: [2; 32],
    };

    #[tokio::test]
    async fn each_network_sees_only_its_own_records() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let cypress = Lifecycle::new(store.clone(), "cypress", true);
        let baobab = Lifecycle::new(store.clone(), "baobab", false);
        baobab.created(&W, b"{}").await.unwrap();
        let h = hex(&W.hash);
        assert_eq!(baobab.get(h.clone()).await.unwrap().unwrap().network, "baobab");
        assert!(cypress.get(h.clone()).await.unwrap().is_none());
        assert_eq!(baobab.unfinished().await.unwrap().len(), 1);
        assert!(cypress.unfinished().await.unwrap().is_empty());
        let q = TxQuery {
            size: 10,
            ..TxQuery::default()
        };
        assert_eq!(baobab.list(q.clone()).await.unwrap().items.len(), 1);
        assert!(cypress.list(q.clone()).await.unwrap().items.is_empty());
        // A record from before networks existed belongs to the first network.
        let old = TxRecord::created("0x03".into(), "0x04".into(), 0, "{}".into(), 1);
        store.put_tx(&old).unwrap();
        assert!(cypress.get("0x03".into()).await.unwrap().is_some());
        assert!(baobab.get("0x03".into()).await.unwrap().is_none());
        assert_eq!(cypress.list(q).await.unwrap().items.len(), 1);
    }

    #[tokio::test]
    async fn a_tx_walks_through_its_states() {
        let l = lc();
        l.created(&W, b"{\"req\":1}").await.unwrap();
        let h = hex(&W.hash);
        assert_eq!(l.get(h.clone()).await.unwrap().unwrap().status, TxStatus::Created);
        l.transition(
            W.hash,
            Transition::Submitted {
                node: "http://n1/".into(),
            },
        )
        .await
        .unwrap();
        l.transition(W.hash, Transition::Pending).await.unwrap();
        l.transition(
            W.hash,
            Transition::InBlock(Mined {
                block: 9,
                success: true,
                gas_used: 21000,
            }),
        )
        .await
        .unwrap();
        // Final: a late Dropped does not change it.
        l.transition(W.hash, Transition::Dropped { reason: "x".into() })
            .await
            .unwrap();
        let r = l.get(h.to_uppercase().replace("0X", "0x")).await.unwrap().unwrap();
        assert_eq!(r.status, TxStatus::InBlock);
        assert_eq!(
            (r.block_number, r.success, r.gas_used),
            (Some(9), Some(true), Some(21000))
        );
        assert!(r.created_at <= r.submitted_at.unwrap() && r.submitted_at <= r.in_block_at);
        assert_eq!(r.node.as_deref(), Some("http://n1/"));
        assert_eq!(r.request, "{\"req\":1}");
        assert!(l.unfinished().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn rejected_keeps_the_error_and_resending_keeps_the_record() {
        let l = lc();
        l.created(&W, b"{}").await.unwrap();
        l.transition(
            W.hash,
            Transition::Rejected {
                error: "nonce too low".into(),
            },
        )
        .await
        .unwrap();
        l.created(&W, b"{}").await.unwrap();
        let r = l.get(hex(&W.hash)).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.error.as_deref()),
            (TxStatus::Rejected, Some("nonce too low"))
        );
        l.transition([9; 32], Transition::Pending).await.unwrap(); // unknown: ignored
    }
}
