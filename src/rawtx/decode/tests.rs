//! Table-driven tests of `decode`: hand-built transactions of every wire form (legacy and typed ones signed
//! here with k256), and malformed inputs of every kind. Real node vectors are checked in tests/vectors.rs.

use alloy_rlp::{Encodable, Header};
use k256::ecdsa::SigningKey;

use super::*;

// ------------------------------------------------------------------------------------------------ builders

const FROM: [u8; 20] = [0xf0; 20];
const TO: [u8; 20] = [0x70; 20];
const PAYER: [u8; 20] = [0xfe; 20];
/// V of a native signature for chain 1337, recovery id 0.
const V1337: u64 = 35 + 2 * 1337;

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    b.encode(&mut out);
    out
}

fn uint(v: u64) -> Vec<u8> {
    encode_u64(v)
}

/// A minimal big-endian integer from fixed-size bytes.
fn big(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    bytes(&b[start..])
}

fn list(items: &[Vec<u8>]) -> Vec<u8> {
    let payload: Vec<u8> = items.concat();
    let mut out = Vec::new();
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut out);
    out.extend(payload);
    out
}

fn prefixed(prefix: &[u8], items: &[Vec<u8>]) -> Vec<u8> {
    [prefix.to_vec(), list(items)].concat()
}

/// A native signature list with R = 1, S = 2 (valid scalars; native signatures are not recovered).
fn sigs(vs: &[u64]) -> Vec<u8> {
    list(
        &vs.iter()
            .map(|&v| list(&[uint(v), uint(1), uint(2)]))
            .collect::<Vec<_>>(),
    )
}

/// The fields of a valid native tx of type `t` (nonce 5, chain 1337), from the decoder's own layout table:
/// this checks the plumbing (counts, fee payer, hashes); tests/vectors.rs checks the table against real nodes.
fn native_fields(t: KlaytnType) -> Vec<Vec<u8>> {
    let mut f = vec![uint(5), uint(25_000_000_000), uint(100_000)];
    for field in layout(t.kind, t.fee == FeeMode::DelegatedWithRatio) {
        f.push(match field {
            Field::To | Field::ToOrCreate => bytes(&TO),
            Field::Value => uint(1000),
            Field::From => bytes(&FROM),
            Field::Input => bytes(b"input"),
            Field::Key => bytes(&[0x01, 0xc0]),
            Field::HumanReadable => uint(0),
            Field::CodeFormat => uint(0),
            Field::FeeRatio => uint(30),
        });
    }
    f.push(sigs(&[V1337]));
    if t.fee_delegated() {
        f.push(bytes(&PAYER));
        f.push(sigs(&[V1337 + 1]));
    }
    f
}

fn native_tx(code: u8) -> Vec<Vec<u8>> {
    native_fields(KlaytnType::from_code(code).unwrap())
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x11; 32]).unwrap()
}

fn key_address() -> Address {
    let point = key().verifying_key().to_encoded_point(false);
    Address(keccak(&[&point.as_bytes()[1..]])[12..].try_into().unwrap())
}

/// Signs `prehash`: (recovery id, R, S) as RLP items.
fn sign(prehash: [u8; 32]) -> (u64, Vec<u8>, Vec<u8>) {
    let (sig, recid) = key().sign_prehash_recoverable(&prehash).unwrap();
    (
        u64::from(recid.to_byte()),
        big(&sig.r().to_bytes()),
        big(&sig.s().to_bytes()),
    )
}

/// A signed legacy tx's fields (nonce 7, to TO), EIP-155 for `chain` or pre-155 when None.
fn legacy_fields(chain: Option<u64>) -> Vec<Vec<u8>> {
    let mut f = vec![
        uint(7),
        uint(25_000_000_000),
        uint(21_000),
        bytes(&TO),
        uint(1000),
        bytes(&[]),
    ];
    let signed = match chain {
        None => list(&f),
        Some(c) => list(&[f.clone(), vec![uint(c), uint(0), uint(0)]].concat()),
    };
    let (recid, r, s) = sign(keccak(&[&signed]));
    f.extend([uint(chain.map_or(27, |c| 35 + 2 * c) + recid), r, s]);
    f
}

