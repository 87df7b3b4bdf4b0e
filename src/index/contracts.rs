//! What a token contract says about itself, asked once, at the block the index first sees it
//! move tokens: `name()`, `symbol()`, `decimals()`, `totalSupply()` and KIP-13 / ERC-165
//! `supportsInterface` for KIP-7 (0x65787371), KIP-17 (0x80ac58cd, ERC-721's id too), KIP-37
//! (0x6433ca1f) and ERC-1155 (0xd9b67a26). A contract that reverts, answers garbage or lies gets
//! empty fields and a status saying so — never an ingest failure.

use ruint::aliases::U256;
use serde_json::json;

use super::extract::{hex_bytes, word, Address, Kind};
use crate::events::Fetch;
use crate::txpath::lifecycle::hex;

/// The interface ids asked about, with the name kept for each.
pub const INTERFACES: &[(&str, [u8; 4])] = &[
    ("erc20", [0x36, 0x37, 0x2b, 0x07]),
    ("kip7", [0x65, 0x78, 0x73, 0x71]),
    ("kip17", [0x80, 0xac, 0x58, 0xcd]),
    ("kip37", [0x64, 0x33, 0xca, 0x1f]),
    ("erc1155", [0xd9, 0xb6, 0x7a, 0x26]),
];

/// A contract's self-description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `name()`, when it answered a string.
    pub name: Option<String>,
    /// `symbol()`.
    pub symbol: Option<String>,
    /// `decimals()`.
    pub decimals: Option<u8>,
    /// `totalSupply()` at the block asked.
    pub total_supply: Option<U256>,
    /// The interfaces it says it supports (names from [`INTERFACES`]).
    pub interfaces: Vec<&'static str>,
    /// `ok`, or which calls failed.
    pub status: String,
}

/// Asks `contract`, whose events are `kind`'s, about itself at block `at`. Its status is `ok`
/// when it answered what its kind's standard requires: `name()` and `symbol()` for FTs and
/// NFTs (KIP-7 and KIP-17 have them), `supportsInterface` saying KIP-37 or ERC-1155 for MTs
/// (KIP-37 has no name).
pub async fn describe(fetch: &dyn Fetch, contract: &Address, at: u64, kind: Kind) -> Meta {
    let call = |data: String| async move {
        let to = hex(contract);
        let params = json!([{"to": to, "data": data}, format!("{at:#x}")]).to_string();
        let r = fetch.call("klay_call", params).await.ok()?;
        let hex: String = serde_json::from_slice(&r).ok()?;
        hex_bytes(&hex)
    };
    let mut failed = Vec::new();
    let name = call("0x06fdde03".into()).await.and_then(|b| abi_string(&b));
    let symbol = call("0x95d89b41".into()).await.and_then(|b| abi_string(&b));
    let decimals = call("0x313ce567".into())
        .await
        .and_then(|b| word(&b, 0))
        .and_then(|w| u8::try_from(w).ok());
    let total_supply = call("0x18160ddd".into()).await.and_then(|b| word(&b, 0));
    if kind != Kind::Mt {
        for (what, v) in [("name", name.is_none()), ("symbol", symbol.is_none())] {
            if v {
                failed.push(what);
            }
        }
    }
    let mut interfaces = Vec::new();
    for (label, id) in INTERFACES {
        let data = format!(
            "0x01ffc9a7{:02x}{:02x}{:02x}{:02x}{}",
            id[0],
            id[1],
            id[2],
            id[3],
            "0".repeat(56)
        );
        if call(data).await.and_then(|b| word(&b, 0)) == Some(U256::from(1u8)) {
            interfaces.push(*label);
        }
    }
    if kind == Kind::Mt && !interfaces.iter().any(|i| matches!(*i, "kip37" | "erc1155")) {
        failed.push("KIP-37 / ERC-1155 supportsInterface");
    }
    Meta {
        name,
        symbol,
        decimals,
        total_supply,
        interfaces,
        status: match failed.is_empty() {
            true => "ok".into(),
            false => format!("no {}", failed.join(", no ")),
        },
    }
}

/// A token's metadata URI at block `at`: KIP-17 `tokenURI(id)`, or KIP-37 `uri(id)` when `multi`
/// (as the contract answers it, `{id}` template included). `None` when it reverts or answers
/// something else than a string of at most 2 KiB.
pub async fn token_uri(fetch: &dyn Fetch, contract: &Address, id: U256, at: u64, multi: bool) -> Option<String> {
    let selector = if multi { "0e89341c" } else { "c87b56dd" };
    let data = format!("0x{selector}{id:064x}");
    let params = json!([{"to": hex(contract), "data": data}, format!("{at:#x}")]).to_string();
    let r = fetch.call("klay_call", params).await.ok()?;
    let answer: String = serde_json::from_slice(&r).ok()?;
    abi_string_max(&hex_bytes(&answer)?, 2048)
}

/// An ABI `string` return, or the `bytes32` some old tokens return instead; printable text
/// only, at most 256 bytes.
fn abi_string(b: &[u8]) -> Option<String> {
    abi_string_max(b, 256)
}

fn abi_string_max(b: &[u8], max: usize) -> Option<String> {
    let text = if b.len() == 32 {
        b.iter().take_while(|c| **c != 0).copied().collect::<Vec<u8>>()
    } else {
        let offset = usize::try_from(word(b, 0)?).ok()?;
        let len = usize::try_from(word(b.get(offset..)?, 0)?).ok()?;
        if len > max {
            return None;
        }
        b.get(offset + 32..offset + 32 + len)?.to_vec()
    };
    let s = String::from_utf8(text).ok()?;
    (!s.chars().any(char::is_control)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_as_tokens_return_them() {
        let mut b = vec![0u8; 96];
        b[31] = 32;
        b[63] = 5;
        b[64..69].copy_from_slice(b"Hello");
        assert_eq!(abi_string(&b).as_deref(), Some("Hello"));
        let mut b32 = [0u8; 32];
        b32[..3].copy_from_slice(b"MKR");
        assert_eq!(abi_string(&b32).as_deref(), Some("MKR"));
        // an offset or length past the end, a huge length, control characters
        let mut bad = b.clone();
        bad[63] = 200;
        assert_eq!(abi_string(&bad), None);
        let mut ctl = b.clone();
        ctl[64] = 7;
        assert_eq!(abi_string(&ctl), None);
        assert_eq!(abi_string(&[1, 2, 3]), None);
    }
}
