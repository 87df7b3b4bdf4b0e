//! Block parameters: reading a tag / number / hash and rewriting `latest` (and its
//! synonyms, and an omitted optional argument) to the served head.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::jsonrpc::{format_quantity, parse_quantity};
use crate::methods::BlockKind;
use crate::txpath::lifecycle::unhex;

/// Errors routing reports to the client.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RouteError {
    /// A param kengate must read is malformed.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// No node has been in sync yet, so there is no served head to read at.
    #[error("no node is in sync yet")]
    NotReady,
}

/// What a block parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRef {
    /// `latest`, `safe`, `finalized` (immediate finality makes them one), or omitted.
    Latest,
    /// `pending`: the txpool's view.
    Pending,
    /// `earliest`: genesis.
    Earliest,
    /// An explicit block number.
    Number(u64),
    /// A block hash (where the method also takes hashes).
    Hash,
}

impl BlockRef {
    /// Reads a tag or number from a JSON string's contents.
    fn from_str(s: &str, kind: BlockKind) -> Option<Self> {
        Some(match s {
            "latest" | "safe" | "finalized" => BlockRef::Latest,
            "pending" => BlockRef::Pending,
            "earliest" => BlockRef::Earliest,
            _ if kind == BlockKind::NumberOrHash && s.len() == 66 && s.starts_with("0x") => BlockRef::Hash,
            _ => BlockRef::Number(parse_quantity(s)?),
        })
    }
}

/// A block parameter read from the wire, with its rewrite if it needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockParam {
    /// What it asks for (after rewriting, `Latest` has become `Number(served)`).
    pub block: BlockRef,
    /// The JSON to send instead of the client's, when rewritten.
    pub rewritten: Option<String>,
}

/// Reads one block parameter and rewrites `Latest` to `served`.
pub fn block_param(raw: &RawValue, kind: BlockKind, served: u64) -> Result<BlockParam, RouteError> {
    let text = raw.get();
    let bad = || RouteError::InvalidParams(format!("invalid block parameter {text}"));
    if text.starts_with('"') {
        let s: &str = serde_json::from_str(text).map_err(|_| bad())?;
        let block = BlockRef::from_str(s, kind).ok_or_else(bad)?;
        return Ok(latest_to(block, served));
    }
    if kind == BlockKind::NumberOrHash && text.starts_with('{') {
        // {"blockNumber": tag|number} or {"blockHash": hash, "requireCanonical": bool}
        let mut obj: Map<String, Value> = serde_json::from_str(text).map_err(|_| bad())?;
        if obj.contains_key("blockHash") {
            return Ok(BlockParam {
                block: BlockRef::Hash,
                rewritten: None,
            });
        }
        let Some(Value::String(s)) = obj.get("blockNumber") else {
            return Err(bad());
        };
        let block = BlockRef::from_str(s, BlockKind::Number).ok_or_else(bad)?;
        let p = latest_to(block, served);
        if p.rewritten.is_some() {
            obj.insert("blockNumber".into(), Value::String(format!("{served:#x}")));
            return Ok(BlockParam {
                block: p.block,
                rewritten: Some(Value::Object(obj).to_string()),
            });
        }
        return Ok(p);
    }
    Err(bad())
}

fn latest_to(block: BlockRef, served: u64) -> BlockParam {
    match block {
        BlockRef::Latest => BlockParam {
            block: BlockRef::Number(served),
            rewritten: Some(format_quantity(served)),
        },
        other => BlockParam {
            block: other,
            rewritten: None,
        },
    }
}

/// Reads a param that is an account address (`"0x"` + 40 hex digits, any case).
pub fn parse_address(raw: &RawValue) -> Option<[u8; 20]> {
    unhex(serde_json::from_str::<&str>(raw.get()).ok()?)
}

/// The range a `getLogs` filter object covers, and the object to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsRange {
    /// Highest block the range needs (None when it ends at `pending`).
    pub needs: Option<u64>,
    /// `blockHash` filter: height unknown.
    pub by_hash: bool,
    /// The rewritten filter object, when anything changed.
    pub rewritten: Option<String>,
}

