//! The Etherscan-compatible account API over the index: `GET /api?module=account&action=…`
//! (`txlist`, `tokentx`, `tokennfttx`, `token1155tx`, `balance`, `balancemulti`,
//! `tokenbalance`) and `module=logs&action=getLogs`, with Etherscan's parameters (`page`,
//! `offset`, `sort`, `startblock`, `endblock`), its `{status, message, result}` envelope and
//! its error strings. Histories come from the index (never above the block it has reached,
//! itself never above the served head); balances and logs are read through the routing core
//! at the served head.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ruint::aliases::U256;
use serde_json::{json, Value};

use super::db::{IndexDb, Page, TransferView, TxView};
use super::extract::amount;
use super::Index;
use crate::events::Fetch;
use crate::jsonrpc::set_member;
use crate::txpath::lifecycle::{hex, unhex};

/// Etherscan's cap on `page × offset`.
const WINDOW: u64 = 10_000;

/// Answers one query string for `network` (always HTTP 200, as Etherscan does).
pub async fn answer(index: &Index, fetch: &dyn Fetch, network: &str, query: &str) -> String {
    let q = Params::parse(query);
    let result = match (q.get("module"), q.get("action")) {
        (Some("account"), Some(action)) => account(index, fetch, network, action, &q).await,
        (Some("logs"), Some("getLogs")) => logs(fetch, &q).await,
        (Some("account" | "logs"), _) => Err("Error! Missing Or invalid Action name".to_owned()),
        _ => Err("Error! Missing Or invalid Module name".to_owned()),
    };
    match result {
        Ok(Reply::Rows(rows)) if rows.is_empty() => {
            json!({"status": "0", "message": "No transactions found", "result": []}).to_string()
        }
        Ok(Reply::Rows(rows)) => json!({"status": "1", "message": "OK", "result": rows}).to_string(),
        Ok(Reply::Value(v)) => json!({"status": "1", "message": "OK", "result": v}).to_string(),
        Err(msg) => json!({"status": "0", "message": "NOTOK", "result": msg}).to_string(),
    }
}

enum Reply {
    Rows(Vec<Value>),
    Value(Value),
}

/// Query parameters (`%2C` and `%2c` read as commas; nothing else is encoded in these).
struct Params<'a>(Vec<(&'a str, String)>);

impl<'a> Params<'a> {
    fn parse(q: &'a str) -> Self {
        Params(
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k, v.replace("%2C", ",").replace("%2c", ",")))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("Error! Invalid {key}")),
        }
    }
}

async fn account(index: &Index, fetch: &dyn Fetch, net: &str, action: &str, q: &Params<'_>) -> Result<Reply, String> {
    match action {
        "balance" => {
            let a = address(q.get("address"))?;
            Ok(Reply::Value(Value::String(balance(fetch, &a).await?)))
        }
        "balancemulti" => {
            let list = q.get("address").unwrap_or("");
            let addrs: Vec<&str> = list.split(',').filter(|a| !a.is_empty()).collect();
            if addrs.is_empty() || addrs.len() > 20 {
                return Err("Error! Invalid address format".into());
            }
            let mut out = Vec::new();
            for a in addrs {
                let a = address(Some(a))?;
                out.push(json!({"account": a, "balance": balance(fetch, &a).await?}));
            }
            Ok(Reply::Value(Value::Array(out)))
        }
        "tokenbalance" => {
            let contract = address(q.get("contractaddress"))?;
            let holder = address(q.get("address"))?;
            // balanceOf(address) at the served head
            let data = format!("0x70a08231{:0>64}", holder.trim_start_matches("0x"));
            let params = json!([{"to": contract, "data": data}, "latest"]).to_string();
            let r = fetch
                .call("eth_call", params)
                .await
                .map_err(|e| format!("Error! {e}"))?;
            let hex: String = serde_json::from_slice(&r).map_err(|_| "Error! Invalid balanceOf answer".to_owned())?;
            Ok(Reply::Value(Value::String(decimal_hex(&hex))))
        }
        "txlistinternal" if !index.internal(net) => Err("Error! Internal transactions are not indexed".into()),
        "txlist" | "txlistinternal" | "tokentx" | "tokennfttx" | "token1155tx" => {
            let page = page(index, net, q)?;
            let Some(page) = page else {
                return Ok(Reply::Rows(Vec::new()));
            };
            let served = fetch.served().borrow().to_owned();
            let db = index.db().clone();
            let (net, action) = (net.to_owned(), action.to_owned());
            let addr = q.get("address").map(|a| address(Some(a))).transpose()?;
            let contract = q.get("contractaddress").map(|a| address(Some(a))).transpose()?;
            let of = match (action.as_str(), addr, contract) {
                ("txlistinternal", None, _) => match q.get("txhash") {
                    Some(h) => Of::Tx(tx_hash(h)?),
                    // Etherscan's "by block range" form.
                    None => Of::Range,
                },
                ("txlist", None, _) | (_, None, None) => return Err("Error! Invalid address format".into()),
                (_, a, c) => Of::Account(a, c),
            };
            let rows = tokio::task::spawn_blocking(move || history(&db, &net, &action, of, &page, served))
                .await
                .map_err(|e| format!("Error! {e}"))??;
            Ok(Reply::Rows(rows))
        }
        _ => Err("Error! Missing Or invalid Action name".into()),
    }
}

