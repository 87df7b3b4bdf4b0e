//! Raw transaction decoding: every wire form `klay_sendRawTransaction` / `eth_sendRawTransaction` take (legacy,
//! the 21 Klaytn native types, Ethereum typed 0x01/0x02/0x04 wrapped in 0x78 or bare) → sender, nonce, chain
//! id, Klaytn's tx hash, fee payer. Pure and total: any input yields a value or a typed error, never a panic.
//!
//! Native types name their sender (`from`); their signatures are only checked for form and chain id, because
//! the node verifies them against `from`'s on-chain account key (multisig, role-based or decoupled), which
//! ECDSA recovery cannot know. Legacy and typed senders are recovered.

use thiserror::Error;

use super::rlp::{self, encode_u64, keccak, keccak_list, FieldResult, Item, RlpError};
use super::sig;
pub use super::types::{Address, EthType, FeeMode, KlaytnKind, KlaytnType, TxType};

/// What kengate needs to know about a raw transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedTx {
    /// The wire form, with its type code(s).
    pub tx_type: TxType,
    /// Native: the explicit `from`; legacy and typed: the ECDSA-recovered signer.
    pub sender: Address,
    /// The sender's account nonce.
    pub nonce: u64,
    /// Legacy pre-EIP-155: None; native: from V of the sender signatures; typed: the `chainId` field.
    pub chain_id: Option<u64>,
    /// Klaytn's tx hash: keccak(raw) for legacy and native; keccak(ethType || rlp) for typed, without the
    /// 0x78 envelope, so a wrapped and a bare form of one tx share it (the Ethereum hash).
    pub hash: [u8; 32],
    /// Klaytn's SenderTxHash: for fee-delegated types, keccak(type || rlp(fields up to the sender
    /// signatures)), which the sender knows before a fee payer signs; otherwise equal to `hash`.
    pub sender_tx_hash: [u8; 32],
    /// Fee-delegated native types: who pays.
    pub fee_payer: Option<Address>,
    /// The recipient or called contract, where the type has one (None for contract creation).
    pub to: Option<Address>,
}

/// Why bytes are not a transaction Klaytn would decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty transaction")]
    Empty,
    /// The hex string is not `0x` + an even number of hex digits.
    #[error("bad hex: {0}")]
    BadHex(&'static str),
    /// The first byte is neither a list (legacy), a native type, an Ethereum type nor 0x78.
    #[error("unknown transaction type 0x{0:02x}")]
    UnknownType(u8),
    /// The byte after the 0x78 envelope is not an Ethereum type Klaytn/Kaia know.
    #[error("unknown Ethereum transaction type 0x78{0:02x}")]
    UnknownEthType(u8),
    /// The body is not one well-formed canonical RLP list.
    #[error("malformed RLP: {0}")]
    Rlp(#[from] RlpError),
    /// Bytes follow the transaction's RLP list.
    #[error("{0} trailing byte(s) after the transaction")]
    TrailingBytes(usize),
    /// The list has the wrong number of fields for its type.
    #[error("{tx} has {got} fields, expected {expected}")]
    FieldCount {
        /// Klaytn's name for the type.
        tx: &'static str,
        /// Fields the type has.
        expected: usize,
        /// Fields the input has.
        got: usize,
    },
    /// A field is not of its type's form (size, canonical integer, list shape).
    #[error("field `{field}`: {reason}")]
    BadField {
        /// The field, by Klaytn's RPC name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature's values are unusable (V, R, S out of range, chain ids disagreeing, no key recovers).
    #[error("bad signature: {0}")]
    BadSignature(&'static str),
}

/// Decodes a transaction as sent in `klay_sendRawTransaction` / `eth_sendRawTransaction` params: `0x` + hex.
pub fn decode_hex(s: &str) -> Result<DecodedTx, DecodeError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or(DecodeError::BadHex("missing 0x prefix"))?;
    if digits.len() % 2 != 0 {
        return Err(DecodeError::BadHex("odd number of hex digits"));
    }
    let mut raw = Vec::with_capacity(digits.len() / 2);
    for pair in digits.as_bytes().chunks_exact(2) {
        if let [hi, lo] = pair {
            raw.push(nibble(*hi)? << 4 | nibble(*lo)?);
        }
    }
    decode(&raw)
}

fn nibble(c: u8) -> Result<u8, DecodeError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(DecodeError::BadHex("not a hex digit")),
    }
}

