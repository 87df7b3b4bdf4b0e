//! Signs legacy (EIP-155) transactions — value transfers for load generation, contract
//! deploys and calls for the webhooks test — test-only; kengate's own transaction decoding is
//! separate.

use alloy_rlp::{Encodable, Header};
use k256::ecdsa::SigningKey;
use sha3::{Digest, Keccak256};

pub fn keccak(b: &[u8]) -> [u8; 32] {
    Keccak256::digest(b).into()
}

pub fn hex_bytes(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).expect("hex")
}

/// The address of a private key.
pub fn address_of(key: &SigningKey) -> [u8; 20] {
    let pubkey = key.verifying_key().to_encoded_point(false);
    let h = keccak(&pubkey.as_bytes()[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    a
}

fn trim(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn list(items: &[&dyn Encodable]) -> Vec<u8> {
    let mut payload = Vec::new();
    for i in items {
        i.encode(&mut payload);
    }
    let mut out = Vec::new();
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut out);
    out.extend(payload);
    out
}

/// A signed legacy transfer: (raw tx, tx hash).
pub struct Signed {
    pub raw: Vec<u8>,
    pub hash: [u8; 32],
}

impl Signed {
    pub fn raw_hex(&self) -> String {
        format!("0x{}", hex::encode(&self.raw))
    }
    pub fn hash_hex(&self) -> String {
        format!("0x{}", hex::encode(self.hash))
    }
}

/// Signs a legacy value transfer (21,000 gas) with EIP-155 replay protection.
pub fn sign_transfer(
    key: &SigningKey,
    chain_id: u64,
    nonce: u64,
    gas_price: u128,
    to: [u8; 20],
    value: u128,
) -> Signed {
    sign_legacy(key, chain_id, nonce, gas_price, 21_000, Some(to), value, &[])
}

/// Signs `[nonce, gasPrice, gas, to, value, data]` with EIP-155 replay protection (`to` `None`:
/// a contract creation).
#[allow(clippy::too_many_arguments)]
pub fn sign_legacy(
    key: &SigningKey,
    chain_id: u64,
    nonce: u64,
    gas_price: u128,
    gas: u64,
    to: Option<[u8; 20]>,
    value: u128,
    data: &[u8],
) -> Signed {
    let to: &[u8] = match &to {
        Some(a) => &a[..],
        None => &[],
    };
    let zero: u8 = 0;
    let unsigned = list(&[&nonce, &gas_price, &gas, &to, &value, &data, &chain_id, &zero, &zero]);
    let (sig, recid) = key.sign_prehash_recoverable(&keccak(&unsigned)).expect("sign");
    let v = u64::from(recid.to_byte()) + 35 + 2 * chain_id;
    let (r, s) = (sig.r().to_bytes(), sig.s().to_bytes());
    let raw = list(&[&nonce, &gas_price, &gas, &to, &value, &data, &v, &trim(&r), &trim(&s)]);
    let hash = keccak(&raw);
    Signed { raw, hash }
}
