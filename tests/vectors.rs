//! Real-node test vectors for the raw transaction decoder: every tx in tests/vectors/klaytn_txs.json was signed
//! by an SDK, sent to a Klaytn v1.12.1 node and recorded with what the node reported about it
//! (examples/vectors/generate.js); decoding its raw bytes must give the node's answer, field by field.

use std::collections::BTreeSet;

use kengate::txpath::decode::{decode, decode_hex, DecodeError, DecodedTx};
use kengate::txpath::{KlaytnType, TxType};
use serde::Deserialize;

const VECTORS: &str = include_str!("vectors/klaytn_txs.json");

/// One recorded transaction (field names as generate.js writes them).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    name: String,
    /// "node" (EN1 of the local cluster), "anchor-node" (a node that takes local anchoring txs) or
    /// "ethers-offline" (a type Klaytn v1.12.1 cannot take; ethers' own hash and sender).
    source: String,
    raw: String,
    from: String,
    nonce: u64,
    hash: String,
    sender_tx_hash: String,
    chain_id: Option<u64>,
    type_int: u16,
    /// Klaytn's type name, when a node reported one.
    #[serde(rename = "type")]
    type_name: Option<String>,
    fee_payer: Option<String>,
    to: Option<String>,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(VECTORS).expect("tests/vectors/klaytn_txs.json parses")
}

fn hex32(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}

/// The differences between what the node reported and what `decode` says.
fn mismatches(v: &Vector, tx: &DecodedTx) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |what: &str, node: String, ours: String| {
        if node != ours {
            out.push(format!("{what}: node {node}, decoded {ours}"));
        }
    };
    cmp("from", v.from.to_lowercase(), tx.sender.to_string());
    cmp("nonce", v.nonce.to_string(), tx.nonce.to_string());
    cmp("hash", v.hash.to_lowercase(), hex32(&tx.hash));
    cmp(
        "senderTxHash",
        v.sender_tx_hash.to_lowercase(),
        hex32(&tx.sender_tx_hash),
    );
    cmp("chainId", format!("{:?}", v.chain_id), format!("{:?}", tx.chain_id));
    cmp("typeInt", v.type_int.to_string(), tx.tx_type.type_int().to_string());
    cmp(
        "feePayer",
        format!("{:?}", v.fee_payer.as_ref().map(|a| a.to_lowercase())),
        format!("{:?}", tx.fee_payer.map(|a| a.to_string())),
    );
    cmp(
        "to",
        format!("{:?}", v.to.as_ref().map(|a| a.to_lowercase())),
        format!("{:?}", tx.to.map(|a| a.to_string())),
    );
    if let Some(name) = &v.type_name {
        cmp("type", name.clone(), tx.tx_type.name().to_string());
    }
    let wrapped = matches!(tx.tx_type, TxType::Ethereum { wrapped: true, .. });
    cmp(
        "0x78 envelope",
        v.raw.starts_with("0x78").to_string(),
        wrapped.to_string(),
    );
    out
}

#[test]
fn decodes_every_node_vector() {
    let vectors = vectors();
    assert!(vectors.len() >= 30, "only {} vectors", vectors.len());
    let mut failures = Vec::new();
    for v in &vectors {
        match decode_hex(&v.raw) {
            Ok(tx) => failures.extend(
                mismatches(v, &tx)
                    .into_iter()
                    .map(|m| format!("{} ({}): {m}", v.name, v.source)),
            ),
            Err(e) => failures.push(format!("{} ({}): {e}", v.name, v.source)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn vectors_cover_every_type() {
    let vectors = vectors();
    let decoded: Vec<(TxType, Option<u64>)> = vectors
        .iter()
        .map(|v| decode_hex(&v.raw).map(|t| (t.tx_type, t.chain_id)))
        .collect::<Result<_, _>>()
        .expect("every vector decodes");
    let seen: BTreeSet<String> = decoded
        .iter()
        .map(|(t, chain)| match t {
            TxType::Legacy => format!("legacy chain={}", chain.is_some()),
            TxType::Klaytn(k) => format!("0x{:02x}", k.code()),
            TxType::Ethereum { kind, wrapped } => format!("eth 0x{:02x} wrapped={wrapped}", *kind as u8),
        })
        .collect();
    let mut want: Vec<String> = KlaytnType::all().map(|k| format!("0x{:02x}", k.code())).collect();
    want.extend(["legacy chain=true".into(), "legacy chain=false".into()]);
    for eth in [0x01, 0x02, 0x04] {
        for wrapped in [false, true] {
            want.push(format!("eth 0x{eth:02x} wrapped={wrapped}"));
        }
    }
    let missing: Vec<&String> = want.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "no vector for {missing:?}");
    // Everything but EIP-7702 (which Klaytn v1.12.1 does not know) was answered by a real node.
    for v in &vectors {
        let set_code = v.type_int == 0x7804;
        assert_eq!(
            v.source == "ethers-offline",
            set_code,
            "{}: source {}",
            v.name,
            v.source
        );
    }
}

#[test]
fn no_prefix_or_extension_of_a_vector_decodes() {
    for v in vectors() {
        let raw = hex::decode(v.raw.trim_start_matches("0x")).expect("vector hex");
        for len in 0..raw.len() {
            assert!(decode(&raw[..len]).is_err(), "{}: a {len}-byte prefix decoded", v.name);
        }
        let longer = [&raw[..], &[0x80]].concat();
        assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes(1)), "{}", v.name);
    }
}
