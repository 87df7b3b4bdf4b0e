//! What one block says to the index: its transactions, the KLAY and token transfers they
//! made and the contracts those touched, read from `getBlockByNumber(n, true)` and
//! `getBlockReceipts(n)` as the node sent them. Pure: JSON in, rows out.
//!
//! Token transfers are told apart as the KAS service did: the ERC-20 / KIP-7 and
//! ERC-721 / KIP-17 `Transfer` share one signature and differ by topic count (3 with the
//! amount in `data`, 4 with the token id as the last topic); ERC-1155 / KIP-37 has
//! `TransferSingle` and `TransferBatch`. A log that does not have the shape its signature
//! promises (a contract that lies) is not a transfer; it never fails the block.

use ruint::aliases::U256;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::jsonrpc::parse_quantity;
use crate::txpath::lifecycle::{hex, unhex};

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER: [u8; 32] = hex32("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
/// `keccak256("TransferSingle(address,address,address,uint256,uint256)")`.
pub const TRANSFER_SINGLE: [u8; 32] = hex32("c3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62");
/// `keccak256("TransferBatch(address,address,address,uint256[],uint256[])")`.
pub const TRANSFER_BATCH: [u8; 32] = hex32("4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb");

/// Most ids a `TransferBatch` is read for (a lying contract could claim billions).
const MAX_BATCH: usize = 1024;

/// A 20-byte account or contract address.
pub type Address = [u8; 20];
/// A 32-byte hash.
pub type Hash = [u8; 32];

/// Everything the index keeps of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRows {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: Hash,
    /// Its parent's hash (checked against the indexed parent: Klaytn never reorganizes).
    pub parent: Hash,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// Its transactions, in block order.
    pub txs: Vec<TxRow>,
    /// KLAY and token transfers, in block order (a tx's value first, then its logs').
    pub transfers: Vec<Transfer>,
}

/// One transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxRow {
    /// Its hash.
    pub hash: Hash,
    /// Position in the block.
    pub index: u32,
    /// Sender.
    pub from: Address,
    /// The sender's nonce.
    pub nonce: u64,
    /// Gas limit.
    pub gas: u64,
    /// Recipient (`None` for a contract deploy).
    pub to: Option<Address>,
    /// KLAY sent, in kei.
    pub value: U256,
    /// Klaytn's `typeInt` (0 legacy, 8 value transfer, …, 0x7802 Ethereum dynamic fee, …).
    pub type_int: u16,
    /// Who paid the fee, when fee-delegated.
    pub fee_payer: Option<Address>,
    /// The fee payer's share in percent, when partially fee-delegated.
    pub fee_ratio: Option<u8>,
    /// Gas used (receipt).
    pub gas_used: u64,
    /// The price paid per gas (receipt `effectiveGasPrice`, else the tx's `gasPrice`).
    pub gas_price: U256,
    /// Receipt status: true = success.
    pub success: bool,
    /// The contract a deploy created.
    pub contract_created: Option<Address>,
    /// The input's first four bytes, when it has them.
    pub selector: Option<[u8; 4]>,
}

/// What a transfer moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// KLAY, the tx's value.
    Klay,
    /// A fungible token (KIP-7 / ERC-20).
    Ft,
    /// A non-fungible token (KIP-17 / ERC-721).
    Nft,
    /// A multi token (KIP-37 / ERC-1155).
    Mt,
    /// KLAY a contract sent while the tx ran (a call, create or selfdestruct with value, from
    /// the call tracer; only with `index.internal`).
    Internal,
}

impl Kind {
    /// Lower-case name (store, APIs).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Klay => "klay",
            Kind::Ft => "ft",
            Kind::Nft => "nft",
            Kind::Mt => "mt",
            Kind::Internal => "internal",
        }
    }

    /// The kind named [`as_str`](Self::as_str) gives.
    pub fn from_name(name: &str) -> Option<Self> {
        [Kind::Klay, Kind::Internal, Kind::Ft, Kind::Nft, Kind::Mt]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// What moved.
    pub kind: Kind,
    /// The tx that made it.
    pub tx_hash: Hash,
    /// Its tx's position in the block.
    pub tx_index: u32,
    /// The log's index in the block (`None` for a tx's KLAY value).
    pub log_index: Option<u32>,
    /// Position inside a `TransferBatch` (0 otherwise).
    pub batch_pos: u32,
    /// The token contract (`None` for KLAY).
    pub contract: Option<Address>,
    /// Who sent (the zero address for a mint).
    pub from: Address,
    /// Who received (the zero address for a burn).
    pub to: Address,
    /// Amount (1 for an NFT).
    pub value: U256,
    /// Token id (NFT and MT).
    pub token_id: Option<U256>,
    /// Who moved MTs on the holder's behalf (`TransferSingle` / `TransferBatch`'s operator).
    pub operator: Option<Address>,
}

