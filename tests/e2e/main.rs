//! End-to-end tests against the real local Klaytn cluster (`scripts/localnet up`), with real
//! client libraries. They share one cluster and detach/stop its nodes, so they run one at a
//! time (`scripts/test` passes `--test-threads=1`).

#[path = "../support/mod.rs"]
mod support;

mod access;
mod browser;
mod clients;
mod cluster;
mod consistency;
mod events;
mod faults;
mod index;
mod kaia;
mod tls;
mod webhooks;
mod writes;