/// Decodes raw transaction bytes.
pub fn decode(raw: &[u8]) -> Result<DecodedTx, DecodeError> {
    let first = *raw.first().ok_or(DecodeError::Empty)?;
    if first >= 0xc0 {
        return legacy(raw);
    }
    if first == 0x78 {
        let body = raw.get(1..).unwrap_or_default();
        let eth = *body.first().ok_or(RlpError::Truncated)?;
        let kind = EthType::from_byte(eth).ok_or(DecodeError::UnknownEthType(eth))?;
        return typed(kind, true, body);
    }
    if let Some(kind) = EthType::from_byte(first) {
        return typed(kind, false, raw);
    }
    match KlaytnType::from_code(first) {
        Some(t) => native(t, raw),
        None => Err(DecodeError::UnknownType(first)),
    }
}

// ------------------------------------------------------------------------------------------------ legacy

/// `[nonce, gasPrice, gas, to, value, data, v, r, s]`; signed over the first six fields (+ chainId, 0, 0).
fn legacy(raw: &[u8]) -> Result<DecodedTx, DecodeError> {
    let tx_type = TxType::Legacy;
    let items = list(raw)?;
    let mut f = Fields::exact(&items, tx_type.name(), 9)?;
    let nonce = f.take("nonce", Item::u64)?;
    f.take("gasPrice", Item::u256)?;
    f.take("gas", Item::u64)?;
    let to = f.take("to", Item::opt_address)?;
    f.take("value", Item::u256)?;
    f.take("input", Item::bytes)?;
    let signed = f.encoded_so_far();
    let v = f.take("v", Item::u64)?;
    let r = f.take("r", Item::u256)?;
    let s = f.take("s", Item::u256)?;
    let (chain_id, recid) = sig::legacy_v(v).map_err(DecodeError::BadSignature)?;
    let prehash = match chain_id {
        None => keccak_list(&[], &signed),
        Some(c) => {
            // EIP-155: the six fields, then chainId, 0, 0.
            let c = encode_u64(c);
            let mut items = signed;
            items.extend([&c[..], &[0x80][..], &[0x80][..]]);
            keccak_list(&[], &items)
        }
    };
    let sender = sig::recover(&prehash, r, s, recid).map_err(DecodeError::BadSignature)?;
    let hash = keccak(&[raw]);
    Ok(DecodedTx {
        tx_type,
        sender: Address(sender),
        nonce,
        chain_id,
        hash,
        sender_tx_hash: hash,
        fee_payer: None,
        to: to.map(Address),
    })
}

// ------------------------------------------------------------------------------------------------ typed

