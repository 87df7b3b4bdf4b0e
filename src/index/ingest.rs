//! Follows the served head: each block and its receipts are read through the routing core
//! (so only blocks every in-sync node has, never a gap), several at a time while behind,
//! checked against the indexed parent (Klaytn never reorganizes: a mismatch stops the index
//! loudly rather than rewriting it) and written in batches with their checkpoint.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use serde_json::value::RawValue;

use ruint::aliases::U256;

use super::contracts::{describe, token_uri};
use super::db::{Checkpoint, ContractRow, IndexDb, TokenUri};
use super::extract::{extract, internal_transfers, Address, BlockRows, Hash, Kind};
use crate::events::Fetch;
use crate::txpath::lifecycle::hex;

/// Where a new index starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Block 0: the whole history.
    First,
    /// The served head when indexing starts.
    Now,
    /// This block.
    At(u64),
}

/// How the indexer reads.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Where a network without a checkpoint starts.
    pub start: Start,
    /// Blocks written per store transaction.
    pub batch: u64,
    /// Blocks fetched at once while behind.
    pub concurrency: usize,
    /// Also read internal KLAY transfers from the call tracer.
    pub internal: bool,
}

/// What the indexer has done, for `/status`, `/metrics` and the progress log.
#[derive(Debug, Default)]
pub struct Progress {
    /// The last block indexed (`u64::MAX` before the first).
    pub indexed: AtomicU64,
    /// The served head it is catching up with.
    pub target: AtomicU64,
    /// Rows written.
    pub txs: AtomicU64,
    /// Transfers written.
    pub transfers: AtomicU64,
    /// Blocks per second over the last measure (`f64` bits; 0 when caught up).
    pub rate: AtomicU64,
    /// Internal transfers are read (`index.internal`, until the nodes refuse the tracer).
    pub internal: AtomicBool,
    /// Parts the store has sealed.
    pub parts: AtomicU64,
    /// Transfers and txs the store's window holds in memory.
    pub window: AtomicU64,
    /// Why it stopped, if it did.
    halted: Mutex<Option<String>>,
}