/// Why a block could not be read (the node's own output; never expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {number}: {what}")]
pub struct ExtractError {
    /// Which block.
    pub number: u64,
    /// What was wrong.
    pub what: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockJson<'a> {
    #[serde(borrow)]
    number: &'a str,
    #[serde(borrow)]
    hash: &'a str,
    #[serde(borrow)]
    parent_hash: &'a str,
    #[serde(borrow)]
    timestamp: &'a str,
    #[serde(default, borrow)]
    transactions: Vec<TxJson<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TxJson<'a> {
    #[serde(borrow)]
    hash: &'a str,
    #[serde(borrow)]
    from: &'a str,
    #[serde(default, borrow)]
    nonce: Option<&'a str>,
    #[serde(default, borrow)]
    gas: Option<&'a str>,
    #[serde(default, borrow)]
    to: Option<&'a str>,
    #[serde(default, borrow)]
    value: Option<&'a str>,
    #[serde(default)]
    type_int: Option<u16>,
    #[serde(default, borrow)]
    fee_payer: Option<&'a str>,
    #[serde(default, borrow)]
    fee_ratio: Option<&'a str>,
    #[serde(default, borrow)]
    gas_price: Option<&'a str>,
    #[serde(default, borrow)]
    input: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptJson<'a> {
    #[serde(borrow)]
    transaction_hash: &'a str,
    #[serde(default, borrow)]
    status: Option<&'a str>,
    #[serde(default, borrow)]
    gas_used: Option<&'a str>,
    #[serde(default, borrow)]
    effective_gas_price: Option<&'a str>,
    #[serde(default, borrow)]
    contract_address: Option<&'a str>,
    #[serde(default, borrow)]
    logs: Vec<LogJson<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson<'a> {
    #[serde(borrow)]
    address: &'a str,
    #[serde(default, borrow)]
    topics: Vec<&'a str>,
    #[serde(default, borrow)]
    data: &'a str,
    #[serde(borrow)]
    log_index: &'a str,
}

/// Reads a block (`getBlockByNumber(n, true)`, Klaytn or Kaia format) and its receipts
/// (`getBlockReceipts(n)`, in block order) into rows.
pub fn extract(block: &RawValue, receipts: &RawValue) -> Result<BlockRows, ExtractError> {
    let fail = |number: u64, what: String| ExtractError { number, what };
    let b: BlockJson<'_> = serde_json::from_str(block.get()).map_err(|e| fail(0, format!("not a block: {e}")))?;
    let number = parse_quantity(b.number).ok_or_else(|| fail(0, "no block number".into()))?;
    let rs: Vec<ReceiptJson<'_>> =
        serde_json::from_str(receipts.get()).map_err(|e| fail(number, format!("receipts: {e}")))?;
    if rs.len() != b.transactions.len() {
        return Err(fail(
            number,
            format!("{} transactions but {} receipts", b.transactions.len(), rs.len()),
        ));
    }
    let mut out = BlockRows {
        number,
        hash: unhex(b.hash).ok_or_else(|| fail(number, "block hash".into()))?,
        parent: unhex(b.parent_hash).ok_or_else(|| fail(number, "parent hash".into()))?,
        timestamp: parse_quantity(b.timestamp).ok_or_else(|| fail(number, "timestamp".into()))?,
        txs: Vec::with_capacity(b.transactions.len()),
        transfers: Vec::new(),
    };
    for (i, (tx, r)) in b.transactions.iter().zip(&rs).enumerate() {
        let index = u32::try_from(i).map_err(|_| fail(number, "too many transactions".into()))?;
        let what = |field: &str| fail(number, format!("tx {i}: {field}"));
        let hash: Hash = unhex(&tx.hash.to_ascii_lowercase()).ok_or_else(|| what("hash"))?;
        if !tx.hash.eq_ignore_ascii_case(r.transaction_hash) {
            return Err(what("its receipt is another tx's"));
        }
        let from: Address = address(tx.from).ok_or_else(|| what("from"))?;
        let to = match tx.to {
            None => None,
            Some(t) => Some(address(t).ok_or_else(|| what("to"))?),
        };
        let success = r.status.and_then(parse_quantity) == Some(1);
        let value = tx.value.and_then(amount).unwrap_or_default();
        let contract_created = r.contract_address.and_then(address).filter(|_| success && to.is_none());
        let input = tx.input.unwrap_or("0x");
        let selector = input
            .get(2..10)
            .filter(|_| input.len() >= 10)
            .and_then(|s| unhex::<4>(&format!("0x{}", s.to_ascii_lowercase())));
        out.txs.push(TxRow {
            hash,
            index,
            from,
            nonce: tx.nonce.and_then(parse_quantity).unwrap_or(0),
            gas: tx.gas.and_then(parse_quantity).unwrap_or(0),
            to,
            value,
            type_int: tx.type_int.unwrap_or(0),
            fee_payer: tx.fee_payer.and_then(address).filter(|a| *a != [0; 20]),
            fee_ratio: tx.fee_ratio.and_then(parse_quantity).and_then(|r| u8::try_from(r).ok()),
            gas_used: r.gas_used.and_then(parse_quantity).unwrap_or(0),
            gas_price: r
                .effective_gas_price
                .or(tx.gas_price)
                .and_then(amount)
                .unwrap_or_default(),
            success,
            contract_created,
            selector,
        });
        // Value moves only when the tx succeeds.
        if success && !value.is_zero() {
            if let Some(recipient) = to.or(contract_created) {
                out.transfers.push(Transfer {
                    kind: Kind::Klay,
                    tx_hash: hash,
                    tx_index: index,
                    log_index: None,
                    batch_pos: 0,
                    contract: None,
                    from,
                    to: recipient,
                    value,
                    token_id: None,
                    operator: None,
                });
            }
        }
        for log in &r.logs {
            token_transfers(log, hash, index, &mut out.transfers);
        }
    }
    Ok(out)
}

