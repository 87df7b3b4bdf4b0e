use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::watch;

use super::*;
use crate::methods::Dialect;

/// A chain of blocks with one KLAY transfer each, served through the `Fetch` interface.
struct Chain {
    served: watch::Sender<u64>,
    /// Blocks whose parent hash is wrong (a chain that contradicts the index).
    forged: Mutex<HashMap<u64, u8>>,
    /// Blocks that fail to read once.
    flaky: Mutex<Vec<u64>>,
    calls: AtomicU64,
    /// The nodes trace blocks (`debug_traceBlockByNumber`); else they refuse the method.
    traces: AtomicBool,
    /// Blocks whose trace the node answers with an error (its state is gone).
    untraceable: Mutex<Vec<u64>>,
    /// Blocks whose trace never comes back in time.
    slow: Mutex<Vec<u64>>,
}

fn h(n: u64, salt: u8) -> String {
    format!("0x{:02x}{:062x}", salt, n)
}

impl Chain {
    fn new(head: u64) -> Arc<Self> {
        Arc::new(Self {
            served: watch::channel(head).0,
            forged: Mutex::new(HashMap::new()),
            flaky: Mutex::new(Vec::new()),
            calls: AtomicU64::new(0),
            traces: AtomicBool::new(false),
            untraceable: Mutex::new(Vec::new()),
            slow: Mutex::new(Vec::new()),
        })
    }

    fn block(&self, n: u64) -> String {
        let salt = self.forged.lock().unwrap().get(&n).copied().unwrap_or(0);
        format!(
            r#"{{"number":"{n:#x}","hash":"{}","parentHash":"{}","timestamp":"{:#x}","transactions":[
              {{"hash":"{}","from":"0x{}","to":"0x{}","value":"0x1","typeInt":0,"gasPrice":"0x1","input":"0x"}}]}}"#,
            h(n, 0),
            h(n.saturating_sub(1), salt),
            1000 + n,
            h(n, 0xee),
            "11".repeat(20),
            "22".repeat(20),
        )
    }

    fn receipts(n: u64) -> String {
        format!(
            r#"[{{"transactionHash":"{}","status":"0x1","gasUsed":"0x5208","logs":[]}}]"#,
            h(n, 0xee)
        )
    }
}

impl Fetch for Chain {
    fn call(
        &self,
        method: &'static str,
        params: String,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + '_>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let n = params
                .split('"')
                .nth(1)
                .and_then(crate::jsonrpc::parse_quantity)
                .ok_or("bad params")?;
            if n > *self.served.borrow() {
                return Err(format!("block {n} is above the served head"));
            }
            let mut flaky = self.flaky.lock().unwrap();
            if let Some(i) = flaky.iter().position(|b| *b == n) {
                flaky.remove(i);
                return Err("connection reset".into());
            }
            Ok(Bytes::from(match method {
                "klay_getBlockByNumber" => self.block(n),
                "debug_traceBlockByNumber" if self.untraceable.lock().unwrap().contains(&n) => {
                    return Err(r#"{"code":-32000,"message":"missing trie node 0x00 (path )"}"#.into())
                }
                // Too heavy to trace in time, every time.
                "debug_traceBlockByNumber" if self.slow.lock().unwrap().contains(&n) => {
                    return Err("upstream timeout".into())
                }
                "debug_traceBlockByNumber" if !self.traces.load(Ordering::Relaxed) => {
                    return Err(r#"{"code":-32601,"message":"the method debug_traceBlockByNumber does not exist/is not available"}"#.into())
                }
                // The recipient contract passes 2 peb on, and a reverted call would have sent 9.
                "debug_traceBlockByNumber" => format!(
                    r#"[{{"txHash":"{}","result":{{"type":"CALL","from":"0x{}","to":"0x{}","value":"0x1",
                      "calls":[{{"type":"CALL","from":"0x{to}","to":"0x{}","value":"0x2"}},
                               {{"type":"CALL","from":"0x{to}","to":"0x{}","value":"0x9","error":"execution reverted"}}]}}}}]"#,
                    h(n, 0xee),
                    "11".repeat(20),
                    "22".repeat(20),
                    "33".repeat(20),
                    "44".repeat(20),
                    to = "22".repeat(20),
                ),
                _ => Chain::receipts(n),
            }))
        })
    }
    fn served(&self) -> watch::Receiver<u64> {
        self.served.subscribe()
    }
    fn dialect(&self) -> Dialect {
        Dialect::Klaytn
    }
}