/// A signed Ethereum typed tx's fields (chain 1337, nonce 9).
fn typed_fields(kind: EthType) -> Vec<Vec<u8>> {
    let access = list(&[list(&[bytes(&TO), list(&[bytes(&[0x01; 32])])])]);
    let mut f = vec![uint(1337), uint(9)];
    match kind {
        EthType::AccessList => f.push(uint(25_000_000_000)),
        _ => f.extend([uint(1), uint(25_000_000_000)]),
    }
    f.extend([uint(50_000), bytes(&TO), uint(1000), bytes(b"data"), access]);
    if kind == EthType::SetCode {
        f.push(list(&[list(&[
            uint(1337),
            bytes(&TO),
            uint(3),
            uint(1),
            uint(5),
            uint(6),
        ])]));
    }
    let (recid, r, s) = sign(keccak(&[&prefixed(&[kind as u8], &f)]));
    f.extend([uint(recid), r, s]);
    f
}

fn with(mut f: Vec<Vec<u8>>, index: usize, item: Vec<u8>) -> Vec<Vec<u8>> {
    f[index] = item;
    f
}

/// One line naming what was decoded (fixed test addresses by name).
fn summary(tx: &DecodedTx) -> String {
    let name = |a: Address| match a.0 {
        FROM => "FROM".to_string(),
        TO => "TO".to_string(),
        PAYER => "PAYER".to_string(),
        _ if a == key_address() => "KEY".to_string(),
        _ => a.to_string(),
    };
    let mut s = format!("{} sender={} nonce={}", tx.tx_type.name(), name(tx.sender), tx.nonce);
    match tx.chain_id {
        Some(c) => s += &format!(" chain={c}"),
        None => s += " chain=none",
    }
    if let Some(to) = tx.to {
        s += &format!(" to={}", name(to));
    }
    if let Some(p) = tx.fee_payer {
        s += &format!(" payer={}", name(p));
    }
    s
}

fn check(raw: &[u8], expected: Result<&str, DecodeError>) {
    let got = decode(raw);
    assert_eq!(
        got.as_ref().map(summary).map_err(Clone::clone),
        expected.map(str::to_string),
        "raw {raw:02x?}"
    );
    if let Ok(tx) = got {
        // Hash rules: keccak(raw) except for 0x78-wrapped typed txs; SenderTxHash differs only when delegated.
        let body = if raw[0] == 0x78 { &raw[1..] } else { raw };
        assert_eq!(tx.hash, keccak(&[body]));
        assert_eq!(tx.fee_payer.is_some(), tx.sender_tx_hash != tx.hash);
    }
}

fn check_hex(s: &str, expected: Result<&str, DecodeError>) {
    assert_eq!(
        decode_hex(s).as_ref().map(summary).map_err(Clone::clone),
        expected.map(str::to_string),
        "hex {s}"
    );
}

fn field(field: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::BadField { field, reason }
}

// ------------------------------------------------------------------------------------------------ tests

#[test]
fn every_native_type() {
    for t in KlaytnType::all() {
        let raw = prefixed(&[t.code()], &native_fields(t));
        let to = match t.kind {
            KlaytnKind::AccountUpdate | KlaytnKind::Cancel | KlaytnKind::ChainDataAnchoring => "",
            _ => " to=TO",
        };
        let payer = if t.fee_delegated() { " payer=PAYER" } else { "" };
        check(
            &raw,
            Ok(&format!("{} sender=FROM nonce=5 chain=1337{to}{payer}", t.name())),
        );
    }
}

