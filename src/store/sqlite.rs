//! The embedded store: one SQLite file (WAL mode) under the data dir, created on first start,
//! nothing to install. Records are a JSON document plus the columns queries filter and sort on.
//! Access keys live in `access_keys`; `counters.keys_version` is bumped in the same transaction
//! as every key change, so a running kengate notices a change made by `kengate keys` (another
//! process, another connection) with one cheap read.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};

use super::{KeyRecord, Store, StoreError, TxPage, TxQuery, TxRecord, TxStatus};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS txs (
    hash       TEXT PRIMARY KEY,
    sender     TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_created ON txs (created_ms DESC, hash DESC);
CREATE INDEX IF NOT EXISTS txs_sender ON txs (sender, created_ms DESC, hash DESC);
CREATE INDEX IF NOT EXISTS txs_status ON txs (status, created_ms DESC, hash DESC);
";

const KEYS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS access_keys (
    id     TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// SQLite behind a mutex (one connection; SQLite serializes writers anyway).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn engine(e: rusqlite::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine(format!("{}: {e}", dir.display())))?;
        }
        Self::init(Connection::open(path).map_err(engine)?)
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(engine)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        // WAL + NORMAL: durable across a process crash (kill -9), fast appends.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(engine)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(engine)?;
        conn.execute_batch(SCHEMA).map_err(engine)?;
        conn.execute_batch(KEYS_SCHEMA).map_err(engine)?;
        // The change sequence (`txs_changed_after`), added to stores made before it.
        let has_changed: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('txs') WHERE name = 'changed'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(engine)?
            > 0;
        if !has_changed {
            conn.execute_batch("ALTER TABLE txs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;")
                .map_err(engine)?;
        }
        conn.execute_batch("CREATE INDEX IF NOT EXISTS txs_changed ON txs (changed);")
            .map_err(engine)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn decode(json: String) -> Result<TxRecord, StoreError> {
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Cursor = "<created_ms>:<hash>" of the last item of a page.
fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (ms, hash) = c.split_once(':')?;
    Some((ms.parse().ok()?, hash.to_owned()))
}

impl Store for SqliteStore {
    fn put_tx(&self, rec: &TxRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let created = i64::try_from(rec.created_at).unwrap_or(i64::MAX);
        self.conn()
            .execute(
                "INSERT INTO txs (hash, sender, status, created_ms, record, changed)
                 VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(changed), 0) + 1 FROM txs))
                 ON CONFLICT(hash) DO UPDATE SET status = excluded.status, record = excluded.record,
                 changed = excluded.changed",
                params![rec.hash, rec.sender, rec.status.as_str(), created, json],
            )
            .map_err(engine)?;
        Ok(())
    }

    fn txs_changed_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, TxRecord)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT changed, record FROM txs WHERE changed > ?1 ORDER BY changed LIMIT ?2")
            .map_err(engine)?;
        let rows = stmt
            .query_map(
                params![
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(engine)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, json) = row.map_err(engine)?;
            out.push((u64::try_from(seq).unwrap_or(0), decode(json)?));
        }
        Ok(out)
    }

    fn last_tx_change(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COALESCE(MAX(changed), 0) FROM txs", [], |r| r.get(0))
            .map_err(engine)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn get_tx(&self, hash: &str) -> Result<Option<TxRecord>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row("SELECT record FROM txs WHERE hash = ?1", params![hash], |r| r.get(0))
            .optional()
            .map_err(engine)?;
        json.map(decode).transpose()
    }

    fn list_txs(&self, q: &TxQuery) -> Result<TxPage, StoreError> {
        let size = q.size.clamp(1, 1000);
        let (cur_ms, cur_hash) = match q.cursor.as_deref().map(parse_cursor) {
            Some(Some(c)) => (Some(c.0), Some(c.1)),
            Some(None) => return Err(StoreError::Corrupt("bad cursor".into())),
            None => (None, None),
        };
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT record, created_ms, hash FROM txs
                 WHERE (?1 IS NULL OR sender = ?1)
                   AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR created_ms >= ?3)
                   AND (?4 IS NULL OR created_ms < ?4)
                   AND (?5 IS NULL OR created_ms < ?5 OR (created_ms = ?5 AND hash < ?6))
                   AND (?8 IS NULL OR COALESCE(json_extract(record, '$.network'), '') = ?8
                        OR (?9 AND COALESCE(json_extract(record, '$.network'), '') = ''))
                 ORDER BY created_ms DESC, hash DESC
                 LIMIT ?7",
            )
            .map_err(engine)?;
        let to_i64 = |v: Option<u64>| v.map(|x| i64::try_from(x).unwrap_or(i64::MAX));
        let rows = stmt
            .query_map(
                params![
                    q.sender,
                    q.status.map(TxStatus::as_str),
                    to_i64(q.from_time),
                    to_i64(q.to_time),
                    cur_ms,
                    cur_hash,
                    i64::try_from(size + 1).unwrap_or(i64::MAX),
                    q.network,
                    q.untagged,
                ],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
            )
            .map_err(engine)?;
        let mut items = Vec::new();
        let mut last = None;
        for row in rows {
            let (json, ms, hash) = row.map_err(engine)?;
            if items.len() == size {
                return Ok(TxPage {
                    items,
                    cursor: last.map(|(ms, hash): (i64, String)| format!("{ms}:{hash}")),
                });
            }
            items.push(decode(json)?);
            last = Some((ms, hash));
        }
        Ok(TxPage { items, cursor: None })
    }

    fn unfinished_txs(&self) -> Result<Vec<TxRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT record FROM txs WHERE status IN ('Created', 'Submitted', 'Pending') ORDER BY created_ms",
            )
            .map_err(engine)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(engine)?;
        rows.map(|r| r.map_err(engine).and_then(decode)).collect()
    }

    fn put_key(&self, rec: &KeyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn();
        // IMMEDIATE: take the write lock up front, so two processes changing keys wait for each
        // other (busy timeout) instead of failing on a read-to-write upgrade.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(engine)?;
        tx.execute(
            "INSERT INTO access_keys (id, record) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET record = excluded.record",
            params![rec.id, json],
        )
        .map_err(engine)?;
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('keys_version', 1)
             ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )
        .map_err(engine)?;
        tx.commit().map_err(engine)
    }

    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row("SELECT record FROM access_keys WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(engine)?;
        json.map(|j| decode_key(&j)).transpose()
    }

    fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT record FROM access_keys ORDER BY id")
            .map_err(engine)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(engine)?;
        rows.map(|r| r.map_err(engine).and_then(|j| decode_key(&j))).collect()
    }

    fn keys_version(&self) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .conn()
            .query_row("SELECT value FROM counters WHERE name = 'keys_version'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(engine)?;
        Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }
}