/// The page a query asks for, within what is indexed (`None`: nothing indexed in range).
fn page(index: &Index, net: &str, q: &Params<'_>) -> Result<Option<Page>, String> {
    let pg = q.number("page", 1)?.max(1);
    let offset = q.number("offset", WINDOW)?.max(1);
    if pg.saturating_mul(offset) > WINDOW {
        return Err("Result window is too large, PageNo x Offset size must be less than or equal to 10000".into());
    }
    let asc = match q.get("sort") {
        None | Some("") | Some("asc") => true,
        Some("desc") => false,
        Some(_) => return Err("Error! Invalid sort".into()),
    };
    let Some(indexed) = index.indexed(net) else {
        return Ok(None);
    };
    let start = q.number("startblock", 0)?;
    let end = q.number("endblock", u64::MAX)?.min(indexed);
    if start > end {
        return Ok(None);
    }
    Ok(Some(Page {
        start,
        end,
        asc,
        limit: u32::try_from(offset).unwrap_or(u32::MAX),
        skip: u32::try_from((pg - 1) * offset).unwrap_or(u32::MAX),
    }))
}

/// Whose history a query asks for.
enum Of {
    /// An account's (and/or a token contract's).
    Account(Option<String>, Option<String>),
    /// One transaction's (`txlistinternal&txhash=`).
    Tx(Vec<u8>),
    /// Everything in the block range (`txlistinternal` without an address).
    Range,
}

/// A `0x` tx hash of 64 hex digits, as bytes; Etherscan's error otherwise.
fn tx_hash(h: &str) -> Result<Vec<u8>, String> {
    unhex::<32>(&h.to_ascii_lowercase())
        .map(|b| b.to_vec())
        .ok_or_else(|| "Error! Invalid txhash format".to_owned())
}

fn history(db: &Arc<IndexDb>, net: &str, action: &str, of: Of, page: &Page, served: u64) -> Result<Vec<Value>, String> {
    let bytes = |a: &Option<String>| a.as_deref().map(raw_address);
    let fail = |e: super::db::DbError| format!("Error! {e}");
    if action == "txlistinternal" {
        let rows = match &of {
            Of::Tx(h) => db.transfers_in_tx(net, "internal", h, page),
            Of::Account(a, _) => db.transfers_of(net, "internal", bytes(a).as_deref(), None, page),
            Of::Range => db.transfers_of(net, "internal", None, None, page),
        };
        return Ok(rows.map_err(fail)?.iter().map(internal_json).collect());
    }
    let (addr, contract) = match of {
        Of::Account(a, c) => (a, c),
        Of::Tx(_) | Of::Range => (None, None),
    };
    if action == "txlist" {
        let a = bytes(&addr).unwrap_or_default();
        return Ok(db
            .txs_of(net, &a, page)
            .map_err(fail)?
            .iter()
            .map(|t| tx_json(t, served))
            .collect());
    }
    let kind = match action {
        "tokentx" => "ft",
        "tokennfttx" => "nft",
        _ => "mt",
    };
    let (a, c) = (bytes(&addr), bytes(&contract));
    let rows = db
        .transfers_of(net, kind, a.as_deref(), c.as_deref(), page)
        .map_err(fail)?;
    let mut names: Vec<(Vec<u8>, (String, String, String))> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for t in &rows {
        let mut v = transfer_json(t, kind, served);
        if let Some(c) = &t.contract {
            let known = names.iter().find(|(a, _)| a == c).map(|(_, n)| n.clone());
            let n = match known {
                Some(n) => n,
                None => {
                    let n = db.token_names(net, c).map_err(fail)?.unwrap_or_default();
                    names.push((c.clone(), n.clone()));
                    n
                }
            };
            set_member(&mut v, "tokenName", Value::String(n.0));
            set_member(&mut v, "tokenSymbol", Value::String(n.1));
            if kind == "ft" {
                set_member(&mut v, "tokenDecimal", Value::String(n.2));
            }
        }
        out.push(v);
    }
    Ok(out)
}

