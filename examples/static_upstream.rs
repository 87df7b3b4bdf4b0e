//! A fast, static Klaytn JSON-RPC node for `scripts/bench`: every answer is precomputed at start,
//! so a load test through a proxy in front of it measures the proxy, not the node.
//!
//! ```sh
//! cargo run --release --example static_upstream -- --listen 127.0.0.1:9101 [--head 100]
//! # a node of fixed capacity (2 ms per call, 8 at once: about 4,000 calls/s), for capacity runs
//! cargo run --release --example static_upstream -- --service-ms 2 --max-inflight 8
//! ```
//!
//! It serves JSON-RPC 2.0 over HTTP/1.1 POST (keep-alive), single calls and batches, echoing each
//! call's `id` byte for byte (numbers, strings, null). The chain is fixed: blocks `0..=head`, each
//! with a few full transactions (value transfers and an ERC-20 `transfer` with its log), so
//! `blockNumber` never moves and a head-tracking proxy sees every instance in sync. `klay_` and
//! `kaia_` calls get Klaytn-shaped objects, `eth_` calls Ethereum-shaped ones. Answered methods
//! (namespace `klay_`, `kaia_` or `eth_` unless noted):
//! `blockNumber`, `chainID`/`chainId`, `net_version`, `net_listening`, `net_peerCount`,
//! `web3_clientVersion`, `syncing`, `gasPrice`, `maxPriorityFeePerGas`, `getBalance`,
//! `getTransactionCount`, `getCode`, `call`, `estimateGas`, `getBlockByNumber`, `getBlockByHash`,
//! `getTransactionByHash`, `getTransactionReceipt`, `getBlockReceipts`; with `--logs-bytes N`,
//! `getLogs` (any filter: N bytes of `Transfer` logs). Unknown hashes and blocks
//! above the head answer `null`; other methods answer `-32601`, like a node without that API.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// A static Klaytn JSON-RPC upstream for benchmarks.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The fixed head block number.
    #[arg(long, default_value_t = 100)]
    head: u64,
    /// Chain id (`klay_chainID`, `net_version`).
    #[arg(long, default_value_t = 1337)]
    chain_id: u64,
    /// Transactions in each block (one in three is an ERC-20 transfer with a log).
    #[arg(long, default_value_t = 4)]
    txs_per_block: usize,
    /// Tokio worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Service time per JSON-RPC call, in ms (0: answer at once). With `--max-inflight`, this makes
    /// a node of fixed capacity, as a real node is: at most `max_inflight / service_ms` calls per ms.
    #[arg(long, default_value_t = 0.0)]
    service_ms: f64,
    /// Calls served at once when `--service-ms` is set; the rest wait their turn.
    #[arg(long, default_value_t = 8)]
    max_inflight: usize,
    /// Answer `getLogs` (any filter) with this many bytes of ERC-20 `Transfer` logs (0: the
    /// method is not served), for the large-reply benchmark.
    #[arg(long, default_value_t = 0)]
    logs_bytes: usize,
}

/// A node's fixed capacity: every call holds one of a few slots for its service time.
struct Capacity {
    slots: tokio::sync::Semaphore,
    per_call: std::time::Duration,
}

impl Capacity {
    /// Waits for a slot and holds it for `calls` service times (a batch of ten costs ten calls).
    async fn serve(&self, calls: u32) {
        if let Ok(_slot) = self.slots.acquire().await {
            tokio::time::sleep(self.per_call * calls).await;
        }
    }
}

/// Klaytn-shaped (`klay_`, `kaia_`) or Ethereum-shaped (`eth_`) objects.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    Klay = 0,
    Eth = 1,
}

/// Every answer, as JSON text, indexed by flavor.
struct Chain {
    head: u64,
    head_hex: String,
    chain_id_hex: String,
    net_version: String,
    /// `[flavor][number]`: the block with full transactions / with transaction hashes.
    blocks_full: [Vec<String>; 2],
    blocks_hashes: [Vec<String>; 2],
    /// `[flavor][number]`: the block's receipts as a JSON array.
    block_receipts: [Vec<String>; 2],
    block_by_hash: HashMap<String, u64>,
    /// tx hash → `[flavor]` transaction / receipt JSON.
    txs: HashMap<String, [String; 2]>,
    receipts: HashMap<String, [String; 2]>,
    /// The `getLogs` answer, when served (`--logs-bytes`).
    logs: Option<String>,
}

