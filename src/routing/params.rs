//! Block parameters: reading a tag / number / hash and rewriting `latest` (and its
//! synonyms, and an omitted optional argument) to the served head.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::jsonrpc::{format_quantity, go_object, parse_quantity, FILTER_CRITERIA};
use crate::jsonrpc::{json_str, unhex};
use crate::methods::BlockKind;

/// Errors routing reports to the client. Only kengate's own methods have params kengate
/// validates; a node method whose params kengate cannot read is forwarded as sent, and the
/// node's answer (its own error) is returned.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RouteError {
    /// A param of one of kengate's own methods is malformed.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// No node has been in sync yet, so there is no served head to read at.
    #[error("no node is in sync yet")]
    NotReady,
}

/// What a block parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRef {
    /// `latest`, or omitted where the node reads an omitted block as the current one.
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

/// The largest block number the node accepts (`rpc.BlockNumber` is an int64).
const MAX_BLOCK: u64 = i64::MAX as u64;

impl BlockRef {
    /// Reads a JSON string's contents as Klaytn v1.12.1's `rpc.BlockNumber` does: the three
    /// tags or a strict hex quantity. `safe` and `finalized` are not tags there (the node
    /// refuses them), so they are not read as `latest` either.
    fn from_str(s: &str, kind: BlockKind) -> Option<Self> {
        Some(match s {
            "latest" => BlockRef::Latest,
            "pending" => BlockRef::Pending,
            "earliest" => BlockRef::Earliest,
            _ if kind == BlockKind::NumberOrHash && s.len() == 66 => BlockRef::Hash,
            _ => BlockRef::Number(strict_quantity(s)?),
        })
    }

    /// Reads a block number param in any form the node accepts: a JSON integer or a string.
    fn from_json(text: &str, kind: BlockKind) -> Option<Self> {
        if text.starts_with('"') {
            let s = json_str(text)?;
            return BlockRef::from_str(s, kind);
        }
        // A JSON integer is read as a decimal block number.
        let n: u64 = serde_json::from_str(text).ok()?;
        (n <= MAX_BLOCK).then_some(BlockRef::Number(n))
    }
}

/// `hexutil.DecodeUint64`: `0x` + 1..16 hex digits, no leading zero.
fn strict_quantity(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    parse_quantity(s).filter(|&n| n <= MAX_BLOCK)
}

/// A block parameter read from the wire, with its rewrite if it needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockParam {
    /// What it asks for (after rewriting, `Latest` has become `Number(served)`).
    pub block: BlockRef,
    /// The JSON to send instead of the client's, when rewritten.
    pub rewritten: Option<String>,
}