#[test]
fn native_details() {
    // SenderTxHash: keccak(type || rlp(fields up to the sender signatures)).
    let f = native_tx(0x09);
    let tx = decode(&prefixed(&[0x09], &f)).unwrap();
    assert_eq!(tx.sender_tx_hash, keccak(&[&prefixed(&[0x09], &f[..7])]));
    // Deploy: an empty `to` is a creation.
    check(
        &prefixed(&[0x28], &with(native_tx(0x28), 3, bytes(&[])))[..],
        Ok("TxTypeSmartContractDeploy sender=FROM nonce=5 chain=1337"),
    );
    // Multisig: several signatures of one chain id; recovery is never asked to match `from`.
    check(
        &prefixed(&[0x08], &with(native_tx(0x08), 6, sigs(&[V1337, V1337 + 1, V1337]))),
        Ok("TxTypeValueTransfer sender=FROM nonce=5 chain=1337 to=TO"),
    );
    // High S is fine in a native signature (Klaytn checks them with homestead=false).
    let high_s = list(&[list(&[uint(V1337), uint(1), bytes(&[0xff; 16])])]);
    check(
        &prefixed(&[0x38], &with(native_tx(0x38), 4, high_s)),
        Ok("TxTypeCancel sender=FROM nonce=5 chain=1337"),
    );
    // Account keys: Nil, Public (a byte string body), WeightedMultiSig.
    for key in [
        vec![0x80],
        [&[0x02][..], &bytes(&[0x02; 33])].concat(),
        [vec![0x04], list(&[uint(2), list(&[])])].concat(),
    ] {
        check(
            &prefixed(&[0x20], &with(native_tx(0x20), 4, bytes(&key))),
            Ok("TxTypeAccountUpdate sender=FROM nonce=5 chain=1337"),
        );
    }
}

#[test]
fn legacy_and_typed_recover_the_signer() {
    check(
        &list(&legacy_fields(Some(1337))),
        Ok("TxTypeLegacyTransaction sender=KEY nonce=7 chain=1337 to=TO"),
    );
    check(
        &list(&legacy_fields(Some(1))),
        Ok("TxTypeLegacyTransaction sender=KEY nonce=7 chain=1 to=TO"),
    );
    check(
        &list(&legacy_fields(None)),
        Ok("TxTypeLegacyTransaction sender=KEY nonce=7 chain=none to=TO"),
    );
    for (kind, name) in [
        (EthType::AccessList, "TxTypeEthereumAccessList"),
        (EthType::DynamicFee, "TxTypeEthereumDynamicFee"),
        (EthType::SetCode, "TxTypeEthereumSetCode"),
    ] {
        let bare = prefixed(&[kind as u8], &typed_fields(kind));
        let wrapped = [&[0x78][..], &bare].concat();
        let expected = format!("{name} sender=KEY nonce=9 chain=1337 to=TO");
        check(&bare, Ok(&expected));
        check(&wrapped, Ok(&expected));
        let (b, w) = (decode(&bare).unwrap(), decode(&wrapped).unwrap());
        assert_eq!(b.hash, w.hash, "a wrapped and a bare typed tx share the hash");
        assert_eq!(
            (b.tx_type, w.tx_type),
            (
                TxType::Ethereum { kind, wrapped: false },
                TxType::Ethereum { kind, wrapped: true }
            )
        );
    }
    // A signature over other bytes recovers someone else: the sender is whoever signed these bytes.
    let tampered = with(legacy_fields(Some(1337)), 0, uint(8));
    assert_ne!(decode(&list(&tampered)).map(|t| t.sender), Ok(key_address()));
}