const GAS_PRICE: &str = "\"0x5d21dba00\""; // 25 ston, Klaytn's fixed unit price
const BALANCE: &str = "\"0x3635c9adc5dea00000\""; // 1000 KLAY
const NONCE: &str = "\"0x5\"";
const CALL_RESULT: &str = "\"0x0000000000000000000000000000000000000000000000000000000000000001\"";
const ERC20_TRANSFER_TOPIC: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// Deterministic pseudo-random words (splitmix64), so every run serves the same chain.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `0x` + `bytes` pseudo-random bytes derived from (tag, a, b), lowercase hex.
fn hex_bytes(bytes: usize, tag: u64, a: u64, b: u64) -> String {
    let mut s = String::with_capacity(2 + bytes * 2);
    s.push_str("0x");
    let mut state = mix(tag.wrapping_mul(0x1000_0000_0001) ^ mix(a) ^ mix(b.wrapping_add(0x5555)));
    while s.len() < 2 + bytes * 2 {
        state = mix(state);
        s.push_str(&format!("{state:016x}"));
    }
    s.truncate(2 + bytes * 2);
    s
}

fn hash(tag: u64, a: u64, b: u64) -> String {
    hex_bytes(32, tag, a, b)
}

fn address(tag: u64, a: u64) -> String {
    hex_bytes(20, tag, a, 0)
}

fn qty(n: u64) -> String {
    format!("0x{n:x}")
}

fn zero_bloom() -> String {
    format!("0x{}", "0".repeat(512))
}

/// One transaction of the static chain, with what its receipt needs.
struct TxData {
    hash: String,
    from: String,
    to: String,
    nonce: u64,
    gas: u64,
    gas_used: u64,
    input: String,
    value: String,
    v: String,
    r: String,
    s: String,
    token_log: Option<(String, String, String)>, // (token, from topic, to topic)
}

fn tx_data(number: u64, i: usize, chain_id: u64) -> TxData {
    let i64_ = i as u64;
    let from = address(10, number * 97 + i64_ % 20);
    let erc20 = i % 3 == 1;
    let recipient = address(11, number * 1000 + i64_);
    let (to, input, value, gas, gas_used, token_log) = if erc20 {
        let token = address(12, 1);
        let input = format!(
            "0xa9059cbb000000000000000000000000{}{:064x}",
            &recipient[2..],
            (number + 1) * 1_000_000_000_000_000
        );
        let topic = |a: &str| format!("0x000000000000000000000000{}", &a[2..]);
        let log = (token.clone(), topic(&from), topic(&recipient));
        (token, input, "0x0".to_owned(), 90_000, 51_234, Some(log))
    } else {
        let value = qty((number + 1) * 1_000_000_000_000_000 + i64_);
        (recipient, "0x".to_owned(), value, 21_000, 21_000, None)
    };
    TxData {
        hash: hash(20, number, i64_),
        from,
        to,
        nonce: number * 3 + i64_,
        gas,
        gas_used,
        input,
        value,
        v: qty(chain_id * 2 + 35 + (number + i64_) % 2),
        r: hash(21, number, i64_),
        s: hash(22, number, i64_),
        token_log,
    }
}

