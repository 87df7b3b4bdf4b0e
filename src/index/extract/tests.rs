use super::*;

fn raw(s: String) -> Box<RawValue> {
    RawValue::from_string(s).unwrap()
}

fn topic_addr(b: u8) -> String {
    format!("0x{}{}", "00".repeat(12), format!("{b:02x}").repeat(20))
}

fn addr(b: u8) -> String {
    format!("0x{}", format!("{b:02x}").repeat(20))
}

fn word(n: u64) -> String {
    format!("{n:064x}")
}

fn hash(b: u8) -> String {
    format!("0x{}", format!("{b:02x}").repeat(32))
}

fn sig(h: &[u8; 32]) -> String {
    format!("0x{}", h.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// One block with one tx (from 0x01 to `to`, `value`) whose receipt has `logs`.
fn block(to: Option<u8>, value: &str, status: &str, logs: &[String]) -> (Box<RawValue>, Box<RawValue>) {
    let to = to.map_or("null".to_owned(), |t| format!("\"{}\"", addr(t)));
    let b = format!(
        r#"{{"number":"0x10","hash":"{}","parentHash":"{}","timestamp":"0x64","transactions":[
            {{"hash":"{}","from":"{}","to":{to},"value":"{value}","typeInt":9,"feePayer":"{}","feeRatio":"0x1e",
              "gasPrice":"0x5d21dba00","input":"0xa9059cbb0000"}}]}}"#,
        hash(0xbb),
        hash(0xaa),
        hash(0x11),
        addr(1),
        addr(9)
    );
    let r = format!(
        r#"[{{"transactionHash":"{}","status":"{status}","gasUsed":"0x5208","effectiveGasPrice":"0x6","contractAddress":"{}","logs":[{}]}}]"#,
        hash(0x11),
        addr(0xcc),
        logs.join(",")
    );
    (raw(b), raw(r))
}

fn log(contract: u8, topics: &[String], data: &str, index: u32) -> String {
    let t: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"{{"address":"{}","topics":[{}],"data":"{data}","logIndex":"{index:#x}"}}"#,
        addr(contract),
        t.join(",")
    )
}

#[test]
fn a_tx_its_value_and_its_fields() {
    let (b, r) = block(Some(2), "0x64", "0x1", &[]);
    let rows = extract(&b, &r).unwrap();
    assert_eq!((rows.number, rows.timestamp), (16, 100));
    assert_eq!(rows.parent, [0xaa; 32]);
    let tx = &rows.txs[0];
    assert_eq!((tx.type_int, tx.fee_payer, tx.fee_ratio), (9, Some([9; 20]), Some(30)));
    assert_eq!((tx.gas_used, tx.gas_price), (21000, U256::from(6u8)));
    assert_eq!(tx.selector, Some([0xa9, 0x05, 0x9c, 0xbb]));
    assert_eq!(tx.contract_created, None, "only a deploy creates a contract");
    assert_eq!(rows.transfers.len(), 1);
    let t = &rows.transfers[0];
    assert_eq!(
        (t.kind, t.from, t.to, t.value),
        (Kind::Klay, [1; 20], [2; 20], U256::from(100u8))
    );
}

#[test]
fn a_failed_tx_moves_nothing_and_a_deploy_sends_to_its_contract() {
    let (b, r) = block(Some(2), "0x64", "0x0", &[]);
    let rows = extract(&b, &r).unwrap();
    assert!(!rows.txs[0].success);
    assert!(rows.transfers.is_empty());
    let (b, r) = block(None, "0x5", "0x1", &[]);
    let rows = extract(&b, &r).unwrap();
    assert_eq!(rows.txs[0].contract_created, Some([0xcc; 20]));
    assert_eq!(rows.transfers[0].to, [0xcc; 20]);
}

