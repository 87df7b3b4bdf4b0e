//! The webhooks' SQLite file: the webhooks, the outbox of their events (written in the same
//! transaction as the position of the feed that made them, so a crash loses none and makes
//! none twice), each delivery attempt, and the balance sides of threshold webhooks.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::model::{Event, Filter, Hook, Kind, State};
use crate::methods::Dialect;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wh_hooks (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, network TEXT NOT NULL, url TEXT NOT NULL,
    kind TEXT NOT NULL, filter TEXT NOT NULL, secret TEXT NOT NULL, description TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, from_block INTEGER NOT NULL, created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wh_hooks_owner ON wh_hooks (owner, created, id);
CREATE TABLE IF NOT EXISTS wh_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, hook TEXT NOT NULL,
    block INTEGER, body TEXT NOT NULL, created INTEGER NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, done_at INTEGER
);
CREATE INDEX IF NOT EXISTS wh_events_hook ON wh_events (hook, state, seq);
CREATE INDEX IF NOT EXISTS wh_events_pending ON wh_events (hook, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS wh_events_done ON wh_events (done_at) WHERE state != 'pending';
CREATE TABLE IF NOT EXISTS wh_attempts (
    event TEXT NOT NULL, attempt INTEGER NOT NULL, at INTEGER NOT NULL, status INTEGER,
    latency_ms INTEGER NOT NULL, error TEXT, PRIMARY KEY (event, attempt)
);
CREATE TABLE IF NOT EXISTS wh_feeds (
    net TEXT NOT NULL, feed TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (net, feed)
);
CREATE TABLE IF NOT EXISTS wh_sides (hook TEXT PRIMARY KEY, above INTEGER NOT NULL);
";

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("webhook store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file's directory.
    #[error("webhook store: {0}")]
    Io(String),
    /// A stored row that does not read back.
    #[error("webhook store: a stored webhook does not read back: {0}")]
    Corrupt(String),
}

/// An event in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Outbox order.
    pub seq: i64,
    /// Its id.
    pub id: String,
    /// Its webhook.
    pub hook: String,
    /// The envelope.
    pub body: String,
    /// Attempts so far.
    pub attempts: u32,
    /// `pending`, `delivered` or `rejected`.
    pub state: String,
    /// When it was made (unix ms).
    pub created: u64,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The event.
    pub event: String,
    /// 1, 2, …
    pub attempt: u32,
    /// Unix ms.
    pub at: u64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// What went wrong.
    pub error: Option<String>,
}

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// Not retried (a 4xx other than 429, a redirect): the event is set aside, the next one goes.
    Rejected,
    /// Tried again at `next_at` (unix ms).
    Retry {
        /// When.
        next_at: u64,
    },
    /// The retries ran out: the webhook is paused as failing, the event kept at the head.
    GiveUp {
        /// Why, for the webhook's `reason`.
        reason: String,
    },
}

