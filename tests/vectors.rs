//! Real-node test vectors for the raw transaction decoder. Two files, checked alike:
//! - tests/vectors/klaytn_txs.json: recorded from Klaytn v1.12.1 nodes;
//! - tests/vectors/kaia_txs.json: recorded from Kaia v2.2.1 nodes.
//!
//! Every tx in them was signed by an SDK, sent to a node and recorded with what the node reported about it
//! (examples/vectors/generate.js, `--flavour klaytn|kaia`); decoding its raw bytes must give the node's answer,
//! field by field. The only exception is EIP-7702 in the Klaytn file, which v1.12.1 refuses: signed offline and
//! recorded with ethers' own answer.

use std::collections::BTreeSet;

use kengate::rawtx::decode::{decode, decode_hex, DecodeError, DecodedTx};
use kengate::rawtx::{KlaytnType, TxType};
use serde::Deserialize;

/// One vector file and what it must hold.
struct VectorFile {
    /// Its name under tests/vectors/.
    file: &'static str,
    json: &'static str,
    /// At least this many vectors.
    min_vectors: usize,
    /// `source` of the vectors EN1 of the local cluster answered.
    node_source: &'static str,
    /// `source` of the ChainDataAnchoring vectors (0x48..0x4a), answered by a node started with
    /// --txpool.allow-local-anchortx (examples/vectors/anchor-node.sh).
    anchor_source: &'static str,
    /// Ethereum typed kinds (the byte after 0x78) the node accepts, each bare and 0x78-wrapped.
    eth_kinds: &'static [u8],
    /// `typeInt`s the node refuses, signed offline instead (`"source": "ethers-offline"`), bare and wrapped.
    offline: &'static [u16],
}

/// Klaytn v1.12.1 accepts: legacy (EIP-155 and pre-155), the 21 native types, Ethereum 0x01/0x02 (bare and
/// 0x78-wrapped). It refuses EIP-7702 0x04, which the file still holds, signed offline.
const KLAYTN: VectorFile = VectorFile {
    file: "klaytn_txs.json",
    json: include_str!("vectors/klaytn_txs.json"),
    min_vectors: 30,
    node_source: "node",
    anchor_source: "anchor-node",
    eth_kinds: &[0x01, 0x02, 0x04],
    offline: &[0x7804],
};

/// Kaia v2.2.1 (every fork through Osaka at genesis) accepts, and the file holds from the node itself: legacy
/// (EIP-155 and pre-155 V=27/28), the same 21 native types, and Ethereum 0x01 access list, 0x02 dynamic fee,
/// 0x03 blob (EIP-4844, network form with an EIP-7594 version-1 sidecar) and 0x04 set-code (EIP-7702), each bare
/// (eth_sendRawTransaction) and 0x78-wrapped (kaia_sendRawTransaction). Nothing is signed offline.
const KAIA: VectorFile = VectorFile {
    file: "kaia_txs.json",
    json: include_str!("vectors/kaia_txs.json"),
    min_vectors: 30,
    node_source: "kaia-node",
    anchor_source: "kaia-anchor-node",
    eth_kinds: &[0x01, 0x02, 0x03, 0x04],
    offline: &[],
};

/// The native type bytes both node versions accept (`tx_internal_data.go`: 0x18 AccountCreation and 0x40 Batch
/// are declared but never enabled; Kaia v2 added none).
const NATIVE_CODES: [u8; 21] = [
    0x08, 0x09, 0x0a, 0x10, 0x11, 0x12, 0x20, 0x21, 0x22, 0x28, 0x29, 0x2a, 0x30, 0x31, 0x32, 0x38, 0x39, 0x3a, 0x48,
    0x49, 0x4a,
];

/// One recorded transaction (field names as generate.js writes them).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    name: String,
    /// The file's `node_source` or `anchor_source`, or "ethers-offline" (a type the node refused; ethers' own
    /// hash and sender, the refusal in `nodeError`).
    source: String,
    raw: String,
    from: String,
    nonce: u64,
    hash: String,
    sender_tx_hash: String,
    chain_id: Option<u64>,
    type_int: u16,
    /// The node's type name, when a node reported one.
    #[serde(rename = "type")]
    type_name: Option<String>,
    fee_payer: Option<String>,
    to: Option<String>,
}

impl VectorFile {
    fn vectors(&self) -> Vec<Vector> {
        serde_json::from_str(self.json).unwrap_or_else(|e| panic!("tests/vectors/{} parses: {e}", self.file))
    }
}

fn hex32(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}

