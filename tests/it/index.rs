//! The embedded index against fake nodes serving a linked chain: it follows the served head
//! (never above it), shows its progress in `/status`, and a restart resumes from its
//! checkpoint with every block once.

use kengate::index::IndexDb;

use crate::support::fake::{self, Fake};
use crate::support::gate::{test_config, Gate};

async fn chain(head: u64) -> Vec<Fake> {
    let fakes = fake::cluster(&[head, head, head]).await;
    for f in &fakes {
        f.set_chain(true);
    }
    fakes
}

fn indexed(s: &serde_json::Value) -> Option<u64> {
    s["index"]["indexed_head"].as_u64()
}

#[tokio::test]
async fn the_index_follows_the_served_head_and_resumes_after_a_restart() {
    let fakes = chain(20).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.index.enabled = true;
    let file = cfg.index.file(&cfg.store.path);
    let gate = Gate::start(cfg.clone()).await;
    let s = gate.wait_status("indexed to 20", |s| indexed(s) == Some(20)).await;
    assert_eq!(s["index"]["lag"], 0, "{s}");
    assert!(s["index"]["halted"].is_null(), "{s}");

    // One node two blocks behind (in sync still, within max_lag): the served head holds at
    // its head, and so does the index.
    fakes[0].set_head(22);
    fakes[1].set_head(22);
    gate.wait_status("the others at 22", |s| s["highest_head"] == 22).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let s = gate.status().await;
    assert_eq!(s["served_head"], 20, "the scenario: {s}");
    assert_eq!(indexed(&s), Some(20), "indexed above the served head: {s}");
    for f in &fakes {
        f.set_head(25);
    }
    gate.wait_status("indexed to 25", |s| indexed(s) == Some(25)).await;
    gate.stop().await;

    for f in &fakes {
        f.set_head(30);
    }
    let gate = Gate::start(cfg).await;
    gate.wait_status("indexed to 30", |s| indexed(s) == Some(30)).await;
    gate.stop().await;
    let db = IndexDb::open(&file).unwrap();
    // blocks 0..=30, one tx and two transfers (KLAY value, ERC-20) each, each once
    assert_eq!(db.counts("klaytn").unwrap(), (31, 62));
}