fn decode_key(json: &str) -> Result<KeyRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("access key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyScope;

    fn rec(i: u64, sender: &str, status: TxStatus) -> TxRecord {
        // Pairs share a millisecond: the cursor must break ties.
        let mut r = TxRecord::created(format!("0x{i:064x}"), sender.into(), i, "{}".into(), 1000 + i / 2);
        r.status = status;
        r
    }

    #[test]
    fn every_write_is_a_change_read_once_in_order() {
        let s = SqliteStore::in_memory().unwrap();
        assert_eq!(s.last_tx_change().unwrap(), 0);
        let mut a = rec(1, "0xa", TxStatus::Created);
        let b = rec(2, "0xb", TxStatus::Created);
        s.put_tx(&a).unwrap();
        s.put_tx(&b).unwrap();
        a.status = TxStatus::Submitted;
        s.put_tx(&a).unwrap();
        // a's first change is superseded by its latest: b (2), then a (3).
        let all = s.txs_changed_after(0, 10).unwrap();
        let got: Vec<(u64, &str, TxStatus)> = all.iter().map(|(n, r)| (*n, r.sender.as_str(), r.status)).collect();
        assert_eq!(
            got,
            vec![(2, "0xb", TxStatus::Created), (3, "0xa", TxStatus::Submitted)]
        );
        assert_eq!(s.last_tx_change().unwrap(), 3);
        assert_eq!(s.txs_changed_after(2, 10).unwrap().len(), 1);
        assert_eq!(s.txs_changed_after(0, 1).unwrap().len(), 1);
        assert!(s.txs_changed_after(3, 10).unwrap().is_empty());
    }

    #[test]
    fn put_get_update() {
        let s = SqliteStore::in_memory().unwrap();
        let mut r = rec(1, "0xa", TxStatus::Created);
        s.put_tx(&r).unwrap();
        r.status = TxStatus::InBlock;
        r.block_number = Some(7);
        s.put_tx(&r).unwrap();
        assert_eq!(s.get_tx(&r.hash).unwrap(), Some(r));
        assert_eq!(s.get_tx("0xnone").unwrap(), None);
    }

    #[test]
    fn pages_cover_everything_once_newest_first() {
        let s = SqliteStore::in_memory().unwrap();
        for i in 0..25 {
            let status = if i % 3 == 0 {
                TxStatus::Rejected
            } else {
                TxStatus::InBlock
            };
            s.put_tx(&rec(i, if i % 2 == 0 { "0xa" } else { "0xb" }, status))
                .unwrap();
        }
        let mut q = TxQuery {
            size: 4,
            ..TxQuery::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = s.list_txs(&q).unwrap();
            seen.extend(page.items.iter().map(|r| r.nonce));
            match page.cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).rev().collect::<Vec<_>>());

        let q = TxQuery {
            sender: Some("0xa".into()),
            status: Some(TxStatus::Rejected),
            size: 100,
            ..TxQuery::default()
        };
        let got: Vec<u64> = s.list_txs(&q).unwrap().items.iter().map(|r| r.nonce).collect();
        assert_eq!(got, vec![24, 18, 12, 6, 0]);
        let q = TxQuery {
            from_time: Some(1005),
            to_time: Some(1007),
            size: 100,
            ..TxQuery::default()
        };
        let got: Vec<u64> = s.list_txs(&q).unwrap().items.iter().map(|r| r.nonce).collect();
        assert_eq!(got, vec![13, 12, 11, 10]);
        assert!(s
            .list_txs(&TxQuery {
                cursor: Some("x".into()),
                size: 1,
                ..TxQuery::default()
            })
            .is_err());
    }

    #[test]
    fn unfinished_and_reopen() {
        let dir = std::env::temp_dir().join(format!("kengate-store-{}", std::process::id()));
        let path = dir.join("kengate.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.put_tx(&rec(1, "0xa", TxStatus::Submitted)).unwrap();
            s.put_tx(&rec(2, "0xa", TxStatus::InBlock)).unwrap();
            s.put_tx(&rec(3, "0xa", TxStatus::Created)).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let left: Vec<u64> = s.unfinished_txs().unwrap().iter().map(|r| r.nonce).collect();
        assert_eq!(left, vec![1, 3]);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            secret_sha256: "00".repeat(32),
            enabled: true,
            created_at: 1,
            expires_at: None,
            revoked_at: None,
            scope: KeyScope {
                label: "test".into(),
                networks: vec![],
                methods: vec![],
                ip_allow: vec![],
                rps: None,
                burst: None,
            },
        }
    }

    #[test]
    fn keys_round_trip_and_bump_the_version() {
        let s = SqliteStore::in_memory().unwrap();
        assert_eq!(s.keys_version().unwrap(), 0);
        assert!(s.list_keys().unwrap().is_empty());
        let mut k = key("b");
        s.put_key(&k).unwrap();
        s.put_key(&key("a")).unwrap();
        assert_eq!(s.keys_version().unwrap(), 2);
        k.revoked_at = Some(5);
        s.put_key(&k).unwrap();
        assert_eq!(s.keys_version().unwrap(), 3);
        assert_eq!(s.get_key("b").unwrap(), Some(k));
        assert_eq!(s.get_key("c").unwrap(), None);
        let ids: Vec<String> = s.list_keys().unwrap().into_iter().map(|k| k.id).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn another_connection_sees_key_changes() {
        let dir = std::env::temp_dir().join(format!("kengate-store-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("kengate.db");
        let running = SqliteStore::open(&path).unwrap();
        let v0 = running.keys_version().unwrap();
        let cli = SqliteStore::open(&path).unwrap();
        cli.put_key(&key("k1")).unwrap();
        assert!(running.keys_version().unwrap() > v0);
        assert_eq!(running.get_key("k1").unwrap().map(|k| k.id), Some("k1".into()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