impl Progress {
    /// Blocks per second lately.
    pub fn blocks_per_second(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Why indexing stopped, if it did.
    pub fn halted(&self) -> Option<String> {
        self.halted.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn halt(&self, why: String) {
        *self.halted.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }
}

/// One network's indexer.
pub struct Indexer {
    net: String,
    fetch: Arc<dyn Fetch>,
    db: Arc<IndexDb>,
    settings: IngestSettings,
    progress: Arc<Progress>,
}

/// Why a block could not be read this time (retried).
type FetchError = String;

impl Indexer {
    /// An indexer of `net` reading through `fetch` into `db`.
    pub fn new(net: String, fetch: Arc<dyn Fetch>, db: Arc<IndexDb>, settings: IngestSettings) -> Self {
        let progress = Arc::new(Progress::default());
        progress.indexed.store(u64::MAX, Ordering::Relaxed);
        progress.internal.store(settings.internal, Ordering::Relaxed);
        Self {
            net,
            fetch,
            db,
            settings,
            progress,
        }
    }

    /// Its progress, shared.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Runs until the task is dropped, or until the chain contradicts the index.
    pub async fn run(self) {
        let mut served = self.fetch.served();
        let checkpoint = match self.read_checkpoint().await {
            Ok(cp) => cp,
            Err(e) => {
                tracing::error!(network = %self.net, error = %e, "index: cannot read its checkpoint; not indexing");
                self.progress.halt(e);
                return;
            }
        };
        if let Some(why) = checkpoint.as_ref().and_then(|c| c.halted.clone()) {
            tracing::error!(network = %self.net, reason = %why, "index: halted (kengate index reset to start again)");
            self.progress.halt(why);
            return;
        }
        // The first block to index, and the hash its parent must have.
        let (mut next, mut parent): (u64, Option<Hash>) = match checkpoint {
            Some(cp) => {
                self.progress.indexed.store(cp.number, Ordering::Relaxed);
                (cp.number.saturating_add(1), Some(cp.hash))
            }
            None => {
                let head = loop {
                    let h = *served.borrow_and_update();
                    if h > 0 {
                        break h;
                    }
                    if served.changed().await.is_err() {
                        return;
                    }
                };
                let start = match self.settings.start {
                    Start::First => 0,
                    Start::Now => head,
                    Start::At(n) => n,
                };
                (start, None)
            }
        };
        tracing::info!(network = %self.net, from = next, "index: following the served head");
        let mut log = ProgressLog::new(std::io::stderr().is_terminal());
        let mut backoff = Duration::from_millis(200);
        let mut ahead: Option<(u64, Vec<Result<BlockRows, FetchError>>)> = None;
        loop {
            let target = *served.borrow_and_update();
            self.progress.target.store(target, Ordering::Relaxed);
            if next > target {
                if served.changed().await.is_err() {
                    return;
                }
                continue;
            }
            // The window read while the one before it was written, or this one now.
            let fetched = match ahead.take() {
                Some((from, window)) if from == next => window,
                _ => self.fetch_window(next, self.window_end(next, target)).await,
            };
            let mut rows = Vec::with_capacity(fetched.len());
            let mut failed = None;
            for r in fetched {
                match r {
                    Ok(b) => rows.push(b),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            // Every block links to the one before it.
            for b in &rows {
                if let Some(p) = parent {
                    if b.parent != p {
                        let why = format!(
                            "block {} has parent {} but the index holds {} for block {}",
                            b.number,
                            hex(&b.parent),
                            hex(&p),
                            b.number.saturating_sub(1)
                        );
                        tracing::error!(network = %self.net, reason = %why, "index: the chain contradicts the index; stopped (kengate index reset to start again)");
                        let (db, net, w) = (self.db.clone(), self.net.clone(), why.clone());
                        let _ = tokio::task::spawn_blocking(move || db.halt(&net, &w)).await;
                        self.progress.halt(why);
                        return;
                    }
                }
                parent = Some(b.hash);
            }
            if let Some(last) = rows.last().map(|b| b.number) {
                let (txs, transfers) = rows.iter().fold((0, 0), |(a, b), r| {
                    (a + r.txs.len() as u64, b + r.transfers.len() as u64)
                });
                let contracts = self.new_contracts(&rows).await;
                let uris = self.new_token_uris(&rows).await;
                let (db, net) = (self.db.clone(), self.net.clone());
                let write = tokio::task::spawn_blocking(move || {
                    db.write_with(&net, &rows, &contracts, &uris)?;
                    db.window_state(&net)
                });
                // While the store writes this window (a thread of its own), the nodes are read
                // for the next one; its contracts are looked up once this one is in.
                let following = last.saturating_add(1);
                let served_now = *served.borrow();
                let read_ahead = async {
                    match following <= served_now && failed.is_none() {
                        true => Some((
                            following,
                            self.fetch_window(following, self.window_end(following, served_now))
                                .await,
                        )),
                        false => None,
                    }
                };
                let (written, read) = tokio::join!(write, read_ahead);
                match written {
                    Ok(Ok((parts, window))) => {
                        self.progress.indexed.store(last, Ordering::Relaxed);
                        self.progress.parts.store(parts, Ordering::Relaxed);
                        self.progress.window.store(window, Ordering::Relaxed);
                        self.progress.txs.fetch_add(txs, Ordering::Relaxed);
                        self.progress.transfers.fetch_add(transfers, Ordering::Relaxed);
                        log.advance(&self.net, &self.progress, last - next + 1, last, target);
                        next = last + 1;
                        backoff = Duration::from_millis(200);
                        ahead = read;
                    }
                    Ok(Err(e)) => failed = Some(e.to_string()),
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            if let Some(e) = failed {
                // The parent of the next try is the last block written.
                parent = match self.read_checkpoint().await {
                    Ok(Some(cp)) => Some(cp.hash),
                    _ => parent,
                };
                tracing::warn!(network = %self.net, block = next, error = %e, "index: a block could not be read; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    /// The last block of the window that starts at `from` with the served head at `target`.
    fn window_end(&self, from: u64, target: u64) -> u64 {
        target.min(from.saturating_add(self.settings.batch.max(1) - 1))
    }

    /// Blocks `from..=to`, `concurrency` at a time, in order.
    async fn fetch_window(&self, from: u64, to: u64) -> Vec<Result<BlockRows, FetchError>> {
        stream::iter(from..=to)
            .map(|n| self.fetch_block(n))
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await
    }

    /// The token contracts of `rows` the index has not described yet, each asked about
    /// itself at the block it first appears in.
    async fn new_contracts(&self, rows: &[BlockRows]) -> Vec<ContractRow> {
        let mut first: Vec<(Address, u64, Kind)> = Vec::new();
        for b in rows {
            for t in &b.transfers {
                if let Some(c) = t.contract {
                    if !first.iter().any(|(a, _, _)| *a == c) {
                        first.push((c, b.number, t.kind));
                    }
                }
            }
        }
        if first.is_empty() {
            return Vec::new();
        }
        let (db, net) = (self.db.clone(), self.net.clone());
        let addrs: Vec<Address> = first.iter().map(|(a, _, _)| *a).collect();
        let known = tokio::task::spawn_blocking(move || db.known_contracts(&net, &addrs))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut out = Vec::new();
        for (i, (address, at, kind)) in first.into_iter().enumerate() {
            if known.get(i).copied().unwrap_or(false) {
                continue;
            }
            let meta = describe(&*self.fetch, &address, at, kind).await;
            out.push(ContractRow {
                address,
                kind,
                first_block: at,
                meta,
            });
        }
        out
    }

    /// The metadata URIs of the NFTs minted in `rows` (`tokenURI(id)`) and of the MT ids they
    /// move that the index has not seen (`uri(id)`), each read at its block, several at a time.
    async fn new_token_uris(&self, rows: &[BlockRows]) -> Vec<TokenUri> {
        let mut wanted: Vec<(Address, U256, u64, Kind)> = Vec::new();
        for b in rows {
            for t in &b.transfers {
                let (Some(c), Some(id)) = (t.contract, t.token_id) else {
                    continue;
                };
                let fresh = match t.kind {
                    Kind::Nft => t.from == [0; 20],
                    Kind::Mt => true,
                    _ => false,
                };
                if fresh && !wanted.iter().any(|(a, i, _, _)| *a == c && *i == id) {
                    wanted.push((c, id, b.number, t.kind));
                }
            }
        }
        let mts: Vec<(Address, U256)> = wanted.iter().filter(|w| w.3 == Kind::Mt).map(|w| (w.0, w.1)).collect();
        if !mts.is_empty() {
            let (db, net) = (self.db.clone(), self.net.clone());
            let known = tokio::task::spawn_blocking(move || db.known_mt_tokens(&net, &mts))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            wanted.retain(|w| w.3 != Kind::Mt || !known.iter().any(|k| k.0 == w.0 && k.1 == w.1));
        }
        stream::iter(wanted)
            .map(|(contract, id, at, kind)| async move {
                let uri = token_uri(&*self.fetch, &contract, id, at, kind == Kind::Mt).await?;
                Some(TokenUri { contract, id, uri })
            })
            .buffered(self.settings.concurrency.max(1))
            .filter_map(|u| async move { u })
            .collect()
            .await
    }

    async fn read_checkpoint(&self) -> Result<Option<Checkpoint>, String> {
        let (db, net) = (self.db.clone(), self.net.clone());
        tokio::task::spawn_blocking(move || db.checkpoint(&net))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// One block and its receipts, read like a client's calls (and its call traces, with
    /// `index.internal`).
    async fn fetch_block(&self, n: u64) -> Result<BlockRows, FetchError> {
        let (mut rows, _) = read_block(&*self.fetch, n).await?;
        if !rows.txs.is_empty() && self.progress.internal.load(Ordering::Relaxed) {
            self.add_internal(&mut rows).await?;
        }
        Ok(rows)
    }

    /// Adds `rows`' internal KLAY transfers, from the call tracer. Nodes that do not offer it
    /// turn it off (a warning, once); a node that answers this block's trace with an error, a
    /// trace that fails [`TRACE_ATTEMPTS`] times, or one too deep to read, loses that block's
    /// internal transfers (a warning): the tracer never holds the index back.
    async fn add_internal(&self, rows: &mut BlockRows) -> Result<(), FetchError> {
        let n = rows.number;
        let mut attempt = 0;
        let traces = loop {
            attempt += 1;
            match read_traces(&*self.fetch, n).await {
                Ok(t) => break raw(t)?,
                Err(e) if refused(&e) => {
                    if self.progress.internal.swap(false, Ordering::Relaxed) {
                        tracing::warn!(network = %self.net, error = %e, "index: the nodes do not trace blocks (debug API); internal transfers are not indexed");
                    }
                    return Ok(());
                }
                // The node answered with an error (e.g. a node restarted since that block no
                // longer has its state), or the trace failed three times (a block too heavy to
                // trace within the upstream timeout): the block is indexed without them, loudly,
                // rather than holding the index back.
                Err(e) if e.starts_with('{') || attempt >= TRACE_ATTEMPTS => {
                    tracing::warn!(network = %self.net, block = n, error = %e, "index: this block could not be traced; its internal transfers are not indexed");
                    return Ok(());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        match internal_transfers(&traces, rows) {
            Ok(mut t) => rows.transfers.append(&mut t),
            Err(e) => {
                tracing::warn!(network = %self.net, block = n, error = %e, "index: this block's internal transfers are not indexed")
            }
        }
        Ok(())
    }
}

/// Tries at a block's call traces before it is indexed without them.
const TRACE_ATTEMPTS: u32 = 3;

/// The node (or kengate's method table) does not offer a method: not worth retrying.
fn refused(error: &str) -> bool {
    [
        "-32601",
        "does not exist",
        "not available",
        "not supported",
        "not in the method table",
    ]
    .iter()
    .any(|s| error.contains(s))
}

/// Block `n` as rows, and its receipts as the node sent them: `klay_getBlockByNumber(n, true)`
/// and `klay_getBlockReceipts(n)` through `fetch` (the routing core: only at or below the
/// served head). The indexer's read, and the webhooks' block feed's.
pub async fn read_block(fetch: &dyn Fetch, n: u64) -> Result<(BlockRows, Box<RawValue>), FetchError> {
    let (block, receipts) = tokio::join!(
        fetch.call("klay_getBlockByNumber", format!("[\"{n:#x}\",true]")),
        fetch.call("klay_getBlockReceipts", format!("[\"{n:#x}\"]")),
    );
    let block = raw(block?)?;
    let receipts = raw(receipts?)?;
    if block.get() == "null" {
        return Err(format!("block {n} is not there yet"));
    }
    let rows = extract(&block, &receipts).map_err(|e| e.to_string())?;
    Ok((rows, receipts))
}

/// Block `n`'s call traces (`debug_traceBlockByNumber` with the call tracer), as the node
/// sent them; [`internal_transfers`] reads them.
pub async fn read_traces(fetch: &dyn Fetch, n: u64) -> Result<bytes::Bytes, FetchError> {
    fetch
        .call(
            "debug_traceBlockByNumber",
            format!("[\"{n:#x}\",{{\"tracer\":\"callTracer\"}}]"),
        )
        .await
}

/// A node's answer as one JSON value, kept as text.
pub fn raw(bytes: bytes::Bytes) -> Result<Box<RawValue>, String> {
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?;
    RawValue::from_string(text).map_err(|e| e.to_string())
}

/// Progress while catching up: blocks/s and the time left — a bar redrawn on the terminal
/// when stderr is one (twice a second), else a log line every 10 s — and the rate in
/// [`Progress`] for `/status` and `/metrics`.
struct ProgressLog {
    tty: bool,
    since: Instant,
    blocks: u64,
    /// The bar is on screen (a newline ends it before anything else is printed).
    drawn: bool,
}

impl ProgressLog {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            since: Instant::now(),
            blocks: 0,
            drawn: false,
        }
    }

    fn advance(&mut self, net: &str, progress: &Progress, blocks: u64, at: u64, target: u64) {
        self.blocks += blocks;
        let took = self.since.elapsed();
        let left = target.saturating_sub(at);
        let every = if self.tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(10)
        };
        if took < every && left > 0 {
            return;
        }
        let rate = self.blocks as f64 / took.as_secs_f64().max(0.001);
        progress
            .rate
            .store(if left > 0 { rate } else { 0.0 }.to_bits(), Ordering::Relaxed);
        let eta = (left as f64 / rate.max(0.001)) as u64;
        match (self.tty, left) {
            (true, 0) if self.drawn => {
                eprintln!("\r\x1b[2Kindex {net}: {at} of {target} blocks, caught up");
                self.drawn = false;
            }
            (true, 0) => {}
            (true, _) => {
                eprint!("\r\x1b[2K{}", bar(net, at, target, rate, eta));
                let _ = std::io::stderr().flush();
                self.drawn = true;
            }
            (false, 0) => {}
            (false, _) => {
                tracing::info!(network = %net, indexed = at, head = target, blocks_per_s = format!("{rate:.0}"), eta_s = eta, "index: catching up");
            }
        }
        self.since = Instant::now();
        self.blocks = 0;
    }
}

/// `index klaytn [##########··········] 51.2% 512000/1000000 blocks 2400/s ETA 3m23s`
fn bar(net: &str, at: u64, target: u64, rate: f64, eta: u64) -> String {
    const WIDTH: usize = 24;
    let frac = if target == 0 { 1.0 } else { at as f64 / target as f64 }.clamp(0.0, 1.0);
    let full = (frac * WIDTH as f64) as usize;
    let eta = match eta {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    };
    format!(
        "index {net} [{}{}] {:.1}% {at}/{target} blocks {rate:.0}/s ETA {eta}",
        "#".repeat(full),
        "\u{b7}".repeat(WIDTH - full),
        frac * 100.0
    )
}

#[cfg(test)]
mod tests;