fn raw_bytes(v: &Vector) -> Vec<u8> {
    hex::decode(v.raw.trim_start_matches("0x")).expect("vector hex")
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

/// Every vector of `f` decodes to what the node said.
fn decodes_every_vector(f: &VectorFile) {
    let vectors = f.vectors();
    assert!(
        vectors.len() >= f.min_vectors,
        "{}: only {} vectors",
        f.file,
        vectors.len()
    );
    let mut failures = Vec::new();
    for v in &vectors {
        match decode_hex(&v.raw) {
            Ok(tx) => failures.extend(
                mismatches(v, &tx)
                    .into_iter()
                    .map(|m| format!("{} ({}): {m}", v.name, v.source)),
            ),
            Err(e) => failures.push(format!("{} ({}, typeInt 0x{:04x}): {e}", v.name, v.source, v.type_int)),
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} mismatch(es):\n{}",
        f.file,
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn decodes_every_klaytn_vector() {
    decodes_every_vector(&KLAYTN);
}

#[test]
fn decodes_every_kaia_vector() {
    decodes_every_vector(&KAIA);
}

/// A vector's wire form from what was recorded (the node's `typeInt` and `chainId`, and the raw's envelope),
/// not from `decode`, so coverage holds whatever the decoder makes of it; checked against the raw's leading
/// byte(s).
fn wire_form(file: &str, v: &Vector) -> String {
    let raw = raw_bytes(v);
    let (first, second) = (raw.first().copied(), raw.get(1).copied());
    let [hi, lo] = v.type_int.to_be_bytes();
    let (form, leading_ok) = match (hi, lo) {
        (0, 0) => (format!("legacy chain={}", v.chain_id.is_some()), first >= Some(0xc0)),
        (0, code) => (format!("0x{code:02x}"), first == Some(code)),
        (0x78, kind) => {
            let wrapped = first == Some(0x78);
            let leading = if wrapped { second } else { first };
            (format!("eth 0x{kind:02x} wrapped={wrapped}"), leading == Some(kind))
        }
        _ => (format!("typeInt 0x{:04x}", v.type_int), false),
    };
    assert!(
        leading_ok,
        "{file}: {}: raw starts 0x{} but typeInt is 0x{:04x}",
        v.name,
        hex::encode(raw.get(..2).unwrap_or(&raw)),
        v.type_int
    );
    form
}

/// `f` has a vector of every wire form its node accepts (and of the refused ones it records offline), each
/// answered by the node it should be.
fn covers_every_type(f: &VectorFile) {
    let vectors = f.vectors();
    let seen: BTreeSet<String> = vectors.iter().map(|v| wire_form(f.file, v)).collect();
    let mut want: Vec<String> = NATIVE_CODES.iter().map(|c| format!("0x{c:02x}")).collect();
    want.extend(["legacy chain=true".into(), "legacy chain=false".into()]);
    for eth in f.eth_kinds {
        for wrapped in [false, true] {
            want.push(format!("eth 0x{eth:02x} wrapped={wrapped}"));
        }
    }
    let missing: Vec<&String> = want.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "{}: no vector for {missing:?}", f.file);
    let extra: Vec<&String> = seen.iter().filter(|s| !want.contains(*s)).collect();
    assert!(extra.is_empty(), "{}: vectors of types not listed: {extra:?}", f.file);

    for v in &vectors {
        let anchoring = (0x48..=0x4a).contains(&v.type_int);
        let expected = if f.offline.contains(&v.type_int) {
            "ethers-offline"
        } else if anchoring {
            f.anchor_source
        } else {
            f.node_source
        };
        assert_eq!(v.source, expected, "{}: {}", f.file, v.name);
    }
}

#[test]
fn klaytn_vectors_cover_every_type() {
    covers_every_type(&KLAYTN);
}

#[test]
fn kaia_vectors_cover_every_type() {
    covers_every_type(&KAIA);
}

#[test]
fn native_codes_are_the_decoders() {
    let ours: Vec<u8> = KlaytnType::all().map(|t| t.code()).collect();
    assert_eq!(ours, NATIVE_CODES);
}

/// No proper prefix of a vector decodes, and one trailing byte is refused as such (for vectors that decode at
/// all; the others are reported by `decodes_every_*_vector`).
fn no_prefix_or_extension_decodes(f: &VectorFile) {
    for v in f.vectors() {
        let raw = raw_bytes(&v);
        for len in 0..raw.len() {
            assert!(
                decode(&raw[..len]).is_err(),
                "{}: {}: a {len}-byte prefix decoded",
                f.file,
                v.name
            );
        }
        if decode(&raw).is_ok() {
            let longer = [&raw[..], &[0x80]].concat();
            assert_eq!(
                decode(&longer),
                Err(DecodeError::TrailingBytes(1)),
                "{}: {}",
                f.file,
                v.name
            );
        }
    }
}

#[test]
fn no_prefix_or_extension_of_a_klaytn_vector_decodes() {
    no_prefix_or_extension_decodes(&KLAYTN);
}

#[test]
fn no_prefix_or_extension_of_a_kaia_vector_decodes() {
    no_prefix_or_extension_decodes(&KAIA);
}