/// `body` = `ethType || rlp([...])` (without the 0x78 envelope); signed over ethType || rlp(fields but y, r, s).
/// A blob tx may come in its network form, `ethType || rlp([tx, version, blobs, commitments, proofs])`:
/// its fields and its hash are the inner `tx`'s (the node checks the sidecar).
fn typed(kind: EthType, wrapped: bool, body: &[u8]) -> Result<DecodedTx, DecodeError> {
    let tx_type = TxType::Ethereum { kind, wrapped };
    let outer = list(body.get(1..).unwrap_or_default())?;
    let (items, hashed) = match outer.first() {
        Some(tx) if kind == EthType::Blob && tx.list => (rlp::items(tx)?, tx.encoded),
        _ => (outer, body.get(1..).unwrap_or_default()),
    };
    let count = match kind {
        EthType::AccessList => 11,
        EthType::DynamicFee => 12,
        EthType::SetCode => 13,
        EthType::Blob => 14,
    };
    let mut f = Fields::exact(&items, tx_type.name(), count)?;
    let chain_id = f.take("chainId", Item::u64)?;
    let nonce = f.take("nonce", Item::u64)?;
    if kind == EthType::AccessList {
        f.take("gasPrice", Item::u256)?;
    } else {
        f.take("maxPriorityFeePerGas", Item::u256)?;
        f.take("maxFeePerGas", Item::u256)?;
    }
    f.take("gas", Item::u64)?;
    let to = match kind {
        EthType::SetCode | EthType::Blob => Some(f.take("to", Item::address)?),
        EthType::AccessList | EthType::DynamicFee => f.take("to", Item::opt_address)?,
    };
    f.take("value", Item::u256)?;
    f.take("input", Item::bytes)?;
    f.take("accessList", access_list)?;
    match kind {
        EthType::SetCode => f.take("authorizationList", authorization_list)?,
        EthType::Blob => {
            f.take("maxFeePerBlobGas", Item::u256)?;
            f.take("blobVersionedHashes", hash_list)?;
        }
        EthType::AccessList | EthType::DynamicFee => {}
    }
    let signed = f.encoded_so_far();
    let y = f.take("yParity", Item::u64)?;
    let r = f.take("r", Item::u256)?;
    let s = f.take("s", Item::u256)?;
    let recid = sig::y_parity(y).map_err(DecodeError::BadSignature)?;
    let prehash = keccak_list(&[kind as u8], &signed);
    let sender = sig::recover(&prehash, r, s, recid).map_err(DecodeError::BadSignature)?;
    let hash = keccak(&[&[kind as u8], hashed]);
    Ok(DecodedTx {
        tx_type,
        sender: Address(sender),
        nonce,
        chain_id: Some(chain_id),
        hash,
        sender_tx_hash: hash,
        fee_payer: None,
        to: to.map(Address),
    })
}

/// `[hash, ...]` of 32-byte hashes (EIP-4844 `blobVersionedHashes`).
fn hash_list(item: &Item) -> FieldResult<()> {
    for h in nested(item)? {
        h.bytes32()?;
    }
    Ok(())
}

/// `[[address, [storageKey, ...]], ...]`.
fn access_list(item: &Item) -> FieldResult<()> {
    for entry in nested(item)? {
        let [address, keys] = nested(&entry)?[..] else {
            return Err("entry not [address, storageKeys]");
        };
        address.address()?;
        for key in nested(&keys)? {
            key.bytes32()?;
        }
    }
    Ok(())
}