impl Chain {
    fn build(head: u64, chain_id: u64, txs_per_block: usize) -> Chain {
        let n = head as usize + 1;
        let mut chain = Chain {
            head,
            head_hex: format!("\"{}\"", qty(head)),
            chain_id_hex: format!("\"{}\"", qty(chain_id)),
            net_version: format!("\"{chain_id}\""),
            blocks_full: [Vec::with_capacity(n), Vec::with_capacity(n)],
            blocks_hashes: [Vec::with_capacity(n), Vec::with_capacity(n)],
            block_receipts: [Vec::with_capacity(n), Vec::with_capacity(n)],
            block_by_hash: HashMap::new(),
            txs: HashMap::new(),
            receipts: HashMap::new(),
            logs: None,
        };
        let bloom = zero_bloom();
        let proposer = address(30, 0);
        let extra = hex_bytes(205, 31, 0, 0);
        for number in 0..=head {
            let block_hash = hash(1, number, 0);
            let parent = if number == 0 {
                hash(0, 0, 0)
            } else {
                hash(1, number - 1, 0)
            };
            let ntx = if number == 0 { 0 } else { txs_per_block };
            let timestamp = 1_700_000_000 + number;
            let mut full: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
            let mut hashes = Vec::new();
            let mut receipts: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
            let mut cumulative = 0;
            let mut log_index = 0u64;
            for i in 0..ntx {
                let t = tx_data(number, i, chain_id);
                cumulative += t.gas_used;
                let common = |o: &mut serde_json::Map<String, Value>| {
                    o.insert("blockHash".into(), json!(block_hash));
                    o.insert("blockNumber".into(), json!(qty(number)));
                    o.insert("from".into(), json!(t.from));
                    o.insert("gas".into(), json!(qty(t.gas)));
                    o.insert("gasPrice".into(), json!("0x5d21dba00"));
                    o.insert("hash".into(), json!(t.hash));
                    o.insert("input".into(), json!(t.input));
                    o.insert("nonce".into(), json!(qty(t.nonce)));
                    o.insert("to".into(), json!(t.to));
                    o.insert("transactionIndex".into(), json!(qty(i as u64)));
                    o.insert("value".into(), json!(t.value));
                };
                let mut klay = serde_json::Map::new();
                common(&mut klay);
                klay.insert("senderTxHash".into(), json!(t.hash));
                klay.insert("signatures".into(), json!([{ "V": t.v, "R": t.r, "S": t.s }]));
                klay.insert("type".into(), json!("TxTypeLegacyTransaction"));
                klay.insert("typeInt".into(), json!(0));
                let mut eth = serde_json::Map::new();
                common(&mut eth);
                eth.insert("chainId".into(), json!(qty(chain_id)));
                eth.insert("type".into(), json!("0x0"));
                eth.insert("v".into(), json!(t.v));
                eth.insert("r".into(), json!(t.r));
                eth.insert("s".into(), json!(t.s));

                let logs: Vec<Value> = t
                    .token_log
                    .iter()
                    .map(|(token, from_topic, to_topic)| {
                        let l = json!({
                            "address": token,
                            "topics": [ERC20_TRANSFER_TOPIC, from_topic, to_topic],
                            "data": format!("0x{:064x}", (number + 1) * 1_000_000_000_000_000),
                            "blockNumber": qty(number),
                            "transactionHash": t.hash,
                            "transactionIndex": qty(i as u64),
                            "blockHash": block_hash,
                            "logIndex": qty(log_index),
                            "removed": false,
                        });
                        log_index += 1;
                        l
                    })
                    .collect();
                let log_bloom = if logs.is_empty() {
                    bloom.clone()
                } else {
                    hex_bytes(256, 23, number, i as u64)
                };
                let mut klay_receipt = klay.clone();
                klay_receipt.remove("hash");
                klay_receipt.insert("contractAddress".into(), Value::Null);
                klay_receipt.insert("effectiveGasPrice".into(), json!("0x5d21dba00"));
                klay_receipt.insert("gasUsed".into(), json!(qty(t.gas_used)));
                klay_receipt.insert("logs".into(), json!(logs));
                klay_receipt.insert("logsBloom".into(), json!(log_bloom));
                klay_receipt.insert("status".into(), json!("0x1"));
                klay_receipt.insert("transactionHash".into(), json!(t.hash));
                let eth_receipt = json!({
                    "blockHash": block_hash,
                    "blockNumber": qty(number),
                    "contractAddress": null,
                    "cumulativeGasUsed": qty(cumulative),
                    "effectiveGasPrice": "0x5d21dba00",
                    "from": t.from,
                    "gasUsed": qty(t.gas_used),
                    "logs": logs,
                    "logsBloom": log_bloom,
                    "status": "0x1",
                    "to": t.to,
                    "transactionHash": t.hash,
                    "transactionIndex": qty(i as u64),
                    "type": "0x0",
                });
                let (klay, eth) = (Value::Object(klay), Value::Object(eth));
                chain.txs.insert(t.hash.clone(), [klay.to_string(), eth.to_string()]);
                let klay_receipt = Value::Object(klay_receipt);
                chain
                    .receipts
                    .insert(t.hash.clone(), [klay_receipt.to_string(), eth_receipt.to_string()]);
                full[0].push(klay);
                full[1].push(eth);
                receipts[0].push(klay_receipt);
                receipts[1].push(eth_receipt);
                hashes.push(json!(t.hash));
            }
            let size = qty(600 + 180 * ntx as u64);
            let klay_block = |txs: Vec<Value>| {
                json!({
                    "baseFeePerGas": "0x5d21dba00",
                    "blockscore": "0x1",
                    "extraData": extra,
                    "gasUsed": qty(cumulative),
                    "governanceData": "0x",
                    "hash": block_hash,
                    "logsBloom": bloom,
                    "number": qty(number),
                    "parentHash": parent,
                    "proposer": proposer,
                    "receiptsRoot": hash(2, number, 0),
                    "reward": proposer,
                    "size": size,
                    "stateRoot": hash(3, number, 0),
                    "timestamp": qty(timestamp),
                    "timestampFoS": "0x0",
                    "totalBlockScore": qty(number + 1),
                    "transactions": txs,
                    "transactionsRoot": hash(4, number, 0),
                    "voteData": "0x",
                })
                .to_string()
            };
            let eth_block = |txs: Vec<Value>| {
                json!({
                    "baseFeePerGas": "0x5d21dba00",
                    "difficulty": "0x1",
                    "extraData": "0x",
                    "gasLimit": "0xe8d4a50fff",
                    "gasUsed": qty(cumulative),
                    "hash": block_hash,
                    "logsBloom": bloom,
                    "miner": proposer,
                    "mixHash": hash(0, 0, 0),
                    "nonce": "0x0000000000000000",
                    "number": qty(number),
                    "parentHash": parent,
                    "receiptsRoot": hash(2, number, 0),
                    "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
                    "size": size,
                    "stateRoot": hash(3, number, 0),
                    "timestamp": qty(timestamp),
                    "totalDifficulty": qty(number + 1),
                    "transactions": txs,
                    "transactionsRoot": hash(4, number, 0),
                    "uncles": [],
                })
                .to_string()
            };
            let [klay_full, eth_full] = full;
            chain.blocks_full[0].push(klay_block(klay_full));
            chain.blocks_full[1].push(eth_block(eth_full));
            chain.blocks_hashes[0].push(klay_block(hashes.clone()));
            chain.blocks_hashes[1].push(eth_block(hashes));
            let [klay_r, eth_r] = receipts;
            chain.block_receipts[0].push(Value::Array(klay_r).to_string());
            chain.block_receipts[1].push(Value::Array(eth_r).to_string());
            chain.block_by_hash.insert(block_hash, number);
        }
        chain
    }
}

