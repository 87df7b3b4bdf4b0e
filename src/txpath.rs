//! The write path: raw transaction decoding now; sender-sticky ordering and lifecycle tracking later.
//!
//! - [`decode`]: raw bytes / `0x` hex → [`DecodedTx`] (sender, nonce, chain id, Klaytn tx hash, fee payer)
//!   for legacy, the 21 Klaytn native types and Ethereum typed txs (0x78-wrapped or bare). Pure and total:
//!   a typed error for any input, never a panic (fuzzed by `fuzz/fuzz_targets/raw_tx.rs`).
//! - [`types`]: addresses and transaction types with their wire codes and Klaytn names.
//! - [`home`], [`senders`], [`upkeep`]: a sender's home node, per-sender nonce ordering, their background upkeep.

pub mod decode;
pub mod home;
pub mod lifecycle;
mod rlp;
pub mod senders;
mod sig;
pub mod types;
pub mod upkeep;

pub use decode::{decode, decode_hex, DecodeError, DecodedTx};
pub use rlp::RlpError;
pub use types::{Address, EthType, FeeMode, KlaytnKind, KlaytnType, TxType};
