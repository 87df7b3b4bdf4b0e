//! The seals, off the writer's thread: a thread with a connection of its own to the sealed
//! file (parts and balances) writes each full window there, and the window's balances before
//! a read of balances, while the writer goes on appending batches to the index file. One job
//! at a time per network; the window being sealed stays readable in memory until its part is
//! in, and reads never see both (they take the parts from the window, not from the file).

use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::Connection;

use super::holdings::Balances;
use super::recent::{self, Recent};
use super::DbError;

/// What the sealer writes, in one transaction of the sealed file.
pub(crate) enum Job {
    /// `window` as the part `window.from` ending at `last`, and its balances: the file's
    /// balances are then those at `last`.
    Seal {
        net: String,
        window: Arc<Recent>,
        last: u64,
    },
    /// These balances: the file's balances are then those at `upto`.
    Balances { net: String, balances: Balances, upto: u64 },
}

impl Job {
    /// Writes the job in one transaction on `conn` (the sealer's, or the index's own for an
    /// in-memory index, where the sealed tables are attached).
    pub(crate) fn run(&self, conn: &mut Connection) -> Result<(), DbError> {
        let tx = conn.transaction()?;
        match self {
            Job::Seal { net, window, last } => recent::seal(&tx, net, window, *last)?,
            Job::Balances { net, balances, upto } => super::holdings::settle_balances(&tx, net, balances, *upto)?,
        }
        let committing = std::time::Instant::now();
        tx.commit()?;
        if let Job::Seal { net, .. } = self {
            let ms = committing.elapsed().as_millis() as u64;
            tracing::debug!(network = %net, commit_ms = ms, "index: sealed window committed");
        }
        Ok(())
    }
}

/// A job handed over: its outcome, once written.
#[derive(Debug)]
pub(crate) struct Pending(mpsc::Receiver<Result<(), DbError>>);

impl Pending {
    /// The outcome if the job is done (a sealer that went away fails it).
    pub(crate) fn done(&self) -> Option<Result<(), DbError>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(gone())),
        }
    }

    /// Waits for the job's outcome.
    pub(crate) fn wait(&self) -> Result<(), DbError> {
        self.0.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// A job already run here.
    pub(crate) fn ran(outcome: Result<(), DbError>) -> Self {
        let (tx, rx) = mpsc::sync_channel(1);
        let _ = tx.send(outcome);
        Self(rx)
    }
}

/// A job and where its outcome goes.
type Handed = (Job, mpsc::SyncSender<Result<(), DbError>>);

fn gone() -> DbError {
    DbError::Io("index sealer thread stopped".into())
}

/// The sealer thread and the way to it.
#[derive(Debug)]
pub(crate) struct Sealer {
    jobs: Option<mpsc::Sender<Handed>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sealer {
    /// Starts the thread, with its own connection to the sealed file at `path` and a page
    /// cache of `cache_mib` (the balance tables' pages, which every seal revisits).
    pub(crate) fn spawn(path: &std::path::Path, cache_mib: u64) -> Result<Self, DbError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let kib = i64::try_from(cache_mib.saturating_mul(1024)).unwrap_or(i64::MAX);
        conn.pragma_update(None, "cache_size", -kib)?;
        conn.pragma_update(None, "journal_size_limit", super::WAL_KEEP_BYTES)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (jobs, queue) = mpsc::channel::<Handed>();
        let thread = std::thread::Builder::new()
            .name("index-sealer".into())
            .spawn(move || {
                // Until the index goes (the sender dropped); a job's outcome goes back to
                // whoever waits on it.
                while let Ok((job, done)) = queue.recv() {
                    let _ = done.send(job.run(&mut conn));
                    // The file's own copy of the WAL, once the job is answered: off the
                    // writer's wait, before the next window fills.
                    if let Err(e) = super::checkpoint(&conn) {
                        tracing::warn!(error = %e, "index: checkpoint of the sealed file failed; retried after the next seal");
                    }
                }
            })
            .map_err(|e| DbError::Io(format!("index sealer thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands `job` to the thread.
    pub(crate) fn submit(&self, job: Job) -> Pending {
        let (done, outcome) = mpsc::sync_channel(1);
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send((job, done));
        }
        Pending(outcome)
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The window of a network being sealed: readable until its part is in.
#[derive(Debug)]
pub(crate) struct Sealing {
    pub window: Arc<Recent>,
    pub last: u64,
    pub pending: Pending,
}

impl Sealing {
    /// The part it becomes.
    pub(crate) fn part(&self) -> recent::Part {
        recent::Part {
            part: self.window.from,
            last: self.last,
        }
    }
}