/// One call of a request, borrowed from the body.
#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// What one call answers.
enum Answer<'c> {
    Result(&'c str),
    Error(i64, String),
}

const NULL: &str = "null";

fn params<'a>(call: &Call<'a>) -> Vec<&'a RawValue> {
    call.params
        .and_then(|p| serde_json::from_str::<Vec<&RawValue>>(p.get()).ok())
        .unwrap_or_default()
}

fn hash_param(call: &Call<'_>) -> Option<String> {
    let p = params(call);
    let s: Cow<str> = serde_json::from_str(p.first()?.get()).ok()?;
    Some(s.to_ascii_lowercase())
}

/// A block parameter: tag, hex quantity, or `{"blockNumber": ...}`.
fn block_param(chain: &Chain, raw: Option<&RawValue>) -> Result<u64, ()> {
    let Some(raw) = raw else { return Ok(chain.head) };
    let v: Value = serde_json::from_str(raw.get()).map_err(|_| ())?;
    let v = match &v {
        Value::Object(o) => o.get("blockNumber").cloned().ok_or(())?,
        _ => v,
    };
    match &v {
        Value::String(s) => match s.as_str() {
            "latest" | "pending" | "safe" | "finalized" => Ok(chain.head),
            "earliest" => Ok(0),
            s => u64::from_str_radix(s.strip_prefix("0x").ok_or(())?, 16).map_err(|_| ()),
        },
        Value::Number(n) => n.as_u64().ok_or(()),
        _ => Err(()),
    }
}

