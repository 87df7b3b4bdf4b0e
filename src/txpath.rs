//! The write path: a sender's home node, per-sender nonce ordering, the transaction lifecycle
//! and their background upkeep. Raw transactions are decoded by [`crate::rawtx`].
//!
//! - [`home`], [`senders`], [`upkeep`]: a sender's home node, per-sender nonce ordering, their background upkeep.
//! - [`lifecycle`]: every tx's states, recorded in the store.

pub mod home;
pub mod lifecycle;
pub mod senders;
pub mod upkeep;