fn tx_json(t: &TxView, served: u64) -> Value {
    json!({
        "blockNumber": t.block.to_string(),
        "timeStamp": t.ts.to_string(),
        "hash": hex(&t.hash),
        "nonce": t.nonce.to_string(),
        "blockHash": hex(&t.block_hash),
        "transactionIndex": t.index.to_string(),
        "from": hex(&t.from),
        "to": t.to.as_deref().map(hex).unwrap_or_default(),
        "value": decimal(&t.value),
        "gas": t.gas.to_string(),
        "gasPrice": decimal(&t.gas_price),
        "isError": if t.success { "0" } else { "1" },
        "txreceipt_status": if t.success { "1" } else { "0" },
        "input": "deprecated",
        "contractAddress": t.created.as_deref().map(hex).unwrap_or_default(),
        "cumulativeGasUsed": "",
        "gasUsed": t.gas_used.to_string(),
        "confirmations": served.saturating_sub(t.block).to_string(),
        "methodId": t.selector.as_deref().map(hex).unwrap_or_else(|| "0x".into()),
        "functionName": "",
        "txType": t.type_int.to_string(),
        "feePayer": t.fee_payer.as_deref().map(hex).unwrap_or_default(),
    })
}

/// A `txlistinternal` row: a value-carrying call frame of a successful tx (the index keeps
/// neither the frame's type nor its gas: `type` is `call` for every row, `gas` / `gasUsed`
/// are empty).
fn internal_json(t: &TransferView) -> Value {
    json!({
        "blockNumber": t.block.to_string(),
        "timeStamp": t.ts.to_string(),
        "hash": hex(&t.tx_hash),
        "from": hex(&t.from),
        "to": hex(&t.to),
        "value": decimal(&t.value),
        "contractAddress": "",
        "input": "",
        "type": "call",
        "gas": "",
        "gasUsed": "",
        "traceId": (t.batch_pos.saturating_sub(1)).to_string(),
        "isError": "0",
        "errCode": "",
    })
}

fn transfer_json(t: &TransferView, kind: &str, served: u64) -> Value {
    let mut v = json!({
        "blockNumber": t.block.to_string(),
        "timeStamp": t.ts.to_string(),
        "hash": hex(&t.tx_hash),
        "nonce": t.nonce.to_string(),
        "blockHash": hex(&t.block_hash),
        "from": hex(&t.from),
        "contractAddress": t.contract.as_deref().map(hex).unwrap_or_default(),
        "to": hex(&t.to),
        "tokenName": "",
        "tokenSymbol": "",
        "transactionIndex": t.tx_index.to_string(),
        "logIndex": t.log_index.to_string(),
        "gas": t.gas.to_string(),
        "gasPrice": decimal(&t.gas_price),
        "gasUsed": t.gas_used.to_string(),
        "cumulativeGasUsed": "",
        "input": "deprecated",
        "confirmations": served.saturating_sub(t.block).to_string(),
    });
    let id = t.token_id.as_deref().map(decimal).unwrap_or_default();
    match kind {
        "ft" => {
            set_member(&mut v, "value", Value::String(decimal(&t.value)));
            set_member(&mut v, "tokenDecimal", Value::String(String::new()));
        }
        "nft" => {
            set_member(&mut v, "tokenID", Value::String(id));
            set_member(&mut v, "tokenDecimal", Value::String("0".into()));
        }
        _ => {
            set_member(&mut v, "tokenID", Value::String(id));
            set_member(&mut v, "tokenValue", Value::String(decimal(&t.value)));
        }
    }
    v
}

