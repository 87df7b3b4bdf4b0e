//! Raw transaction decoding, pure and total: bytes or `0x` hex in, a typed result out, no IO.
//! It sits below `routing` (which decodes a `sendRawTransaction` into a plan's write facts)
//! and `txpath` (which orders and tracks those writes); it imports nothing of kengate.
//!
//! - [`decode`](mod@decode): raw bytes / `0x` hex → [`DecodedTx`] (sender, nonce, chain id, Klaytn tx hash, fee payer)
//!   for legacy, the 21 Klaytn native types and Ethereum typed txs (0x78-wrapped or bare). A typed
//!   error for any input, never a panic (fuzzed by `fuzz/fuzz_targets/raw_tx.rs`).
//! - [`types`]: addresses and transaction types with their wire codes and Klaytn names.

pub mod decode;
mod rlp;
mod sig;
pub mod types;

pub use decode::{decode, decode_hex, DecodeError, DecodedTx};
pub use rlp::RlpError;
pub use types::{Address, EthType, FeeMode, KlaytnKind, KlaytnType, TxType};