fn answer<'c>(chain: &'c Chain, call: &Call<'_>) -> Answer<'c> {
    let method = call.method.as_ref();
    let (ns, name) = method.split_once('_').unwrap_or(("", method));
    let flavor = match ns {
        "klay" | "kaia" => Flavor::Klay,
        "eth" => Flavor::Eth,
        "net" => {
            return match name {
                "version" => Answer::Result(&chain.net_version),
                "listening" => Answer::Result("true"),
                "peerCount" => Answer::Result("\"0x1\""),
                _ => not_found(method),
            }
        }
        "web3" if name == "clientVersion" => return Answer::Result("\"Klaytn/v1.12.1/static-upstream\""),
        _ => return not_found(method),
    };
    let f = flavor as usize;
    match name {
        "blockNumber" => Answer::Result(&chain.head_hex),
        "chainID" | "chainId" => Answer::Result(&chain.chain_id_hex),
        "gasPrice" | "maxPriorityFeePerGas" => Answer::Result(GAS_PRICE),
        "syncing" => Answer::Result("false"),
        "getBalance" => Answer::Result(BALANCE),
        "getTransactionCount" => Answer::Result(NONCE),
        "getCode" => Answer::Result("\"0x\""),
        "call" => Answer::Result(CALL_RESULT),
        "estimateGas" => Answer::Result("\"0x5208\""),
        "getBlockByNumber" | "getBlockReceipts" => {
            let p = params(call);
            let Ok(n) = block_param(chain, p.first().copied()) else {
                return Answer::Error(-32602, "invalid argument 0: bad block number".into());
            };
            if n > chain.head {
                return Answer::Result(NULL);
            }
            if name == "getBlockReceipts" {
                return Answer::Result(&chain.block_receipts[f][n as usize]);
            }
            let full = p.get(1).is_some_and(|b| b.get() == "true");
            let blocks = if full {
                &chain.blocks_full[f]
            } else {
                &chain.blocks_hashes[f]
            };
            Answer::Result(&blocks[n as usize])
        }
        "getBlockByHash" => {
            let full = params(call).get(1).is_some_and(|b| b.get() == "true");
            match hash_param(call).and_then(|h| chain.block_by_hash.get(&h)) {
                Some(&n) if full => Answer::Result(&chain.blocks_full[f][n as usize]),
                Some(&n) => Answer::Result(&chain.blocks_hashes[f][n as usize]),
                None => Answer::Result(NULL),
            }
        }
        "getTransactionByHash" => match hash_param(call).and_then(|h| chain.txs.get(&h)) {
            Some(t) => Answer::Result(&t[f]),
            None => Answer::Result(NULL),
        },
        "getTransactionReceipt" => match hash_param(call).and_then(|h| chain.receipts.get(&h)) {
            Some(r) => Answer::Result(&r[f]),
            None => Answer::Result(NULL),
        },
        "getLogs" => match &chain.logs {
            Some(logs) => Answer::Result(logs),
            None => not_found(method),
        },
        _ => not_found(method),
    }
}

/// A JSON array of Klaytn-shaped ERC-20 `Transfer` logs, about `bytes` long.
fn logs_answer(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 1024);
    out.push('[');
    let mut i = 0u64;
    while out.len() < bytes {
        if i > 0 {
            out.push(',');
        }
        let (block, tx) = (1 + i / 1000, i % 1000);
        let log = json!({
            "address": address(40, i % 16),
            "topics": [ERC20_TRANSFER_TOPIC, word(address(41, i)), word(address(42, i))],
            "data": hash(43, i, 0),
            "blockNumber": qty(block),
            "transactionHash": hash(44, block, tx),
            "transactionIndex": qty(tx),
            "blockHash": hash(1, block, 0),
            "logIndex": qty(tx),
            "removed": false,
        });
        out.push_str(&log.to_string());
        i += 1;
    }
    out.push(']');
    out
}

/// A 20-byte address as a 32-byte topic word.
fn word(addr: String) -> String {
    format!("0x{:0>64}", addr.trim_start_matches("0x"))
}

fn not_found(method: &str) -> Answer<'static> {
    Answer::Error(-32601, format!("the method {method} does not exist/is not available"))
}

fn write_reply(out: &mut Vec<u8>, id: Option<&RawValue>, answer: Answer<'_>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or(NULL, |r| r.get()).as_bytes());
    match answer {
        Answer::Result(r) => {
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(r.as_bytes());
        }
        Answer::Error(code, message) => {
            let err = json!({ "code": code, "message": message });
            out.extend_from_slice(b",\"error\":");
            out.extend_from_slice(err.to_string().as_bytes());
        }
    }
    out.push(b'}');
}

fn reply_one(chain: &Chain, raw: &str, out: &mut Vec<u8>) {
    match serde_json::from_str::<Call>(raw) {
        Ok(call) => write_reply(out, call.id, answer(chain, &call)),
        Err(_) => write_reply(out, None, Answer::Error(-32600, "invalid request".into())),
    }
}

/// The reply body for one request body.
fn handle_body(chain: &Chain, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let Ok(text) = std::str::from_utf8(body) else {
        write_reply(&mut out, None, Answer::Error(-32700, "parse error".into()));
        return out;
    };
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(calls) if calls.is_empty() => write_reply(&mut out, None, Answer::Error(-32600, "empty batch".into())),
            Ok(calls) => {
                out.push(b'[');
                for (i, c) in calls.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    reply_one(chain, c.get(), &mut out);
                }
                out.push(b']');
            }
            Err(_) => write_reply(&mut out, None, Answer::Error(-32700, "parse error".into())),
        }
    } else if serde_json::from_str::<&RawValue>(text).is_ok() {
        reply_one(chain, text, &mut out);
    } else {
        write_reply(&mut out, None, Answer::Error(-32700, "parse error".into()));
    }
    out
}