fn settings(start: Start) -> IngestSettings {
    IngestSettings {
        start,
        batch: 7,
        concurrency: 3,
        internal: false,
    }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn follows_the_head_resumes_without_gap_or_duplicate() {
    let chain = Chain::new(30);
    let db = Arc::new(IndexDb::in_memory().unwrap());
    let ix = Indexer::new("n".into(), chain.clone(), db.clone(), settings(Start::First));
    let progress = ix.progress();
    let task = tokio::spawn(ix.run());
    until("block 30", || progress.indexed.load(Ordering::Relaxed) == 30).await;
    assert_eq!(db.counts("n").unwrap(), (31, 31));
    // stopped mid-way (the task dropped between batches), restarted: it goes on from its checkpoint
    task.abort();
    chain.served.send_replace(45);
    chain.flaky.lock().unwrap().push(40);
    let ix = Indexer::new("n".into(), chain.clone(), db.clone(), settings(Start::First));
    let progress = ix.progress();
    let task = tokio::spawn(ix.run());
    until("block 45", || progress.indexed.load(Ordering::Relaxed) == 45).await;
    assert_eq!(db.counts("n").unwrap(), (46, 46), "every block once");
    // the head moves on: followed
    chain.served.send_replace(50);
    until("block 50", || progress.indexed.load(Ordering::Relaxed) == 50).await;
    assert_eq!(db.counts("n").unwrap(), (51, 51));
    assert!(progress.halted().is_none());
    task.abort();
}

#[tokio::test]
async fn a_chain_that_contradicts_the_index_stops_it_loudly() {
    let chain = Chain::new(10);
    let db = Arc::new(IndexDb::in_memory().unwrap());
    let ix = Indexer::new("n".into(), chain.clone(), db.clone(), settings(Start::Now));
    let progress = ix.progress();
    let task = tokio::spawn(ix.run());
    until("block 10", || progress.indexed.load(Ordering::Relaxed) == 10).await;
    assert_eq!(db.counts("n").unwrap(), (1, 1), "`now` starts at the served head");
    chain.forged.lock().unwrap().insert(12, 0x99);
    chain.served.send_replace(14);
    until("the halt", || progress.halted().is_some()).await;
    let why = progress.halted().unwrap();
    assert!(why.contains("block 12 has parent"), "{why}");
    assert_eq!(
        progress.indexed.load(Ordering::Relaxed),
        10,
        "nothing of the batch written"
    );
    assert!(task.await.is_ok(), "the indexer stops");
    // and stays stopped across a restart until reset
    let ix = Indexer::new("n".into(), chain.clone(), db.clone(), settings(Start::Now));
    let progress = ix.progress();
    ix.run().await;
    assert!(progress.halted().is_some());
    assert!(db.checkpoint("n").unwrap().unwrap().halted.is_some());
}

#[test]
fn the_progress_bar_says_where_and_how_fast() {
    assert_eq!(
        super::bar("klaytn", 500, 1000, 250.4, 2),
        "index klaytn [############\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}\u{b7}] 50.0% 500/1000 blocks 250/s ETA 2s"
    );
    assert!(super::bar("k", 0, 0, 0.0, 4000).ends_with("100.0% 0/0 blocks 0/s ETA 1h06m"));
    assert!(super::bar("k", 1, 100, 1.0, 99).ends_with("ETA 1m39s"));
}

#[tokio::test]
async fn internal_transfers_from_the_call_tracer_or_off_when_the_nodes_refuse_it() {
    // The nodes trace: each block's tx adds the KLAY its call passed on (not the reverted one).
    let chain = Chain::new(10);
    chain.traces.store(true, Ordering::Relaxed);
    // Block 4's state is gone from the node, block 6 never traces in time: both indexed
    // without their internal transfer.
    chain.untraceable.lock().unwrap().push(4);
    chain.slow.lock().unwrap().push(6);
    let db = Arc::new(IndexDb::in_memory().unwrap());
    let on = IngestSettings {
        internal: true,
        ..settings(Start::First)
    };
    let ix = Indexer::new("n".into(), chain.clone(), db.clone(), on.clone());
    let progress = ix.progress();
    let task = tokio::spawn(ix.run());
    until("block 10", || progress.indexed.load(Ordering::Relaxed) == 10).await;
    assert_eq!(
        db.counts("n").unwrap(),
        (11, 20),
        "a tx value and an internal transfer per block, but blocks 4's and 6's"
    );
    assert!(progress.internal.load(Ordering::Relaxed));
    let page = crate::index::db::Page {
        start: 0,
        end: 10,
        asc: true,
        limit: 100,
        skip: 0,
    };
    let rows = db
        .transfers_of("n", "internal", Some(&[0x44; 20]), None, &page)
        .unwrap();
    assert!(rows.is_empty(), "a reverted call moved nothing");
    let rows = db
        .transfers_of("n", "internal", Some(&[0x33; 20]), None, &page)
        .unwrap();
    assert_eq!(rows.len(), 9);
    assert_eq!(
        (rows[0].from.as_slice(), rows[0].log_index, rows[0].batch_pos),
        (&[0x22u8; 20][..], -2, 1)
    );
    task.abort();

    // Nodes without the debug API: internal transfers go off (once), indexing goes on.
    let chain = Chain::new(10);
    let db = Arc::new(IndexDb::in_memory().unwrap());
    let ix = Indexer::new("n".into(), chain.clone(), db.clone(), on);
    let progress = ix.progress();
    let task = tokio::spawn(ix.run());
    until("block 10", || progress.indexed.load(Ordering::Relaxed) == 10).await;
    assert_eq!(db.counts("n").unwrap(), (11, 11));
    assert!(!progress.internal.load(Ordering::Relaxed));
    assert!(progress.halted().is_none());
    task.abort();
}
