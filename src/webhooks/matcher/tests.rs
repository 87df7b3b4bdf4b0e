use ruint::aliases::U256;
use serde_json::Value;

use super::*;
use crate::events::filter::{parse_logs, Criteria};
use crate::index::extract::TxRow;
use crate::webhooks::model::State;

const ME: [u8; 20] = [0xaa; 20];

fn hook(id: &str, kind: Kind, filter: Filter) -> Hook {
    Hook {
        id: id.into(),
        owner: String::new(),
        network: "n".into(),
        url: "http://x".into(),
        kind,
        filter,
        secret: "s".into(),
        description: String::new(),
        state: State::Active,
        reason: None,
        from_block: 9,
        created: 1000,
        updated: 1000,
    }
}

fn tx(index: u32, from: u8, to: u8) -> TxRow {
    TxRow {
        hash: [index as u8 + 1; 32],
        index,
        from: [from; 20],
        to: Some([to; 20]),
        ..TxRow::default()
    }
}

fn transfer(kind: TransferKind, tx_index: u32, log: Option<u32>, from: [u8; 20], to: [u8; 20]) -> Transfer {
    Transfer {
        kind,
        tx_hash: [tx_index as u8 + 1; 32],
        tx_index,
        log_index: log,
        batch_pos: 0,
        contract: (kind != TransferKind::Klay && kind != TransferKind::Internal).then_some([0xcc; 20]),
        from,
        to,
        value: U256::from(5u8),
        token_id: None,
        operator: None,
    }
}

fn rows(number: u64) -> BlockRows {
    BlockRows {
        number,
        hash: [0xbb; 32],
        parent: [0xba; 32],
        timestamp: 100,
        txs: vec![tx(0, 0xaa, 0x01), tx(1, 0x02, 0x03)],
        transfers: vec![
            transfer(TransferKind::Ft, 1, Some(3), [0x02; 20], ME),
            transfer(TransferKind::Klay, 0, None, ME, [0x01; 20]),
            transfer(TransferKind::Nft, 1, Some(4), [0x02; 20], [0x03; 20]),
        ],
    }
}

fn body(e: &Event) -> Value {
    serde_json::from_str(&e.body).unwrap()
}