#[test]
fn malformed_framing() {
    let vt = prefixed(&[0x08], &native_tx(0x08));
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (vec![], DecodeError::Empty),
        (vec![0x00], DecodeError::UnknownType(0x00)),
        (vec![0x18, 0xc0], DecodeError::UnknownType(0x18)), // AccountCreation: never enabled
        (vec![0x40, 0xc0], DecodeError::UnknownType(0x40)), // Batch
        (vec![0x7f, 0xc0], DecodeError::UnknownType(0x7f)),
        (vec![0x80], DecodeError::UnknownType(0x80)), // a byte string, not a list
        (
            vec![0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            DecodeError::UnknownType(0xbf),
        ),
        (vec![0x78], DecodeError::Rlp(RlpError::Truncated)),
        (vec![0x78, 0x05, 0xc0], DecodeError::UnknownEthType(0x05)),
        (
            vec![0x78, 0x03, 0xc0],
            DecodeError::FieldCount {
                tx: "TxTypeEthereumBlob",
                expected: 14,
                got: 0,
            },
        ),
        // a blob tx's network form whose inner tx is empty
        (
            vec![0x03, 0xc1, 0xc0],
            DecodeError::FieldCount {
                tx: "TxTypeEthereumBlob",
                expected: 14,
                got: 0,
            },
        ),
        (vec![0x78, 0x08, 0xc0], DecodeError::UnknownEthType(0x08)), // no envelope around native types
        (vec![0x78, 0x78, 0x02], DecodeError::UnknownEthType(0x78)),
        (vec![0x08], DecodeError::Rlp(RlpError::Truncated)),
        (vec![0x08, 0x80], DecodeError::Rlp(RlpError::ExpectedList)),
        (
            vec![0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            DecodeError::Rlp(RlpError::Truncated),
        ),
        (
            vec![0x02, 0xfb, 0x7f, 0xff, 0xff, 0xff],
            DecodeError::Rlp(RlpError::Truncated),
        ),
        (vec![0xf9, 0xff, 0xff], DecodeError::Rlp(RlpError::Truncated)),
        (vec![0xf8, 0x01, 0x80], DecodeError::Rlp(RlpError::NonCanonical)),
        (vec![0xf9, 0x00, 0x38], DecodeError::Rlp(RlpError::NonCanonical)),
        (vec![0xc3, 0x81, 0x05, 0x80], DecodeError::Rlp(RlpError::NonCanonical)),
        ([&vt[..], &[0x00]].concat(), DecodeError::TrailingBytes(1)),
        ([&vt[..], &vt[..]].concat(), DecodeError::TrailingBytes(vt.len())),
        (vt[..vt.len() - 1].to_vec(), DecodeError::Rlp(RlpError::Truncated)),
        (
            vec![0xc0],
            DecodeError::FieldCount {
                tx: "TxTypeLegacyTransaction",
                expected: 9,
                got: 0,
            },
        ),
        (
            list(&[uint(1), uint(2), uint(3)]),
            DecodeError::FieldCount {
                tx: "TxTypeLegacyTransaction",
                expected: 9,
                got: 3,
            },
        ),
        (
            prefixed(&[0x08], &native_tx(0x08)[..6]),
            DecodeError::FieldCount {
                tx: "TxTypeValueTransfer",
                expected: 7,
                got: 6,
            },
        ),
        (
            prefixed(&[0x08], &native_tx(0x09)),
            DecodeError::FieldCount {
                tx: "TxTypeValueTransfer",
                expected: 7,
                got: 9,
            },
        ),
        (
            prefixed(&[0x0a], &native_tx(0x09)),
            DecodeError::FieldCount {
                tx: "TxTypeFeeDelegatedValueTransferWithRatio",
                expected: 10,
                got: 9,
            },
        ),
        (
            prefixed(&[0x02], &typed_fields(EthType::AccessList)),
            DecodeError::FieldCount {
                tx: "TxTypeEthereumDynamicFee",
                expected: 12,
                got: 11,
            },
        ),
        (
            prefixed(&[0x78, 0x04], &typed_fields(EthType::DynamicFee)),
            DecodeError::FieldCount {
                tx: "TxTypeEthereumSetCode",
                expected: 13,
                got: 12,
            },
        ),
    ];
    for (raw, err) in cases {
        check(&raw, Err(err));
    }
}

#[test]
fn malformed_fields() {
    let nat = |code: u8, i: usize, item: Vec<u8>| prefixed(&[code], &with(native_tx(code), i, item));
    let leg = |i: usize, item: Vec<u8>| list(&with(legacy_fields(Some(1337)), i, item));
    let typ = |kind: EthType, i: usize, item: Vec<u8>| prefixed(&[kind as u8], &with(typed_fields(kind), i, item));
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            nat(0x08, 0, vec![0x82, 0x00, 0x05]),
            field("nonce", "integer with a leading zero byte"),
        ),
        (nat(0x08, 0, bytes(&[1; 9])), field("nonce", "integer too large")),
        (
            nat(0x08, 0, list(&[])),
            field("nonce", "expected a byte string, got a list"),
        ),
        (nat(0x08, 1, bytes(&[1; 33])), field("gasPrice", "integer too large")),
        (nat(0x08, 3, bytes(&[0x70; 19])), field("to", "address not 20 bytes")),
        (nat(0x08, 3, bytes(&[])), field("to", "address not 20 bytes")), // only deploys may omit `to`
        (
            nat(0x08, 5, list(&[bytes(&FROM)])),
            field("from", "expected a byte string, got a list"),
        ),
        (
            nat(0x10, 6, list(&[])),
            field("input", "expected a byte string, got a list"),
        ),
        (nat(0x28, 7, uint(2)), field("humanReadable", "boolean neither 0 nor 1")),
        (nat(0x28, 8, uint(256)), field("codeFormat", "integer too large")),
        (nat(0x0a, 6, uint(300)), field("feeRatio", "integer too large")),
        (nat(0x2a, 8, uint(300)), field("feeRatio", "integer too large")), // deploy: feeRatio before codeFormat
        (nat(0x20, 4, bytes(&[])), field("key", "malformed account key")),
        (
            nat(0x20, 4, bytes(&[0x07, 0xc0])),
            field("key", "unknown account key type"),
        ),
        (
            nat(0x20, 4, bytes(&[0x01, 0xc0, 0x80])),
            field("key", "trailing bytes in the account key"),
        ),
        (
            nat(0x20, 4, bytes(&[0x80, 0xc0])),
            field("key", "trailing bytes in the account key"),
        ),
        (
            nat(0x20, 4, bytes(&[0x01, 0x80])),
            field("key", "account key body of the wrong shape"),
        ),
        (
            nat(0x20, 4, list(&[])),
            field("key", "expected a byte string, got a list"),
        ),
        (nat(0x08, 6, list(&[])), field("signatures", "no signatures")),
        (nat(0x08, 6, bytes(&[1, 2, 3])), field("signatures", "expected a list")),
        (
            nat(0x08, 6, list(&[list(&[uint(V1337), uint(1)])])),
            field("signatures", "entry not [V, R, S]"),
        ),
        (
            nat(0x08, 6, list(&[uint(V1337), uint(1), uint(2)])),
            field("signatures", "expected a list"),
        ),
        (
            nat(0x08, 6, list(&[vec![0xc3, 0x81, 0x05, 0x80, 0x80]])),
            field("signatures", "malformed RLP inside the field"),
        ),
        (
            nat(0x08, 6, list(&[list(&[bytes(&[1; 9]), uint(1), uint(2)])])),
            field("signatures", "integer too large"),
        ),
        (
            nat(0x08, 6, sigs(&[27])),
            DecodeError::BadSignature("V below 35 carries no chain id"),
        ),
        (
            nat(0x08, 6, list(&[list(&[uint(V1337), uint(0), uint(2)])])),
            DecodeError::BadSignature("R or S is zero or not below the curve order"),
        ),
        (
            nat(0x08, 6, list(&[list(&[uint(V1337), bytes(&[0xff; 32]), uint(2)])])),
            DecodeError::BadSignature("R or S is zero or not below the curve order"),
        ),
        (
            nat(0x08, 6, sigs(&[V1337, 37])),
            DecodeError::BadSignature("signatures carry different chain ids"),
        ),
        (nat(0x09, 7, bytes(&[])), field("feePayer", "address not 20 bytes")),
        (nat(0x09, 8, list(&[])), field("feePayerSignatures", "no signatures")),
        (
            nat(0x09, 8, sigs(&[37])),
            DecodeError::BadSignature("fee payer signatures carry another chain id than the sender's"),
        ),
        (
            leg(6, uint(30)),
            DecodeError::BadSignature("legacy V neither 27/28 nor 35 + 2·chainId"),
        ),
        (leg(6, bytes(&[1; 9])), field("v", "integer too large")),
        (leg(3, bytes(&[0x70; 21])), field("to", "address not 20 bytes")),
        (
            leg(7, uint(0)),
            DecodeError::BadSignature("R or S is zero or not below the curve order"),
        ),
        (
            leg(8, bytes(&[0xff; 32])),
            DecodeError::BadSignature("R or S is zero or not below the curve order"),
        ),
        (
            leg(8, high_s(&legacy_fields(Some(1337))[8])),
            DecodeError::BadSignature("S in the upper half of the curve order"),
        ),
        (
            typ(EthType::DynamicFee, 9, uint(2)),
            DecodeError::BadSignature("yParity neither 0 nor 1"),
        ),
        (
            typ(EthType::DynamicFee, 9, uint(27)),
            DecodeError::BadSignature("yParity neither 0 nor 1"),
        ),
        (
            typ(EthType::DynamicFee, 0, bytes(&[1; 9])),
            field("chainId", "integer too large"),
        ),
        (
            typ(EthType::AccessList, 7, list(&[list(&[bytes(&TO)])])),
            field("accessList", "entry not [address, storageKeys]"),
        ),
        (
            typ(
                EthType::AccessList,
                7,
                list(&[list(&[bytes(&TO), list(&[bytes(&[1; 31])])])]),
            ),
            field("accessList", "storage key not 32 bytes"),
        ),
        (
            typ(EthType::AccessList, 7, bytes(&[])),
            field("accessList", "expected a list"),
        ),
        (
            typ(EthType::SetCode, 5, bytes(&[])),
            field("to", "address not 20 bytes"),
        ),
        (
            typ(
                EthType::SetCode,
                9,
                list(&[list(&[uint(1), bytes(&TO), uint(3), uint(1), uint(5)])]),
            ),
            field(
                "authorizationList",
                "entry not [chainId, address, nonce, yParity, r, s]",
            ),
        ),
        (
            typ(
                EthType::SetCode,
                9,
                list(&[list(&[uint(1), bytes(&TO), uint(3), uint(256), uint(5), uint(6)])]),
            ),
            field("authorizationList", "integer too large"),
        ),
    ];
    for (raw, err) in cases {
        check(&raw, Err(err));
    }
}