/// The webhooks' database.
#[derive(Debug)]
pub struct HookDb {
    conn: Mutex<Connection>,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl HookDb {
    /// Opens (creating) the file at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Io(format!("{}: {e}", dir.display())))?;
        }
        Self::init(Connection::open(path)?)
    }

    /// In memory (tests).
    pub fn in_memory() -> Result<Self, DbError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, DbError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a webhook.
    pub fn insert(&self, h: &Hook) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO wh_hooks (id, owner, network, url, kind, filter, secret, description, state, reason, \
             from_block, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                h.id,
                h.owner,
                h.network,
                h.url,
                h.kind.as_str(),
                h.filter.to_json().to_string(),
                h.secret,
                h.description,
                h.state.as_str(),
                h.reason,
                int(h.from_block),
                int(h.created),
                int(h.updated)
            ],
        )?;
        Ok(())
    }

    /// Replaces a webhook's url, filter, description, secret, state and reason.
    pub fn update(&self, h: &Hook) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE wh_hooks SET url = ?2, filter = ?3, secret = ?4, description = ?5, state = ?6, reason = ?7, \
             updated = ?8 WHERE id = ?1",
            params![
                h.id,
                h.url,
                h.filter.to_json().to_string(),
                h.secret,
                h.description,
                h.state.as_str(),
                h.reason,
                int(h.updated)
            ],
        )?;
        Ok(())
    }

    /// Forgets a webhook, its events and their attempts.
    pub fn delete(&self, id: &str) -> Result<bool, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM wh_attempts WHERE event IN (SELECT id FROM wh_events WHERE hook = ?1)",
            params![id],
        )?;
        tx.execute("DELETE FROM wh_events WHERE hook = ?1", params![id])?;
        tx.execute("DELETE FROM wh_sides WHERE hook = ?1", params![id])?;
        let n = tx.execute("DELETE FROM wh_hooks WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// One webhook.
    pub fn hook(&self, id: &str, dialect: impl Fn(&str) -> Dialect) -> Result<Option<Hook>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {HOOK_COLUMNS} FROM wh_hooks WHERE id = ?1"))?;
        let row = stmt.query_row(params![id], raw_hook).optional()?;
        row.map(|r| r.into_hook(&dialect)).transpose()
    }

    /// The webhooks of `owner` (all when `None`), oldest first.
    pub fn hooks(&self, owner: Option<&str>, dialect: impl Fn(&str) -> Dialect) -> Result<Vec<Hook>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {HOOK_COLUMNS} FROM wh_hooks WHERE ?1 IS NULL OR owner = ?1 ORDER BY created, id"
        ))?;
        let rows = stmt.query_map(params![owner], raw_hook)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.into_hook(&dialect)?);
        }
        Ok(out)
    }

    /// How many webhooks `owner` has.
    pub fn count(&self, owner: &str) -> Result<u64, DbError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM wh_hooks WHERE owner = ?1", params![owner], |r| {
                r.get(0)
            })?;
        Ok(uint(n))
    }

    /// Where feed `feed` of `net` stopped.
    pub fn position(&self, net: &str, feed: &str) -> Result<Option<u64>, DbError> {
        let p: Option<i64> = self
            .conn()
            .query_row(
                "SELECT position FROM wh_feeds WHERE net = ?1 AND feed = ?2",
                params![net, feed],
                |r| r.get(0),
            )
            .optional()?;
        Ok(p.map(uint))
    }

    /// Puts `events` in the outbox (an id already there is left as it is), moves feed
    /// `feed` of `net` to `position` and records balance `sides`, in one transaction.
    pub fn commit(
        &self,
        net: &str,
        feed: &str,
        position: u64,
        events: &[Event],
        sides: &[(String, bool)],
        now: u64,
    ) -> Result<usize, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR IGNORE INTO wh_events (id, hook, block, body, created, state, next_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?5)",
            )?;
            for e in events {
                added += put.execute(params![e.id, e.hook, e.block.map(int), e.body, int(now)])?;
            }
            let mut side = tx.prepare_cached(
                "INSERT INTO wh_sides (hook, above) VALUES (?1, ?2) ON CONFLICT (hook) DO UPDATE SET above = excluded.above",
            )?;
            for (hook, above) in sides {
                side.execute(params![hook, above])?;
            }
            tx.execute(
                "INSERT INTO wh_feeds (net, feed, position) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (net, feed) DO UPDATE SET position = excluded.position",
                params![net, feed, int(position)],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Puts `events` in the outbox outside any feed (a test event).
    pub fn enqueue(&self, events: &[Event], now: u64) -> Result<(), DbError> {
        let conn = self.conn();
        let mut put = conn.prepare_cached(
            "INSERT OR IGNORE INTO wh_events (id, hook, block, body, created, state, next_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?5)",
        )?;
        for e in events {
            put.execute(params![e.id, e.hook, e.block.map(int), e.body, int(now)])?;
        }
        Ok(())
    }

    /// A threshold webhook's last side (`true`: at or above), if it has one.
    pub fn side(&self, hook: &str) -> Result<Option<bool>, DbError> {
        Ok(self
            .conn()
            .query_row("SELECT above FROM wh_sides WHERE hook = ?1", params![hook], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// The oldest undelivered event of each active webhook that is due at `now` (one per
    /// webhook: a webhook's events go in order), at most `limit`, skipping `busy` webhooks.
    pub fn due(&self, now: u64, limit: usize, busy: &[String]) -> Result<Vec<Queued>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT e.seq, e.id, e.hook, e.body, e.attempts, e.state, e.created, e.next_at FROM wh_hooks h \
             JOIN wh_events e ON e.seq = (SELECT MIN(seq) FROM wh_events WHERE hook = h.id AND state = 'pending') \
             WHERE h.state = 'active' ORDER BY e.next_at, e.seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                Queued {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    hook: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                    state: r.get(5)?,
                    created: uint(r.get(6)?),
                },
                uint(r.get(7)?),
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (q, next_at) = r?;
            if next_at <= now && !busy.contains(&q.hook) && out.len() < limit {
                out.push(q);
            }
        }
        Ok(out)
    }

    /// When the next due event is (unix ms), if any active webhook has one.
    pub fn next_due(&self) -> Result<Option<u64>, DbError> {
        let n: Option<i64> = self.conn().query_row(
            "SELECT MIN(e.next_at) FROM wh_hooks h JOIN wh_events e \
             ON e.seq = (SELECT MIN(seq) FROM wh_events WHERE hook = h.id AND state = 'pending') \
             WHERE h.state = 'active'",
            [],
            |r| r.get(0),
        )?;
        Ok(n.map(uint))
    }

    /// Records an attempt at `event` and what follows from it, in one transaction.
    pub fn attempted(&self, a: &Attempt, outcome: &Outcome, hook: &str) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO wh_attempts (event, attempt, at, status, latency_ms, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.event, a.attempt, int(a.at), a.status, int(a.latency_ms), a.error],
        )?;
        match outcome {
            Outcome::Delivered | Outcome::Rejected => {
                let state = if *outcome == Outcome::Delivered {
                    "delivered"
                } else {
                    "rejected"
                };
                tx.execute(
                    "UPDATE wh_events SET state = ?2, attempts = ?3, done_at = ?4 WHERE id = ?1",
                    params![a.event, state, a.attempt, int(a.at)],
                )?;
            }
            Outcome::Retry { next_at } => {
                tx.execute(
                    "UPDATE wh_events SET attempts = ?2, next_at = ?3 WHERE id = ?1",
                    params![a.event, a.attempt, int(*next_at)],
                )?;
            }
            Outcome::GiveUp { reason } => {
                tx.execute(
                    "UPDATE wh_events SET attempts = ?2 WHERE id = ?1",
                    params![a.event, a.attempt],
                )?;
                tx.execute(
                    "UPDATE wh_hooks SET state = 'failing', reason = ?2, updated = ?3 WHERE id = ?1",
                    params![hook, reason, int(a.at)],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes a webhook's undelivered events due now with their attempts reset (resume).
    pub fn restart(&self, hook: &str, now: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE wh_events SET attempts = 0, next_at = ?2 WHERE hook = ?1 AND state = 'pending'",
            params![hook, int(now)],
        )?;
        Ok(())
    }

    /// Makes a webhook's events from `from` (an event id) on undelivered again, in their
    /// order: same envelopes, same ids (receivers de-duplicate on them); how many.
    pub fn replay(&self, hook: &str, from: &str, now: u64) -> Result<Option<usize>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let start: Option<i64> = tx
            .query_row(
                "SELECT seq FROM wh_events WHERE id = ?1 AND hook = ?2",
                params![from, hook],
                |r| r.get(0),
            )
            .optional()?;
        let Some(start) = start else { return Ok(None) };
        let n = tx.execute(
            "UPDATE wh_events SET state = 'pending', attempts = 0, next_at = ?3, done_at = NULL \
             WHERE hook = ?1 AND seq >= ?2",
            params![hook, start, int(now)],
        )?;
        tx.commit()?;
        Ok(Some(n))
    }

    /// A webhook's events, newest first, before `before` (a seq), at most `limit`.
    pub fn events(&self, hook: &str, before: Option<i64>, limit: u32) -> Result<Vec<Queued>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, id, hook, body, attempts, state, created FROM wh_events \
             WHERE hook = ?1 AND (?2 IS NULL OR seq < ?2) ORDER BY seq DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![hook, before, limit], |r| {
            Ok(Queued {
                seq: r.get(0)?,
                id: r.get(1)?,
                hook: r.get(2)?,
                body: r.get(3)?,
                attempts: r.get(4)?,
                state: r.get(5)?,
                created: uint(r.get(6)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The attempts at `event`, in order.
    pub fn attempts(&self, event: &str) -> Result<Vec<Attempt>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT event, attempt, at, status, latency_ms, error FROM wh_attempts WHERE event = ?1 ORDER BY attempt",
        )?;
        let rows = stmt.query_map(params![event], |r| {
            Ok(Attempt {
                event: r.get(0)?,
                attempt: r.get(1)?,
                at: uint(r.get(2)?),
                status: r.get(3)?,
                latency_ms: uint(r.get(4)?),
                error: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets events delivered or set aside before `before` (unix ms) and their attempts; how
    /// many. (A feed never reads a block or a record again once past it, so their ids are not
    /// needed to de-duplicate; replay reaches back as far as what is kept.)
    pub fn prune(&self, before: u64) -> Result<usize, DbError> {
        // In slices, so that the connection is never held long.
        let mut total = 0;
        loop {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let ids: Vec<String> = {
                let mut stmt =
                    tx.prepare_cached("SELECT id FROM wh_events WHERE state != 'pending' AND done_at < ?1 LIMIT 2000")?;
                let rows = stmt.query_map(params![int(before)], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for id in &ids {
                tx.execute("DELETE FROM wh_attempts WHERE event = ?1", params![id])?;
                tx.execute("DELETE FROM wh_events WHERE id = ?1", params![id])?;
            }
            tx.commit()?;
            total += ids.len();
            if ids.len() < 2000 {
                return Ok(total);
            }
        }
    }

    /// Undelivered events (all webhooks), for `/metrics`.
    pub fn backlog(&self) -> Result<u64, DbError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM wh_events WHERE state = 'pending'", [], |r| {
                r.get(0)
            })?;
        Ok(uint(n))
    }
}

const HOOK_COLUMNS: &str =
    "id, owner, network, url, kind, filter, secret, description, state, reason, from_block, created, updated";

/// A row before its filter is read (which needs the network's dialect).
struct RawHook {
    id: String,
    owner: String,
    network: String,
    url: String,
    kind: String,
    filter: String,
    secret: String,
    description: String,
    state: String,
    reason: Option<String>,
    from_block: i64,
    created: i64,
    updated: i64,
}

fn raw_hook(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawHook> {
    Ok(RawHook {
        id: r.get(0)?,
        owner: r.get(1)?,
        network: r.get(2)?,
        url: r.get(3)?,
        kind: r.get(4)?,
        filter: r.get(5)?,
        secret: r.get(6)?,
        description: r.get(7)?,
        state: r.get(8)?,
        reason: r.get(9)?,
        from_block: r.get(10)?,
        created: r.get(11)?,
        updated: r.get(12)?,
    })
}

impl RawHook {
    fn into_hook(self, dialect: &impl Fn(&str) -> Dialect) -> Result<Hook, DbError> {
        let bad = |what: &str| DbError::Corrupt(format!("{}: {what}", self.id));
        let kind = Kind::parse(&self.kind).ok_or_else(|| bad("type"))?;
        let v: Value = serde_json::from_str(&self.filter).map_err(|_| bad("filter"))?;
        let filter = Filter::parse(kind, &v, dialect(&self.network)).map_err(|e| bad(&e.to_string()))?;
        Ok(Hook {
            kind,
            filter,
            state: State::parse(&self.state).ok_or_else(|| bad("state"))?,
            from_block: uint(self.from_block),
            created: uint(self.created),
            updated: uint(self.updated),
            id: self.id,
            owner: self.owner,
            network: self.network,
            url: self.url,
            secret: self.secret,
            description: self.description,
            reason: self.reason,
        })
    }
}