/// Rewrites a `getLogs` filter: `latest` bounds (and omitted ones, which mean `latest`)
/// become the served head, so every node answers over the same range.
pub fn logs_range(raw: &RawValue, served: u64) -> Result<LogsRange, RouteError> {
    let mut obj: Map<String, Value> = serde_json::from_str(raw.get())
        .map_err(|_| RouteError::InvalidParams("getLogs expects a filter object".into()))?;
    if obj.contains_key("blockHash") {
        return Ok(LogsRange {
            needs: None,
            by_hash: true,
            rewritten: None,
        });
    }
    let mut needs = Some(0u64);
    let mut changed = false;
    for key in ["fromBlock", "toBlock"] {
        let block = match obj.get(key) {
            None | Some(Value::Null) => BlockRef::Latest,
            Some(Value::String(s)) => BlockRef::from_str(s, BlockKind::Number)
                .ok_or_else(|| RouteError::InvalidParams(format!("invalid {key} {s:?}")))?,
            Some(other) => return Err(RouteError::InvalidParams(format!("invalid {key} {other}"))),
        };
        match block {
            BlockRef::Latest => {
                obj.insert(key.into(), Value::String(format!("{served:#x}")));
                changed = true;
                needs = needs.map(|n| n.max(served));
            }
            BlockRef::Number(n) => needs = needs.map(|m| m.max(n)),
            BlockRef::Pending => needs = None,
            BlockRef::Earliest | BlockRef::Hash => {}
        }
    }
    Ok(LogsRange {
        needs,
        by_hash: false,
        rewritten: changed.then(|| Value::Object(obj).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockKind::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn check(input: &str, kind: BlockKind, want: Result<(BlockRef, Option<&str>), ()>) {
        let got = block_param(&raw(input), kind, 0x64);
        match want {
            Ok((block, rewritten)) => {
                let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(got.block, block, "{input}");
                assert_eq!(got.rewritten.as_deref(), rewritten, "{input}");
            }
            Err(()) => assert!(got.is_err(), "{input} should be refused"),
        }
    }

    #[test]
    fn block_params() {
        let hash = "\"0x1111111111111111111111111111111111111111111111111111111111111111\"";
        check("\"latest\"", Number, Ok((BlockRef::Number(100), Some("\"0x64\""))));
        check("\"safe\"", Number, Ok((BlockRef::Number(100), Some("\"0x64\""))));
        check(
            "\"finalized\"",
            NumberOrHash,
            Ok((BlockRef::Number(100), Some("\"0x64\""))),
        );
        check("\"pending\"", Number, Ok((BlockRef::Pending, None)));
        check("\"earliest\"", Number, Ok((BlockRef::Earliest, None)));
        check("\"0x10\"", Number, Ok((BlockRef::Number(16), None)));
        check(hash, NumberOrHash, Ok((BlockRef::Hash, None)));
        check(hash, Number, Err(()));
        check("\"0xzz\"", Number, Err(()));
        check("16", Number, Err(()));
        check(
            "{\"blockNumber\":\"0x5\"}",
            NumberOrHash,
            Ok((BlockRef::Number(5), None)),
        );
        check(
            "{\"blockHash\":\"0xab\",\"requireCanonical\":true}",
            NumberOrHash,
            Ok((BlockRef::Hash, None)),
        );
        check("{\"blockNumber\":\"0x5\"}", Number, Err(()));
        check("{\"nope\":1}", NumberOrHash, Err(()));
        let p = block_param(
            &raw("{\"blockNumber\":\"latest\",\"requireCanonical\":false}"),
            NumberOrHash,
            100,
        )
        .unwrap();
        let v: Value = serde_json::from_str(p.rewritten.as_deref().unwrap()).unwrap();
        assert_eq!(v["blockNumber"], "0x64");
        assert_eq!(v["requireCanonical"], false);
    }

    #[test]
    fn addresses() {
        let a = parse_address(&raw("\"0x00000000000000000000000000000000000000Ab\"")).unwrap();
        assert_eq!(a[19], 0xab);
        assert!(parse_address(&raw("\"0xab\"")).is_none());
        assert!(parse_address(&raw("\"0x000000000000000000000000000000000000zzab\"")).is_none());
        assert!(parse_address(&raw("\"0x0000000000000000000000000000000000000+ab\"")).is_none());
        assert!(parse_address(&raw("5")).is_none());
    }

    #[test]
    fn logs_ranges() {
        let r = logs_range(&raw("{\"address\":\"0x01\"}"), 100).unwrap();
        assert_eq!(r.needs, Some(100));
        let v: Value = serde_json::from_str(r.rewritten.as_deref().unwrap()).unwrap();
        assert_eq!(
            (v["fromBlock"].as_str(), v["toBlock"].as_str()),
            (Some("0x64"), Some("0x64"))
        );
        assert_eq!(v["address"], "0x01");

        let r = logs_range(&raw("{\"fromBlock\":\"0x1\",\"toBlock\":\"0x70\"}"), 100).unwrap();
        assert_eq!((r.needs, r.rewritten), (Some(0x70), None));
        let r = logs_range(&raw("{\"fromBlock\":\"earliest\",\"toBlock\":\"pending\"}"), 100).unwrap();
        assert_eq!(r.needs, None);
        let r = logs_range(&raw("{\"blockHash\":\"0x01\"}"), 100).unwrap();
        assert!(r.by_hash);
        assert!(logs_range(&raw("[1]"), 100).is_err());
        assert!(logs_range(&raw("{\"toBlock\":7}"), 100).is_err());
        assert!(logs_range(&raw("{\"toBlock\":\"soon\"}"), 100).is_err());
    }
}
