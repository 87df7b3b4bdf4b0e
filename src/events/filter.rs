//! Log filter criteria as `getLogs` / `logs` subscriptions take them (`address`: one or
//! many; `topics`: positional, `null` wildcards, OR-lists; optional numeric `fromBlock` /
//! `toBlock` bounds for polling filters), and the logs of one block, parsed once.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::jsonrpc::unhex;
use crate::jsonrpc::{go_object, parse_quantity, FILTER_CRITERIA};
use crate::methods::Dialect;

/// One log of a block: its JSON as the node sent it, and what filters match on.
#[derive(Debug, Clone)]
pub struct Log {
    /// The log object, verbatim.
    pub raw: Bytes,
    address: [u8; 20],
    topics: Vec<[u8; 32]>,
}

/// Parses a `getLogs` result (an array of log objects). Logs that cannot be read are kept
/// out (the node's own output; never expected).
pub fn parse_logs(result: &[u8]) -> Result<Vec<Log>, String> {
    #[derive(Deserialize)]
    struct Fields<'a> {
        #[serde(borrow)]
        address: &'a str,
        #[serde(default, borrow)]
        topics: Vec<&'a str>,
    }
    let items: Vec<&RawValue> = serde_json::from_slice(result).map_err(|e| format!("logs are not an array: {e}"))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let f: Fields<'_> = serde_json::from_str(item.get()).map_err(|e| format!("a log object: {e}"))?;
        let address = unhex(&f.address.to_ascii_lowercase()).ok_or("a log address")?;
        let topics = f
            .topics
            .iter()
            .map(|t| unhex(&t.to_ascii_lowercase()).ok_or("a log topic"))
            .collect::<Result<Vec<[u8; 32]>, _>>()?;
        out.push(Log {
            raw: Bytes::copy_from_slice(item.get().as_bytes()),
            address,
            topics,
        });
    }
    Ok(out)
}

/// What a log filter selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criteria {
    /// Any of these addresses (empty: any).
    addresses: Vec<[u8; 20]>,
    /// Per position: any of these topics (empty: wildcard).
    topics: Vec<Vec<[u8; 32]>>,
    /// Bounds (`latest` and `pending` are open-ended here: changes only ever come from new
    /// blocks; the node's rules on combining them are `check`'s).
    from: Bound,
    to: Bound,
}

/// A filter bound as the node reads it (`earliest` is block 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Bound {
    /// `latest`, `null` or omitted.
    #[default]
    Latest,
    /// `pending`.
    Pending,
    /// A block number.
    At(u64),
}

impl Criteria {
    /// Reads a filter object; the error is the node's (Klaytn v1.12.1's and Kaia v2.2.1's
    /// `FilterCriteria`, whose keys match case-insensitively, as Go's do).
    pub fn parse(text: &str) -> Result<Criteria, String> {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())?;
        let obj = &go_object(text, FILTER_CRITERIA)
            .ok_or("json: cannot unmarshal non-object into Go value of type filters.input")?;
        let mut c = Criteria {
            from: block_number(obj.get("fromBlock"))?,
            to: block_number(obj.get("toBlock"))?,
            ..Criteria::default()
        };
        let given = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
        if given("blockHash") && (given("fromBlock") || given("toBlock")) {
            return Err("cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other".into());
        }
        match obj.get("address") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => c
                .addresses
                .push(decode(s).map_err(|e| format!("invalid address: {e}"))?),
            Some(Value::Array(a)) => {
                for (i, x) in a.iter().enumerate() {
                    let s = x.as_str().ok_or_else(|| format!("non-string address at index {i}"))?;
                    c.addresses
                        .push(decode(s).map_err(|e| format!("invalid address at index {i}: {e}"))?);
                }
            }
            Some(_) => return Err("invalid addresses in query".into()),
        }
        match obj.get("topics") {
            None | Some(Value::Null) => {}
            Some(Value::Array(positions)) => {
                for p in positions {
                    c.topics.push(match p {
                        Value::Null => Vec::new(),
                        Value::String(s) => vec![decode(s)?],
                        Value::Array(any) => {
                            let mut v = Vec::new();
                            for t in any {
                                match t {
                                    // A null inside an OR-list matches anything.
                                    Value::Null => {
                                        v.clear();
                                        break;
                                    }
                                    Value::String(s) => v.push(decode(s)?),
                                    _ => return Err("invalid topic(s)".into()),
                                }
                            }
                            v
                        }
                        _ => return Err("invalid topic(s)".into()),
                    });
                }
            }
            Some(_) => return Err("invalid topic(s)".into()),
        }
        Ok(c)
    }

    /// The node's rules for a filter's or a `logs` subscription's bounds, checked after the
    /// object was read (the node's event system refuses with these words, code -32000):
    /// Kaia v2 takes no `pending` bound at all; Klaytn v1.12 takes `pending` only as `toBlock`
    /// after `latest` or a number, or as both.
    pub fn check(&self, dialect: Dialect) -> Result<(), &'static str> {
        use Bound::{At, Latest, Pending};
        if dialect == Dialect::Kaia && (self.from == Pending || self.to == Pending) {
            return Err("pending logs are not supported");
        }
        match (self.from, self.to) {
            (Latest, Latest) | (Pending, Pending) | (At(_), Latest) | (Latest | At(_), Pending) => Ok(()),
            (At(f), At(t)) if t >= f => Ok(()),
            _ => Err("invalid from and to block combination: from > to"),
        }
    }

    /// Whether a log of block `number` matches.
    pub fn matches(&self, number: u64, log: &Log) -> bool {
        if matches!(self.from, Bound::At(f) if number < f) || matches!(self.to, Bound::At(t) if number > t) {
            return false;
        }
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        self.topics
            .iter()
            .enumerate()
            .all(|(i, any)| any.is_empty() || log.topics.get(i).is_some_and(|t| any.contains(t)))
    }
}