#[test]
fn token_events_told_apart_by_shape() {
    let ft = log(
        0x70,
        &[sig(&TRANSFER), topic_addr(1), topic_addr(2)],
        &format!("0x{}", word(500)),
        0,
    );
    let nft = log(
        0x71,
        &[sig(&TRANSFER), topic_addr(0), topic_addr(3), format!("0x{}", word(7))],
        "0x",
        1,
    );
    let single = log(
        0x72,
        &[sig(&TRANSFER_SINGLE), topic_addr(1), topic_addr(1), topic_addr(4)],
        &format!("0x{}{}", word(9), word(3)),
        2,
    );
    // ids [1, 2], values [10, 20]
    let batch_data = format!(
        "0x{}{}{}{}{}{}{}{}",
        word(64),
        word(160),
        word(2),
        word(1),
        word(2),
        word(2),
        word(10),
        word(20)
    );
    let batch = log(
        0x72,
        &[sig(&TRANSFER_BATCH), topic_addr(1), topic_addr(4), topic_addr(5)],
        &batch_data,
        3,
    );
    let (b, r) = block(Some(2), "0x0", "0x1", &[ft, nft, single, batch]);
    let rows = extract(&b, &r).unwrap();
    let got: Vec<(Kind, u8, u8, u64, Option<u64>, u32)> = rows
        .transfers
        .iter()
        .map(|t| {
            (
                t.kind,
                t.from[0],
                t.to[0],
                t.value.to::<u64>(),
                t.token_id.map(|i| i.to::<u64>()),
                t.batch_pos,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Kind::Ft, 1, 2, 500, None, 0),
            (Kind::Nft, 0, 3, 1, Some(7), 0),
            (Kind::Mt, 1, 4, 3, Some(9), 0),
            (Kind::Mt, 4, 5, 10, Some(1), 0),
            (Kind::Mt, 4, 5, 20, Some(2), 1),
        ],
        "a zero-value tx makes no KLAY transfer"
    );
    assert_eq!(rows.transfers[3].log_index, Some(3));
    assert_eq!(rows.transfers[0].contract, Some([0x70; 20]));
}

#[test]
fn logs_that_lie_about_their_shape_are_not_transfers() {
    let t = |a: u8| topic_addr(a);
    let long_data = log(
        0x70,
        &[sig(&TRANSFER), t(1), t(2)],
        &format!("0x{}{}", word(1), word(2)),
        0,
    );
    let dirty = format!("0x{}", "ff".repeat(32));
    let dirty_topic = log(0x70, &[sig(&TRANSFER), dirty, t(2)], &format!("0x{}", word(1)), 1);
    let nft_with_data = log(
        0x71,
        &[sig(&TRANSFER), t(1), t(2), format!("0x{}", word(1))],
        &format!("0x{}", word(1)),
        2,
    );
    // a batch claiming more ids than it carries, and one whose arrays differ in length
    let batch_topics = [sig(&TRANSFER_BATCH), t(1), t(4), t(5)];
    let short_batch = log(
        0x72,
        &batch_topics,
        &format!("0x{}{}{}", word(64), word(96), word(1_000_000)),
        3,
    );
    let uneven = log(
        0x72,
        &batch_topics,
        &format!("0x{}{}{}{}{}", word(64), word(128), word(1), word(1), word(0)),
        4,
    );
    let other = log(0x73, &[hash(0x42)], "0x", 5);
    let odd_hex = log(0x70, &[sig(&TRANSFER), t(1), t(2)], "0x123", 6);
    let logs = [
        long_data,
        dirty_topic,
        nft_with_data,
        short_batch,
        uneven,
        other,
        odd_hex,
    ];
    let (b, r) = block(Some(2), "0x0", "0x1", &logs);
    assert!(extract(&b, &r).unwrap().transfers.is_empty());
}

#[test]
fn a_block_that_does_not_add_up_is_an_error() {
    let (b, _) = block(Some(2), "0x1", "0x1", &[]);
    assert!(extract(&b, &raw("[]".into())).is_err());
    assert!(extract(&raw("{}".into()), &raw("[]".into())).is_err());
    let (_, r) = block(Some(2), "0x1", "0x1", &[]);
    let other = raw(r.get().replace(&hash(0x11)[2..], &"22".repeat(32)));
    assert!(extract(&b, &other).is_err(), "a receipt of another tx");
}