/// Reads one block parameter and rewrites `latest` to `served`. `None` when the node would
/// not accept it either: the call is then forwarded as sent, for the node to say why.
pub fn block_param(text: &str, kind: BlockKind, served: u64) -> Option<BlockParam> {
    if kind == BlockKind::NumberOrHash && text.starts_with('{') {
        // {"blockNumber": tag|number} or {"blockHash": hash, "requireCanonical": bool}
        let mut obj: Map<String, Value> = serde_json::from_str(text).ok()?;
        let number = obj.get("blockNumber");
        return match (obj.contains_key("blockHash"), number) {
            (true, None) => Some(BlockParam {
                block: BlockRef::Hash,
                rewritten: None,
            }),
            (false, Some(n)) => {
                let block = BlockRef::from_json(&n.to_string(), BlockKind::Number)?;
                let p = latest_to(block, served);
                if p.rewritten.is_some() {
                    obj.insert("blockNumber".into(), Value::String(format!("{served:#x}")));
                    return Some(BlockParam {
                        block: p.block,
                        rewritten: Some(Value::Object(obj).to_string()),
                    });
                }
                Some(p)
            }
            // Both, or neither: the node refuses it.
            _ => None,
        };
    }
    Some(latest_to(BlockRef::from_json(text, kind)?, served))
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
pub fn parse_address(raw: &str) -> Option<[u8; 20]> {
    unhex(json_str(raw)?)
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

/// Rewrites a `getLogs` filter: `latest` bounds (and omitted ones, which the node reads as
/// `latest`) become the served head, so every node answers over the same range. `None` when
/// the node would refuse the object: it is then forwarded as sent.
pub fn logs_range(raw: &str, served: u64) -> Option<LogsRange> {
    // Keys as the node reads them: `{"ToBlock": …}` is its `toBlock`.
    let mut obj: Map<String, Value> = go_object(raw, FILTER_CRITERIA)?;
    if obj.contains_key("blockHash") {
        return Some(LogsRange {
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
            Some(v) => BlockRef::from_json(&v.to_string(), BlockKind::Number)?,
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
    Some(LogsRange {
        needs,
        by_hash: false,
        rewritten: changed.then(|| Value::Object(obj).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockKind::*;

    fn check(input: &str, kind: BlockKind, want: Option<(BlockRef, Option<&str>)>) {
        let got = block_param(input, kind, 0x64);
        match want {
            Some((block, rewritten)) => {
                let got = got.unwrap_or_else(|| panic!("{input} should be read"));
                assert_eq!(got.block, block, "{input}");
                assert_eq!(got.rewritten.as_deref(), rewritten, "{input}");
            }
            None => assert_eq!(got, None, "{input} should be left to the node"),
        }
    }

    #[test]
    fn block_params() {
        let hash = "\"0x1111111111111111111111111111111111111111111111111111111111111111\"";
        check("\"latest\"", Number, Some((BlockRef::Number(100), Some("\"0x64\""))));
        check("\"pending\"", Number, Some((BlockRef::Pending, None)));
        check("\"earliest\"", Number, Some((BlockRef::Earliest, None)));
        check("\"0x10\"", Number, Some((BlockRef::Number(16), None)));
        check("\"0X10\"", Number, Some((BlockRef::Number(16), None)));
        check("\"0x0\"", Number, Some((BlockRef::Number(0), None)));
        // A JSON integer is a decimal block number to the node.
        check("16", Number, Some((BlockRef::Number(16), None)));
        check("16", NumberOrHash, Some((BlockRef::Number(16), None)));
        check(hash, NumberOrHash, Some((BlockRef::Hash, None)));
        // What the node refuses is left to it: never rewritten, never refused by kengate.
        check("\"safe\"", Number, None);
        check("\"finalized\"", NumberOrHash, None);
        check(hash, Number, None);
        check("\"0xzz\"", Number, None);
        check("\"0x01\"", Number, None);
        check("\"0x\"", Number, None);
        check("\"10\"", Number, None);
        check("\"0x8000000000000000\"", Number, None);
        check("-1", Number, None);
        check("1.5", Number, None);
        check("null", Number, None);
        check("[1]", NumberOrHash, None);
        check(
            "{\"blockNumber\":\"0x5\"}",
            NumberOrHash,
            Some((BlockRef::Number(5), None)),
        );
        check("{\"blockNumber\":5}", NumberOrHash, Some((BlockRef::Number(5), None)));
        check(
            "{\"blockHash\":\"0xab\",\"requireCanonical\":true}",
            NumberOrHash,
            Some((BlockRef::Hash, None)),
        );
        check("{\"blockNumber\":\"0x5\"}", Number, None);
        check("{\"nope\":1}", NumberOrHash, None);
        check("{\"blockNumber\":\"0x5\",\"blockHash\":\"0xab\"}", NumberOrHash, None);
        let p = block_param(
            "{\"blockNumber\":\"latest\",\"requireCanonical\":false}",
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
        let a = parse_address("\"0x00000000000000000000000000000000000000Ab\"").unwrap();
        assert_eq!(a[19], 0xab);
        assert!(parse_address("\"0xab\"").is_none());
        assert!(parse_address("\"0x000000000000000000000000000000000000zzab\"").is_none());
        assert!(parse_address("\"0x0000000000000000000000000000000000000+ab\"").is_none());
        assert!(parse_address("5").is_none());
    }

    #[test]
    fn logs_ranges() {
        let r = logs_range("{\"address\":\"0x01\"}", 100).unwrap();
        assert_eq!(r.needs, Some(100));
        let v: Value = serde_json::from_str(r.rewritten.as_deref().unwrap()).unwrap();
        assert_eq!(
            (v["fromBlock"].as_str(), v["toBlock"].as_str()),
            (Some("0x64"), Some("0x64"))
        );
        assert_eq!(v["address"], "0x01");

        let r = logs_range("{\"fromBlock\":\"0x1\",\"toBlock\":\"0x70\"}", 100).unwrap();
        assert_eq!((r.needs, r.rewritten), (Some(0x70), None));
        let r = logs_range("{\"fromBlock\":\"earliest\",\"toBlock\":\"pending\"}", 100).unwrap();
        assert_eq!(r.needs, None);
        let r = logs_range("{\"blockHash\":\"0x01\"}", 100).unwrap();
        assert!(r.by_hash);
        let r = logs_range("{\"fromBlock\":1,\"toBlock\":7}", 100).unwrap();
        assert_eq!((r.needs, r.rewritten), (Some(7), None));
        assert!(logs_range("[1]", 100).is_none());
        assert!(logs_range("{\"toBlock\":\"soon\"}", 100).is_none());
        assert!(logs_range("{\"toBlock\":\"safe\"}", 100).is_none());
        // keys spelled in another case are the node's fields too
        let r = logs_range("{\"toBLock\":\"pending\"}", 100).unwrap();
        assert_eq!(r.needs, None);
        let r = logs_range("{\"fromBlock\":\"0x1\",\"ToBlock\":\"0x2\"}", 100).unwrap();
        assert_eq!((r.needs, r.rewritten), (Some(2), None));
        let r = logs_range("{\"BlockHash\":\"0x01\"}", 100).unwrap();
        assert!(r.by_hash);
    }
}