/// The transfers one log records, if it is one of the three token events in its proper shape.
fn token_transfers(log: &LogJson<'_>, tx_hash: Hash, tx_index: u32, out: &mut Vec<Transfer>) {
    let (Some(contract), Some(log_index)) = (
        address(log.address),
        parse_quantity(log.log_index).and_then(|i| u32::try_from(i).ok()),
    ) else {
        return;
    };
    let topics: Option<Vec<Hash>> = log.topics.iter().map(|t| unhex(&t.to_ascii_lowercase())).collect();
    let Some(topics) = topics else { return };
    let Some(data) = hex_bytes(log.data) else { return };
    let base = Transfer {
        kind: Kind::Ft,
        tx_hash,
        tx_index,
        log_index: Some(log_index),
        batch_pos: 0,
        contract: Some(contract),
        from: [0; 20],
        to: [0; 20],
        value: U256::ZERO,
        token_id: None,
        operator: None,
    };
    match topics.as_slice() {
        [sig, from, to] if *sig == TRANSFER && data.len() == 32 => {
            let (Some(from), Some(to)) = (topic_address(from), topic_address(to)) else {
                return;
            };
            out.push(Transfer {
                from,
                to,
                value: word(&data, 0).unwrap_or_default(),
                ..base
            });
        }
        [sig, from, to, id] if *sig == TRANSFER && data.is_empty() => {
            let (Some(from), Some(to)) = (topic_address(from), topic_address(to)) else {
                return;
            };
            out.push(Transfer {
                kind: Kind::Nft,
                from,
                to,
                value: U256::from(1u8),
                token_id: Some(U256::from_be_bytes(*id)),
                ..base
            });
        }
        [sig, operator, from, to] if *sig == TRANSFER_SINGLE && data.len() == 64 => {
            let (Some(from), Some(to)) = (topic_address(from), topic_address(to)) else {
                return;
            };
            out.push(Transfer {
                kind: Kind::Mt,
                operator: topic_address(operator),
                from,
                to,
                token_id: word(&data, 0),
                value: word(&data, 1).unwrap_or_default(),
                ..base
            });
        }
        [sig, operator, from, to] if *sig == TRANSFER_BATCH => {
            let (Some(from), Some(to)) = (topic_address(from), topic_address(to)) else {
                return;
            };
            let (Some(ids), Some(values)) = (array(&data, 0), array(&data, 1)) else {
                return;
            };
            if ids.len() != values.len() {
                return;
            }
            for (pos, (id, value)) in ids.into_iter().zip(values).enumerate() {
                out.push(Transfer {
                    kind: Kind::Mt,
                    operator: topic_address(operator),
                    batch_pos: u32::try_from(pos).unwrap_or(u32::MAX),
                    from,
                    to,
                    token_id: Some(id),
                    value,
                    ..base.clone()
                });
            }
        }
        _ => {}
    }
}

/// An indexed address topic: 12 zero bytes, then the address (anything else is not what
/// Solidity emits for `address indexed`).
fn topic_address(t: &Hash) -> Option<Address> {
    let (pad, addr) = t.split_at(12);
    if pad.iter().any(|b| *b != 0) {
        return None;
    }
    addr.try_into().ok()
}

