//! The KAS Token History API's requests as clients send them — method, path, query string
//! (percent-encoded, hyphenated parameters, cursors) and preset bodies — answered over a small
//! index without panicking, always with a status and a JSON body.
#![no_main]

use std::sync::OnceLock;

use kengate::index::db::IndexDb;
use kengate::index::extract::{BlockRows, Kind, Transfer, TxRow};
use kengate::index::kas::{answer, Request, Scope};
use libfuzzer_sys::fuzz_target;
use ruint::aliases::U256;

/// Three blocks: KLAY, FT, NFT and MT transfers between four accounts.
fn index() -> &'static IndexDb {
    static DB: OnceLock<IndexDb> = OnceLock::new();
    DB.get_or_init(|| {
        let db = IndexDb::in_memory().expect("in-memory index");
        let blocks: Vec<BlockRows> = (1u8..=3)
            .map(|n| {
                let tx = TxRow {
                    hash: [n; 32],
                    index: 0,
                    from: [1; 20],
                    nonce: u64::from(n),
                    gas: 90_000,
                    to: Some([0xc0 + n; 20]),
                    value: U256::from(n % 2),
                    type_int: 0,
                    fee_payer: None,
                    fee_ratio: None,
                    gas_used: 50_000,
                    gas_price: U256::from(25u8),
                    success: true,
                    contract_created: None,
                    selector: None,
                };
                let kind = [Kind::Ft, Kind::Nft, Kind::Mt][usize::from(n - 1)];
                let transfers = (0..2u32)
                    .map(|pos| Transfer {
                        kind,
                        tx_hash: [n; 32],
                        tx_index: 0,
                        log_index: Some(0),
                        batch_pos: if kind == Kind::Mt { pos } else { 0 },
                        contract: Some([0xc0 + n; 20]),
                        from: if pos == 0 { [0; 20] } else { [1; 20] },
                        to: [2 + pos as u8; 20],
                        value: U256::from(7u8),
                        token_id: (kind != Kind::Ft).then(|| U256::from(pos)),
                        operator: (kind == Kind::Mt).then_some([1; 20]),
                    })
                    .filter(|t| kind == Kind::Mt || t.batch_pos == 0)
                    .collect();
                BlockRows {
                    number: u64::from(n),
                    hash: [0xb0 + n; 32],
                    parent: [0xaf + n; 32],
                    timestamp: 1_700_000_000 + u64::from(n),
                    txs: vec![tx],
                    transfers,
                }
            })
            .collect();
        db.write("n", &blocks, &[]).expect("write");
        db
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // "<METHOD> <path>[?<query>]\n<body>"
    let (head, body) = text.split_once('\n').unwrap_or((text, ""));
    let (method, target) = head.split_once(' ').unwrap_or(("GET", head));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let scope = if method.len() % 2 == 0 { Scope::All } else { Scope::Key("k") };
    let r = answer(
        index(),
        "n",
        &Request {
            method,
            path,
            query,
            body: body.as_bytes(),
            scope,
            now: 1,
        },
    );
    assert!((200..600).contains(&r.status));
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_ok(), "{}", r.body);
});