/// EIP-7702: `[[chainId, address, nonce, yParity, r, s], ...]` (form only; authorities are not recovered).
fn authorization_list(item: &Item) -> FieldResult<()> {
    for entry in nested(item)? {
        let [chain_id, address, nonce, y, r, s] = nested(&entry)?[..] else {
            return Err("entry not [chainId, address, nonce, yParity, r, s]");
        };
        chain_id.u256()?;
        address.address()?;
        nonce.u64()?;
        y.u8()?;
        r.u256()?;
        s.u256()?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------ native

/// A field of a Klaytn native type, after the common `[nonce, gasPrice, gas]` and before the signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    To,
    /// `to` that may be empty (contract creation).
    ToOrCreate,
    Value,
    From,
    Input,
    /// A serialized account key (AccountUpdate).
    Key,
    HumanReadable,
    CodeFormat,
    FeeRatio,
}

/// THE native field table (Klaytn v1.12.1 `tx_internal_data_*.go` struct order): what follows
/// `[nonce, gasPrice, gas]`, before `signatures` (then `feePayer, feePayerSignatures` for fee-delegated types).
/// WithRatio variants add `feeRatio` after the last sender field, except SmartContractDeploy, where it sits
/// between `humanReadable` and `codeFormat`.
fn layout(kind: KlaytnKind, with_ratio: bool) -> &'static [Field] {
    use Field::*;
    match (kind, with_ratio) {
        (KlaytnKind::ValueTransfer, false) => &[To, Value, From],
        (KlaytnKind::ValueTransfer, true) => &[To, Value, From, FeeRatio],
        (KlaytnKind::ValueTransferMemo, false) => &[To, Value, From, Input],
        (KlaytnKind::ValueTransferMemo, true) => &[To, Value, From, Input, FeeRatio],
        (KlaytnKind::AccountUpdate, false) => &[From, Key],
        (KlaytnKind::AccountUpdate, true) => &[From, Key, FeeRatio],
        (KlaytnKind::SmartContractDeploy, false) => &[ToOrCreate, Value, From, Input, HumanReadable, CodeFormat],
        (KlaytnKind::SmartContractDeploy, true) => {
            &[ToOrCreate, Value, From, Input, HumanReadable, FeeRatio, CodeFormat]
        }
        (KlaytnKind::SmartContractExecution, false) => &[To, Value, From, Input],
        (KlaytnKind::SmartContractExecution, true) => &[To, Value, From, Input, FeeRatio],
        (KlaytnKind::Cancel, false) => &[From],
        (KlaytnKind::Cancel, true) => &[From, FeeRatio],
        (KlaytnKind::ChainDataAnchoring, false) => &[From, Input],
        (KlaytnKind::ChainDataAnchoring, true) => &[From, Input, FeeRatio],
    }
}

/// `typeByte || rlp([nonce, gasPrice, gas, <layout>, signatures (, feePayer, feePayerSignatures)])`.
fn native(t: KlaytnType, raw: &[u8]) -> Result<DecodedTx, DecodeError> {
    let fields = layout(t.kind, t.fee == FeeMode::DelegatedWithRatio);
    let count = 3 + fields.len() + 1 + if t.fee_delegated() { 2 } else { 0 };
    let items = list(raw.get(1..).unwrap_or_default())?;
    let mut f = Fields::exact(&items, t.name(), count)?;
    let nonce = f.take("nonce", Item::u64)?;
    f.take("gasPrice", Item::u256)?;
    f.take("gas", Item::u64)?;
    let (mut from, mut to) = (None, None);
    for field in fields {
        match field {
            Field::To => to = Some(f.take("to", Item::address)?),
            Field::ToOrCreate => to = f.take("to", Item::opt_address)?,
            Field::Value => _ = f.take("value", Item::u256)?,
            Field::From => from = Some(f.take("from", Item::address)?),
            Field::Input => _ = f.take("input", Item::bytes)?,
            Field::Key => f.take("key", account_key)?,
            Field::HumanReadable => _ = f.take("humanReadable", Item::bool)?,
            Field::CodeFormat => _ = f.take("codeFormat", Item::u8)?,
            Field::FeeRatio => _ = f.take("feeRatio", Item::u8)?,
        }
    }
    let chain_id = f.take("signatures", signature_list)??;
    let hash = keccak(&[raw]);
    let (fee_payer, sender_tx_hash) = if t.fee_delegated() {
        let sender_part = f.encoded_so_far();
        let payer = f.take("feePayer", Item::address)?;
        let payer_chain = f.take("feePayerSignatures", signature_list)??;
        if payer_chain != chain_id {
            return Err(DecodeError::BadSignature(
                "fee payer signatures carry another chain id than the sender's",
            ));
        }
        (Some(Address(payer)), keccak_list(&[t.code()], &sender_part))
    } else {
        (None, hash)
    };
    let from = from.ok_or(DecodeError::BadField {
        field: "from",
        reason: "missing from the layout",
    })?;
    Ok(DecodedTx {
        tx_type: TxType::Klaytn(t),
        sender: Address(from),
        nonce,
        chain_id: Some(chain_id),
        hash,
        sender_tx_hash,
        fee_payer,
        to: to.map(Address),
    })
}