/// `klay_getBalance(addr, "latest")` (the served head) in decimal.
async fn balance(fetch: &dyn Fetch, addr: &str) -> Result<String, String> {
    let r = fetch
        .call("klay_getBalance", json!([addr, "latest"]).to_string())
        .await
        .map_err(|e| format!("Error! {e}"))?;
    let hex: String = serde_json::from_slice(&r).map_err(|_| "Error! Invalid balance answer".to_owned())?;
    Ok(decimal_hex(&hex))
}

async fn logs(fetch: &dyn Fetch, q: &Params<'_>) -> Result<Reply, String> {
    let mut filter = serde_json::Map::new();
    for (k, name) in [("fromBlock", "fromBlock"), ("toBlock", "toBlock")] {
        if let Some(v) = q.get(k) {
            let n: u64 = match v {
                "latest" => {
                    filter.insert(name.into(), json!("latest"));
                    continue;
                }
                v => v.parse().map_err(|_| format!("Error! Invalid {k}"))?,
            };
            filter.insert(name.into(), json!(format!("{n:#x}")));
        }
    }
    if let Some(a) = q.get("address") {
        filter.insert("address".into(), json!(address(Some(a))?));
    }
    let topics: Vec<Value> = (0..4)
        .map(|i| q.get(&format!("topic{i}")).map_or(Value::Null, |t| json!(t)))
        .collect();
    if topics.iter().any(|t| !t.is_null()) {
        filter.insert("topics".into(), Value::Array(topics));
    }
    let r = fetch
        .call("eth_getLogs", json!([filter]).to_string())
        .await
        .map_err(|e| format!("Error! {e}"))?;
    let logs: Vec<Value> = serde_json::from_slice(&r).map_err(|_| "Error! Invalid logs answer".to_owned())?;
    Ok(Reply::Rows(logs))
}

/// A `0x` address of 40 hex digits, lower-cased; Etherscan's error otherwise.
fn address(a: Option<&str>) -> Result<String, String> {
    let a = a.unwrap_or("").to_ascii_lowercase();
    let ok = a.len() == 42 && a.starts_with("0x") && a.bytes().skip(2).all(|b| b.is_ascii_hexdigit());
    ok.then_some(a)
        .ok_or_else(|| "Error! Invalid address format".to_owned())
}

/// An address `address` accepted, as bytes.
fn raw_address(a: &str) -> Vec<u8> {
    unhex::<20>(a).map(|b| b.to_vec()).unwrap_or_default()
}

/// A 32-byte big-endian amount in decimal.
fn decimal(b: &[u8]) -> String {
    <[u8; 32]>::try_from(b)
        .map(|w| U256::from_be_bytes(w).to_string())
        .unwrap_or_default()
}

/// A hex quantity (or a 32-byte word) in decimal; "0" when unreadable.
fn decimal_hex(h: &str) -> String {
    let h = if h == "0x" { "0x0" } else { h };
    amount(h).map(|v| v.to_string()).unwrap_or_else(|| "0".into())
}

impl Index {
    /// The last block indexed for `network`, if any.
    pub fn indexed(&self, network: &str) -> Option<u64> {
        let (_, p) = self.networks.iter().find(|(n, _)| n == network)?;
        let n = p.indexed.load(Ordering::Relaxed);
        (n != u64::MAX).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_their_errors() {
        let q = Params::parse("module=account&action=balancemulti&address=0xAa%2C0xbb&page=2");
        assert_eq!(q.get("address"), Some("0xAa,0xbb"));
        assert_eq!(q.number("page", 1), Ok(2));
        assert_eq!(q.number("offset", 7), Ok(7));
        assert!(q.number("module", 1).is_err());
        assert_eq!(
            address(Some("0xAB00000000000000000000000000000000000001")).unwrap(),
            "0xab00000000000000000000000000000000000001"
        );
        assert_eq!(address(Some("0x12")), Err("Error! Invalid address format".into()));
        assert_eq!(raw_address("0xab00000000000000000000000000000000000001")[0], 0xab);
        assert_eq!(decimal_hex("0x0de0b6b3a7640000"), "1000000000000000000");
        assert_eq!(decimal_hex("0x"), "0");
        let mut w = [0u8; 32];
        w[31] = 200;
        assert_eq!(decimal(&w), "200");
    }
}
