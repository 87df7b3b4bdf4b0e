//! Pure routing rules: (call, method class, cluster snapshot) → a [`Plan`] saying where the
//! call may go and with which params; and the node choice for each attempt.
//!
//! Architecture invariant: nothing here performs IO, reads a clock or mutates shared state.

mod params;
mod plan;
mod select;

pub use params::{parse_address, BlockRef, RouteError};
pub use plan::{plan, CachePolicy, Decision, Plan, RetryClass, Target, WriteTx};
pub use select::{choose, higher_node, highest, NodeSet};