/// `hexutil.Decode` into exactly `N` bytes, with the node's error texts.
fn decode<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(|| {
        if s.is_empty() {
            "empty hex string"
        } else {
            "hex string without 0x prefix"
        }
        .to_owned()
    })?;
    if digits.len() % 2 == 1 {
        return Err("hex string of odd length".into());
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("invalid hex string".into());
    }
    if digits.len() != 2 * N {
        return Err(format!("hex has invalid length {} after decoding", digits.len() / 2));
    }
    unhex(&format!("0x{}", digits.to_ascii_lowercase())).ok_or_else(|| "invalid hex string".into())
}

/// `rpc.BlockNumber` as a filter bound: a JSON integer, a tag (`earliest` is 0) or a strict
/// hex quantity; otherwise the node's error.
fn block_number(v: Option<&Value>) -> Result<Bound, String> {
    let s = match v {
        None | Some(Value::Null) => return Ok(Bound::Latest),
        Some(Value::Number(n)) => {
            return n
                .as_u64()
                .map(Bound::At)
                .ok_or_else(|| "hex string without 0x prefix".into())
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("hex string without 0x prefix".into()),
    };
    match s {
        "latest" => return Ok(Bound::Latest),
        "pending" => return Ok(Bound::Pending),
        "earliest" => return Ok(Bound::At(0)),
        _ => {}
    }
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or("hex string without 0x prefix")?;
    if digits.is_empty() {
        return Err("hex string \"0x\"".into());
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err("hex number with leading zero digits".into());
    }
    if digits.len() > 16 {
        return Err("hex number > 64 bits".into());
    }
    let n = parse_quantity(s).ok_or("invalid hex string")?;
    if n > i64::MAX as u64 {
        return Err("Blocknumber too high".into());
    }
    Ok(Bound::At(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(addr: u8, topics: &[u8]) -> String {
        let t: Vec<String> = topics
            .iter()
            .map(|b| format!("\"0x{}\"", format!("{b:02x}").repeat(32)))
            .collect();
        format!(
            r#"{{"address":"0x{}","topics":[{}],"data":"0x","logIndex":"0x0"}}"#,
            format!("{addr:02x}").repeat(20),
            t.join(",")
        )
    }

    fn check(crit: &str, logs: &[(u8, &[u8])], want: &[bool]) {
        let c = Criteria::parse(crit).unwrap();
        let body = format!(
            "[{}]",
            logs.iter().map(|(a, t)| log(*a, t)).collect::<Vec<_>>().join(",")
        );
        let parsed = parse_logs(body.as_bytes()).unwrap();
        let got: Vec<bool> = parsed.iter().map(|l| c.matches(10, l)).collect();
        assert_eq!(got, want, "{crit}");
    }

    #[test]
    fn addresses_and_positional_topics() {
        let a = format!("0x{}", "aa".repeat(20));
        let b = format!("0x{}", "bb".repeat(20));
        let t1 = format!("0x{}", "01".repeat(32));
        let t2 = format!("0x{}", "02".repeat(32));
        let logs: &[(u8, &[u8])] = &[(0xaa, &[1, 2]), (0xbb, &[2]), (0xcc, &[1])];
        check("{}", logs, &[true, true, true]);
        check(&format!(r#"{{"address":"{a}"}}"#), logs, &[true, false, false]);
        check(&format!(r#"{{"address":["{a}","{b}"]}}"#), logs, &[true, true, false]);
        check(&format!(r#"{{"topics":["{t1}"]}}"#), logs, &[true, false, true]);
        check(&format!(r#"{{"topics":[null,"{t2}"]}}"#), logs, &[true, false, false]);
        check(&format!(r#"{{"topics":[["{t1}","{t2}"]]}}"#), logs, &[true, true, true]);
        check(
            &format!(r#"{{"address":"{b}","topics":[["{t1}","{t2}"]]}}"#),
            logs,
            &[false, true, false],
        );
        let err = |s: &str| Criteria::parse(s).unwrap_err();
        assert_eq!(
            err(r#"{"address":"0x12"}"#),
            "invalid address: hex has invalid length 1 after decoding"
        );
        assert_eq!(
            err(r#"{"address":["0x1"]}"#),
            "invalid address at index 0: hex string of odd length"
        );
        assert_eq!(err(r#"{"topics":[5]}"#), "invalid topic(s)");
        assert_eq!(err(r#"{"fromBlock":"1234"}"#), "hex string without 0x prefix");
        assert_eq!(err(r#"{"toBlock":"0x01"}"#), "hex number with leading zero digits");
        assert_eq!(
            err(r#"{"fromBlock":"0x1","blockHash":"0x00"}"#),
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        );
        assert!(Criteria::parse("[1]").is_err());
        assert_eq!(
            Criteria::parse(r#"{"fromBlock":"latest","toBlock":"earliest"}"#)
                .unwrap()
                .to,
            Bound::At(0)
        );
        // keys as Go matches them
        assert_eq!(
            err(r#"{"Address":"0x12"}"#),
            "invalid address: hex has invalid length 1 after decoding"
        );
        assert_eq!(Criteria::parse(r#"{"toBLock":"pending"}"#).unwrap().to, Bound::Pending);
        let c = Criteria::parse(r#"{"fromBlock":"0x5","toBlock":7}"#).unwrap();
        let l = &parse_logs(format!("[{}]", log(1, &[])).as_bytes()).unwrap()[0];
        assert!(!c.matches(4, l) && c.matches(5, l) && c.matches(7, l) && !c.matches(8, l));
    }

    #[test]
    fn bounds_follow_each_nodes_rules() {
        use Dialect::{Kaia, Klaytn};
        let check = |crit: &str, d: Dialect| Criteria::parse(crit).unwrap().check(d);
        let combo = Err("invalid from and to block combination: from > to");
        for d in [Klaytn, Kaia] {
            assert_eq!(check("{}", d), Ok(()));
            assert_eq!(check(r#"{"fromBlock":"0x1","toBlock":"0x2"}"#, d), Ok(()));
            assert_eq!(check(r#"{"fromBlock":"0x1"}"#, d), Ok(()));
            assert_eq!(check(r#"{"fromBlock":"0x3","toBlock":"0x2"}"#, d), combo);
            // from latest to a number: the node refuses it (latest is -1 to it)
            assert_eq!(check(r#"{"toBlock":"0x2"}"#, d), combo);
            assert_eq!(check(r#"{"fromBlock":"latest","toBlock":"earliest"}"#, d), combo);
        }
        let pending = Err("pending logs are not supported");
        assert_eq!(check(r#"{"fromBlock":"pending"}"#, Kaia), pending);
        assert_eq!(check(r#"{"toBlock":"pending"}"#, Kaia), pending);
        assert_eq!(check(r#"{"toBLock":"pending"}"#, Kaia), pending);
        assert_eq!(check(r#"{"fromBlock":"pending"}"#, Klaytn), combo);
        assert_eq!(check(r#"{"toBlock":"pending"}"#, Klaytn), Ok(()));
        assert_eq!(check(r#"{"fromBlock":"0x1","toBlock":"pending"}"#, Klaytn), Ok(()));
        assert_eq!(check(r#"{"fromBlock":"pending","toBlock":"pending"}"#, Klaytn), Ok(()));
    }
}