/// The `i`-th 32-byte ABI word of `data`.
pub(super) fn word(data: &[u8], i: usize) -> Option<U256> {
    let w: [u8; 32] = data.get(i * 32..i * 32 + 32)?.try_into().ok()?;
    Some(U256::from_be_bytes(w))
}

/// The dynamic `uint256[]` whose offset is the `i`-th head word.
fn array(data: &[u8], i: usize) -> Option<Vec<U256>> {
    let offset = usize::try_from(word(data, i)?).ok()?;
    if offset % 32 != 0 {
        return None;
    }
    let at = offset / 32;
    let len = usize::try_from(word(data, at)?).ok()?;
    if len > MAX_BATCH {
        return None;
    }
    (0..len).map(|k| word(data, at + 1 + k)).collect()
}

/// `0x`-prefixed hex of any even length.
pub(super) fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let h = s.strip_prefix("0x")?;
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// A `0x` address in any case.
fn address(s: &str) -> Option<Address> {
    unhex(&s.to_ascii_lowercase())
}

/// A hex quantity of up to 256 bits.
pub fn amount(s: &str) -> Option<U256> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    U256::from_str_radix(digits, 16).ok()
}

/// 32 bytes from (the first) 64 hex digits; evaluated for the constants above, where a short
/// string fails the build.
const fn hex32(s: &str) -> [u8; 32] {
    assert!(s.len() >= 64, "hex32 needs 64 hex digits");
    let mut out = [0u8; 32];
    let mut src = s.as_bytes();
    let mut dst: &mut [u8] = &mut out;
    while let ([hi, lo, src_rest @ ..], [o, dst_rest @ ..]) = (src, dst) {
        *o = (nib(*hi) << 4) | nib(*lo);
        src = src_rest;
        dst = dst_rest;
    }
    out
}

const fn nib(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    }
}

/// One frame of the call tracer's output (`debug_traceBlockByNumber` with `callTracer`).
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    calls: Vec<Frame>,
}

/// One tx's trace: `{txHash, result}` (Klaytn, Kaia, geth) or the bare frame.
#[derive(Deserialize)]
#[serde(untagged)]
enum TxTrace {
    Wrapped { result: Option<Frame> },
    Bare(Frame),
}

/// The deepest call tree walked (the EVM's own limit is 1024 frames).
const MAX_DEPTH: usize = 1100;

/// The KLAY contracts moved inside `block`'s txs, from its call traces (one per tx, in
/// order): every call, create or selfdestruct below the top frame that carried value and did
/// not revert (nor did any frame above it), in a successful tx. Numbered per tx from 1 in
/// call order (`batch_pos`).
pub fn internal_transfers(traces: &RawValue, block: &BlockRows) -> Result<Vec<Transfer>, ExtractError> {
    let fail = |what: String| ExtractError {
        number: block.number,
        what,
    };
    let traces: Vec<TxTrace> = serde_json::from_str(traces.get()).map_err(|e| fail(format!("call traces: {e}")))?;
    if traces.len() != block.txs.len() {
        return Err(fail(format!(
            "{} call traces for {} transactions",
            traces.len(),
            block.txs.len()
        )));
    }
    let mut out = Vec::new();
    for (tx, trace) in block.txs.iter().zip(traces) {
        let top = match trace {
            TxTrace::Wrapped { result } => result,
            TxTrace::Bare(f) => Some(f),
        };
        let Some(top) = top else { continue };
        if !tx.success || top.error.is_some() {
            continue;
        }
        let mut seq = 0u32;
        let mut stack: Vec<(&Frame, usize)> = top.calls.iter().rev().map(|f| (f, 1)).collect();
        while let Some((f, depth)) = stack.pop() {
            if f.error.is_some() || depth > MAX_DEPTH {
                continue;
            }
            let value = f.value.as_deref().and_then(amount).unwrap_or_default();
            let moves = matches!(
                f.kind.as_str(),
                "CALL" | "CALLCODE" | "CREATE" | "CREATE2" | "SELFDESTRUCT"
            );
            if moves && !value.is_zero() {
                let (Some(from), Some(to)) = (address(&f.from), f.to.as_deref().and_then(address)) else {
                    return Err(fail(format!("a call frame of {} without addresses", hex(&tx.hash))));
                };
                seq += 1;
                out.push(Transfer {
                    kind: Kind::Internal,
                    tx_hash: tx.hash,
                    tx_index: tx.index,
                    log_index: None,
                    batch_pos: seq,
                    contract: None,
                    from,
                    to,
                    value,
                    token_id: None,
                    operator: None,
                });
            }
            stack.extend(f.calls.iter().rev().map(|c| (c, depth + 1)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