/// n − s for an RLP-encoded S: the same signature's high-S twin.
fn high_s(s_item: &[u8]) -> Vec<u8> {
    let mut buf = s_item;
    let s = rlp::read(&mut buf).unwrap().payload;
    let mut padded = [0u8; 32];
    padded[32 - s.len()..].copy_from_slice(s);
    let scalar: k256::Scalar = Option::from(<k256::Scalar as k256::elliptic_curve::PrimeField>::from_repr(
        padded.into(),
    ))
    .unwrap();
    big(&(-scalar).to_bytes())
}

#[test]
fn hex_input() {
    let vt = prefixed(&[0x08], &native_tx(0x08));
    let hex: String = vt.iter().map(|b| format!("{b:02x}")).collect();
    let ok = "TxTypeValueTransfer sender=FROM nonce=5 chain=1337 to=TO";
    check_hex(&format!("0x{hex}"), Ok(ok));
    check_hex(&format!("0X{}", hex.to_uppercase()), Ok(ok));
    check_hex(&hex, Err(DecodeError::BadHex("missing 0x prefix")));
    check_hex("", Err(DecodeError::BadHex("missing 0x prefix")));
    check_hex("0x", Err(DecodeError::Empty));
    check_hex("0x0", Err(DecodeError::BadHex("odd number of hex digits")));
    check_hex(
        &format!("0x{hex}0"),
        Err(DecodeError::BadHex("odd number of hex digits")),
    );
    check_hex("0xzz", Err(DecodeError::BadHex("not a hex digit")));
    check_hex("0x08é", Err(DecodeError::BadHex("not a hex digit"))); // é is two bytes
    check_hex("0x0é", Err(DecodeError::BadHex("odd number of hex digits")));
    check_hex(" 0x08", Err(DecodeError::BadHex("missing 0x prefix")));
}

#[test]
fn no_prefix_decodes_and_no_mutation_panics() {
    let mut txs: Vec<Vec<u8>> = KlaytnType::all()
        .map(|t| prefixed(&[t.code()], &native_fields(t)))
        .collect();
    txs.push(list(&legacy_fields(Some(1337))));
    txs.push(list(&legacy_fields(None)));
    for kind in [EthType::AccessList, EthType::DynamicFee, EthType::SetCode] {
        let bare = prefixed(&[kind as u8], &typed_fields(kind));
        txs.push([&[0x78][..], &bare].concat());
        txs.push(bare);
    }
    for tx in &txs {
        assert!(decode(tx).is_ok());
        for len in 0..tx.len() {
            assert!(decode(&tx[..len]).is_err(), "a {len}-byte prefix of {tx:02x?} decoded");
        }
        for i in 0..tx.len() {
            for b in [0x00, 0x7f, 0x80, 0xb8, 0xbf, 0xc0, 0xf8, 0xff, tx[i] ^ 0x01] {
                let mut m = tx.clone();
                m[i] = b;
                let _ = decode(&m);
            }
        }
    }
}