#[test]
fn address_activity_in_block_order_filtered_by_kind_and_contract() {
    let all = hook(
        "a",
        Kind::AddressActivity,
        Filter::Activity {
            address: ME,
            kinds: vec![],
            contracts: vec![],
        },
    );
    let ft = hook(
        "f",
        Kind::AddressActivity,
        Filter::Activity {
            address: ME,
            kinds: vec!["ft".into()],
            contracts: vec![],
        },
    );
    let other = hook(
        "c",
        Kind::AddressActivity,
        Filter::Activity {
            address: ME,
            kinds: vec![],
            contracts: vec![[0xdd; 20]],
        },
    );
    // Internal transfers only by name, in call order before the tx's logs.
    let int = hook(
        "i",
        Kind::AddressActivity,
        Filter::Activity {
            address: ME,
            kinds: vec!["internal".into(), "ft".into()],
            contracts: vec![],
        },
    );
    let internal = [transfer(TransferKind::Internal, 1, None, [0x03; 20], ME)];
    let r = rows(10);
    let data = BlockData {
        rows: &r,
        logs: &[],
        internal: &internal,
    };
    let ev = block_events(&[all, ft, other, int], &data, 7);
    let got: Vec<(String, String, String)> = ev
        .iter()
        .map(|e| {
            let b = body(e);
            (
                e.hook.clone(),
                b["event"]["kind"].as_str().unwrap().into(),
                b["event"]["direction"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), "klay".into(), "out".into()),
            ("a".into(), "ft".into(), "in".into()),
            ("f".into(), "ft".into(), "in".into()),
            // a contract filter leaves KLAY alone
            ("c".into(), "klay".into(), "out".into()),
            ("i".into(), "internal".into(), "in".into()),
            ("i".into(), "ft".into(), "in".into()),
        ]
    );
    assert!(ev.iter().all(|e| e.block == Some(10)));
    // The same block read again: the same ids.
    let again = block_events(
        &[hook(
            "a",
            Kind::AddressActivity,
            Filter::Activity {
                address: ME,
                kinds: vec![],
                contracts: vec![],
            },
        )],
        &data,
        99,
    );
    assert_eq!(
        again.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        ev[..2].iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    // A webhook made after the block sees nothing of it.
    let late = Hook {
        from_block: 10,
        ..hook("a", Kind::NewBlock, Filter::None)
    };
    assert!(block_events(&[late], &data, 7).is_empty());
}

#[test]
fn logs_new_blocks_and_balance_crossings() {
    let logs = parse_logs(
        format!(
            r#"[{{"address":"0x{}","topics":["0x{}"],"data":"0x","logIndex":"0x0"}},{{"address":"0x{}","topics":[],"data":"0x","logIndex":"0x1"}}]"#,
            "cc".repeat(20),
            "11".repeat(32),
            "dd".repeat(20)
        )
        .as_bytes(),
    )
    .unwrap();
    let c = Criteria::parse(&format!(r#"{{"address":"0x{}"}}"#, "cc".repeat(20))).unwrap();
    let r = rows(10);
    let data = BlockData {
        rows: &r,
        logs: &logs,
        internal: &[],
    };
    let ev = block_events(
        &[
            hook("l", Kind::Log, Filter::Log(Value::Null, c)),
            hook("b", Kind::NewBlock, Filter::None),
        ],
        &data,
        7,
    );
    assert_eq!(ev.len(), 2);
    assert_eq!(body(&ev[0])["event"]["log"]["logIndex"], "0x0");
    assert_eq!(body(&ev[1])["event"]["number"], 10);

    let klay = hook(
        "k",
        Kind::Balance,
        Filter::Balance {
            address: ME,
            token: None,
            threshold: U256::from(100u8),
        },
    );
    let tok = hook(
        "t",
        Kind::Balance,
        Filter::Balance {
            address: [0x09; 20],
            token: Some([0xcc; 20]),
            threshold: U256::from(1u8),
        },
    );
    let hooks = [klay.clone(), tok];
    let t: Vec<&str> = touched(&hooks, &r, &[]).iter().map(|h| h.id.as_str()).collect();
    assert_eq!(t, vec!["k"], "ME sent a tx; nobody moved 0x09's token");
    assert_eq!(
        crossing(&klay, 10, U256::from(150u8), None, 1),
        (true, None),
        "the first reading sets the side"
    );
    assert_eq!(crossing(&klay, 11, U256::from(120u8), Some(true), 1), (true, None));
    let (side, e) = crossing(&klay, 12, U256::from(99u8), Some(true), 1);
    assert!(!side);
    let e = body(&e.unwrap());
    assert_eq!(
        (e["event"]["crossed"].as_str(), e["event"]["balance"].as_str()),
        (Some("below"), Some("99"))
    );
    assert!(
        crossing(&klay, 13, U256::from(100u8), Some(false), 1).1.is_some(),
        "at the threshold is above"
    );
}

#[test]
fn tx_records_make_one_event_per_state_and_one_failure() {
    let sender = format!("0x{}", "aa".repeat(20));
    let mut r = TxRecord::created(format!("0x{}", "01".repeat(32)), sender.clone(), 3, String::new(), 500);
    r.status = TxStatus::InBlock;
    r.submitted_at = Some(1500);
    r.pending_at = Some(900);
    r.in_block_at = Some(2000);
    r.block_number = Some(12);
    r.success = Some(false);
    let status = hook(
        "s",
        Kind::TxStatus,
        Filter::Txs {
            key: None,
            hash: None,
            sender: Some(sender.clone()),
            statuses: vec![],
        },
    );
    let only = hook(
        "o",
        Kind::TxStatus,
        Filter::Txs {
            key: None,
            hash: Some(r.hash.clone()),
            sender: None,
            statuses: vec![TxStatus::InBlock],
        },
    );
    let failed = hook(
        "f",
        Kind::FailedTx,
        Filter::Txs {
            key: None,
            hash: None,
            sender: Some(sender),
            statuses: vec![],
        },
    );
    let stranger = hook(
        "x",
        Kind::TxStatus,
        Filter::Txs {
            key: None,
            hash: Some(format!("0x{}", "02".repeat(32))),
            sender: None,
            statuses: vec![],
        },
    );
    let ev = tx_events(&[status, only, failed, stranger], &r, 7);
    let got: Vec<(String, Value, Value)> = ev
        .iter()
        .map(|e| {
            let b = body(e);
            (
                e.hook.clone(),
                b["event"]["status"].clone(),
                b["event"]["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            // Pending came before the webhook was made (created 1000): not told.
            ("s".into(), "Submitted".into(), Value::Null),
            ("s".into(), "InBlock".into(), Value::Null),
            ("o".into(), "InBlock".into(), Value::Null),
            ("f".into(), "InBlock".into(), "reverted".into()),
        ]
    );
    assert_eq!(ev[1].block, Some(12));
    // By access key: the record's key, nothing else.
    let by_key = hook(
        "k",
        Kind::FailedTx,
        Filter::Txs {
            key: Some("k1".into()),
            hash: None,
            sender: None,
            statuses: vec![],
        },
    );
    assert!(
        tx_events(std::slice::from_ref(&by_key), &r, 7).is_empty(),
        "sent without a key"
    );
    let mut keyed = r.clone();
    keyed.key = Some("k1".into());
    assert_eq!(tx_events(&[by_key], &keyed, 7).len(), 1);
    assert_eq!(ev[0].block, None);
    assert_eq!(
        tx_events(
            &[hook(
                "s",
                Kind::TxStatus,
                Filter::Txs {
                    key: None,
                    hash: None,
                    sender: Some(r.sender.clone()),
                    statuses: vec![]
                }
            )],
            &r,
            9
        )[0]
        .id,
        ev[0].id
    );
}