/// JSON-RPC calls in a request body (a batch's length, else one), counted without parsing them.
fn calls_in(body: &[u8]) -> u32 {
    match serde_json::from_slice::<Vec<&RawValue>>(body) {
        Ok(calls) => u32::try_from(calls.len()).unwrap_or(u32::MAX).max(1),
        Err(_) => 1,
    }
}

async fn serve_http(
    chain: Arc<Chain>,
    capacity: Option<Arc<Capacity>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, ctype: &'static str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ctype));
        Ok(r)
    };
    if req.method() != Method::POST {
        return reply(
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"static upstream: POST JSON-RPC here\n"),
        );
    }
    let body = match Limited::new(req.into_body(), 16 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "text/plain", Bytes::from_static(b"bad body\n")),
    };
    if let Some(capacity) = capacity {
        capacity.serve(calls_in(&body)).await;
    }
    let out = handle_body(&chain, &body);
    reply(StatusCode::OK, "application/json", Bytes::from(out))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut chain = Chain::build(args.head, args.chain_id, args.txs_per_block);
    chain.logs = (args.logs_bytes > 0).then(|| logs_answer(args.logs_bytes));
    let chain = Arc::new(chain);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let capacity = (args.service_ms > 0.0).then(|| {
        Arc::new(Capacity {
            slots: tokio::sync::Semaphore::new(args.max_inflight.max(1)),
            per_call: std::time::Duration::from_secs_f64(args.service_ms / 1000.0),
        })
    });
    let sample = tx_data(args.head.saturating_sub(1).max(1), 0, args.chain_id).hash;
    println!(
        "static_upstream listening on http://{addr} (head {}, chain id {}, sample tx {sample})",
        args.head, args.chain_id
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("static_upstream: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (chain, capacity) = (chain.clone(), capacity.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| serve_http(chain.clone(), capacity.clone(), req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(chain: &Chain, body: &str) -> Value {
        serde_json::from_slice(&handle_body(chain, body.as_bytes())).unwrap()
    }

    #[test]
    fn answers_echo_ids_and_batches() {
        let chain = Chain::build(100, 1337, 4);
        let r = reply(
            &chain,
            r#"{"jsonrpc":"2.0","id":"a-1","method":"klay_blockNumber","params":[]}"#,
        );
        assert_eq!(r, json!({"jsonrpc":"2.0","id":"a-1","result":"0x64"}));
        let r = reply(
            &chain,
            r#"[{"jsonrpc":"2.0","id":7,"method":"eth_chainId"},{"jsonrpc":"2.0","id":8,"method":"net_version"},
                {"jsonrpc":"2.0","id":9,"method":"klay_nope","params":[]}]"#,
        );
        assert_eq!(r[0]["result"], "0x539");
        assert_eq!(r[1]["result"], "1337");
        assert_eq!(r[2]["error"]["code"], -32601);
        assert_eq!(r[2]["id"], 9);
    }

    #[test]
    fn blocks_txs_and_receipts_agree() {
        let chain = Chain::build(100, 1337, 4);
        let b = reply(
            &chain,
            r#"{"jsonrpc":"2.0","id":1,"method":"klay_getBlockByNumber","params":["0x63",true]}"#,
        );
        let txs = b["result"]["transactions"].as_array().unwrap();
        assert_eq!(txs.len(), 4);
        assert_eq!(b["result"]["number"], "0x63");
        let h = txs[1]["hash"].as_str().unwrap();
        let body = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"eth_getTransactionReceipt","params":["{h}"]}}"#);
        let r = reply(&chain, &body);
        assert_eq!(r["result"]["transactionHash"], h);
        assert_eq!(r["result"]["logs"].as_array().unwrap().len(), 1);
        let latest = reply(
            &chain,
            r#"{"jsonrpc":"2.0","id":3,"method":"eth_getBlockByNumber","params":["latest",false]}"#,
        );
        assert_eq!(latest["result"]["number"], "0x64");
        let above = reply(
            &chain,
            r#"{"jsonrpc":"2.0","id":4,"method":"klay_getBlockByNumber","params":["0x65",true]}"#,
        );
        assert_eq!(above["result"], Value::Null);
    }
}
