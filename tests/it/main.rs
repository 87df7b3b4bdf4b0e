//! Integration tests against deterministic fake upstreams: every routing rule, bad input,
//! WebSocket and the admin endpoints. One binary (see reth's `tests/it`).

#[path = "../support/mod.rs"]
mod support;

mod access;
mod admin;
mod architecture;
mod bad_input;
mod cache;
mod dialect;
mod drain;
mod edge;
mod ejection;
mod events;
mod faults;
mod front;
mod index;
mod kas;
mod reload;
mod routing;
mod stream;
mod tls;
mod transparency;
mod webhooks;
mod writes;
mod ws;