#[test]
fn event_signatures_are_the_keccak_of_their_declarations() {
    use sha3::{Digest, Keccak256};
    for (decl, want) in [
        ("Transfer(address,address,uint256)", TRANSFER),
        (
            "TransferSingle(address,address,address,uint256,uint256)",
            TRANSFER_SINGLE,
        ),
        (
            "TransferBatch(address,address,address,uint256[],uint256[])",
            TRANSFER_BATCH,
        ),
    ] {
        let got: [u8; 32] = Keccak256::digest(decl.as_bytes()).into();
        assert_eq!(got, want, "{decl}");
    }
}

/// A call frame (Klaytn's callTracer output) with `calls` inside.
fn frame(kind: &str, from: u8, to: u8, value: &str, error: bool, calls: &[String]) -> String {
    let error = if error { r#","error":"execution reverted""# } else { "" };
    format!(
        r#"{{"type":"{kind}","from":"{}","to":"{}","value":"{value}","gas":"0x0","gasUsed":"0x0","input":"0x","output":"0x"{error},"calls":[{}]}}"#,
        addr(from),
        addr(to),
        calls.join(",")
    )
}

#[test]
fn internal_transfers_are_the_value_carrying_frames_that_stood() {
    let (b, r) = block(Some(2), "0x64", "0x1", &[]);
    let rows = extract(&b, &r).unwrap();
    let inner = [
        // 2 → 3 (5 peb), which passes 1 on to 4
        frame("CALL", 2, 3, "0x5", false, &[frame("CALL", 3, 4, "0x1", false, &[])]),
        // a reverted subtree moves nothing, however deep
        frame("CALL", 2, 5, "0x7", true, &[frame("CALL", 5, 6, "0x7", false, &[])]),
        // a delegate call carries its caller's value but moves none; a zero-value call neither
        frame("DELEGATECALL", 2, 7, "0x64", false, &[]),
        frame("CALL", 2, 8, "0x0", false, &[]),
        frame("CREATE2", 2, 0xcd, "0x2", false, &[]),
        frame("SELFDESTRUCT", 0xcd, 9, "0x2", false, &[]),
    ];
    let trace = format!(
        r#"[{{"txHash":"{}","result":{}}}]"#,
        hash(0x11),
        frame("CALL", 1, 2, "0x64", false, &inner)
    );
    let t = internal_transfers(&raw(trace.clone()), &rows).unwrap();
    let got: Vec<(u8, u8, u64, u32)> = t
        .iter()
        .map(|t| (t.from[0], t.to[0], t.value.to::<u64>(), t.batch_pos))
        .collect();
    assert_eq!(got, vec![(2, 3, 5, 1), (3, 4, 1, 2), (2, 0xcd, 2, 3), (0xcd, 9, 2, 4)]);
    assert!(t
        .iter()
        .all(|t| t.kind == Kind::Internal && t.log_index.is_none() && t.contract.is_none()));

    // a failed tx, or one whose top frame failed, moved nothing
    let (b, r) = block(Some(2), "0x64", "0x0", &[]);
    let failed = extract(&b, &r).unwrap();
    assert!(internal_transfers(&raw(trace), &failed).unwrap().is_empty());
    let reverted = format!(
        r#"[{{"txHash":"{}","result":{}}}]"#,
        hash(0x11),
        frame("CALL", 1, 2, "0x0", true, &inner)
    );
    assert!(internal_transfers(&raw(reverted), &rows).unwrap().is_empty());

    // traces that do not match the block's txs are an error, not a guess
    assert!(internal_transfers(&raw("[]".into()), &rows).is_err());
    assert!(internal_transfers(&raw("{}".into()), &rows).is_err());
    let no_to = format!(
        r#"[{{"txHash":"{}","result":{{"type":"CALL","from":"{}","calls":[{{"type":"CALL","from":"{}","value":"0x1"}}]}}}}]"#,
        hash(0x11),
        addr(1),
        addr(2)
    );
    assert!(internal_transfers(&raw(no_to), &rows).is_err());
}