/// `[[V, R, S], ...]`, non-empty, every V EIP-155 style with one chain id: that chain id. The outer result is
/// the field's form, the inner one the signature values.
fn signature_list(item: &Item) -> FieldResult<Result<u64, DecodeError>> {
    let sigs = nested(item)?;
    if sigs.is_empty() {
        return Err("no signatures");
    }
    let mut chain = None;
    for sig in &sigs {
        let [v, r, s] = nested(sig)?[..] else {
            return Err("entry not [V, R, S]");
        };
        let (v, r, s) = (v.u64()?, r.u256()?, s.u256()?);
        let checked = sig::scalars(r, s).and_then(|_| sig::eip155_v(v));
        let c = match checked {
            Ok((c, _)) => c,
            Err(e) => return Ok(Err(DecodeError::BadSignature(e))),
        };
        if chain.is_some_and(|prev| prev != c) {
            return Ok(Err(DecodeError::BadSignature("signatures carry different chain ids")));
        }
        chain = Some(c);
    }
    Ok(chain.ok_or(DecodeError::BadSignature("no signatures")))
}

/// A serialized AccountKey: its type (0 Nil … 5 RoleBased) as an RLP integer, then (except Nil) one item.
fn account_key(item: &Item) -> FieldResult<()> {
    let mut rest = item.bytes()?;
    let key_type = rlp::read(&mut rest).map_err(|_| "malformed account key")?.u64()?;
    match key_type {
        0 if rest.is_empty() => Ok(()),
        1..=5 => {
            let body = rlp::read(&mut rest).map_err(|_| "malformed account key")?;
            if !rest.is_empty() {
                return Err("trailing bytes in the account key");
            }
            // AccountKeyPublic's body is the compressed key (a byte string); the others' are lists.
            if body.list == (key_type == 2) {
                return Err("account key body of the wrong shape");
            }
            Ok(())
        }
        0 => Err("trailing bytes in the account key"),
        _ => Err("unknown account key type"),
    }
}

// ------------------------------------------------------------------------------------------------ helpers

/// The items of the one RLP list that must make up `body` exactly.
fn list(body: &[u8]) -> Result<Vec<Item<'_>>, DecodeError> {
    let mut rest = body;
    let item = rlp::read(&mut rest)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(rlp::items(&item)?)
}

/// The items of a list inside a field.
fn nested<'a>(item: &Item<'a>) -> FieldResult<Vec<Item<'a>>> {
    rlp::items(item).map_err(|e| match e {
        RlpError::ExpectedList => "expected a list",
        RlpError::Truncated | RlpError::NonCanonical => "malformed RLP inside the field",
    })
}

/// A cursor over a transaction's fields, taking them in order and naming the field in errors.
struct Fields<'b, 'a> {
    items: &'b [Item<'a>],
    pos: usize,
}

impl<'b, 'a> Fields<'b, 'a> {
    /// Fails unless there are exactly `count` fields.
    fn exact(items: &'b [Item<'a>], tx: &'static str, count: usize) -> Result<Self, DecodeError> {
        if items.len() != count {
            return Err(DecodeError::FieldCount {
                tx,
                expected: count,
                got: items.len(),
            });
        }
        Ok(Fields { items, pos: 0 })
    }

    /// The next field, read by `read`.
    fn take<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&Item<'a>) -> FieldResult<T>,
    ) -> Result<T, DecodeError> {
        let item = self.items.get(self.pos).ok_or(DecodeError::BadField {
            field,
            reason: "missing",
        })?;
        self.pos += 1;
        read(item).map_err(|reason| DecodeError::BadField { field, reason })
    }

    /// The wire encodings of the fields taken so far (what a signature or SenderTxHash covers).
    fn encoded_so_far(&self) -> Vec<&'a [u8]> {
        self.items
            .get(..self.pos)
            .unwrap_or_default()
            .iter()
            .map(|i| i.encoded)
            .collect()
    }
}

#[cfg(test)]
mod tests;
