//! JSON objects read the way the nodes' Go code reads them into a struct (`encoding/json`):
//! each key fills the field it names exactly or, failing that, case-insensitively, and a later
//! key overwrites an earlier one. kengate must agree with the node on what an object says
//! before it rewrites or answers it (`{"toBLock": "pending"}` is a `toBlock` to the node).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The fields of the nodes' log filter object (`filters.FilterCriteria`).
pub const FILTER_CRITERIA: &[&str] = &["blockHash", "fromBlock", "toBlock", "address", "topics"];

/// The object in `text` with every key that names one of `fields` (as Go matches it) under
/// that field's spelling, later keys winning; other keys as sent. `None` if `text` is not a
/// JSON object.
pub fn go_object(text: &str, fields: &[&'static str]) -> Option<Map<String, Value>> {
    let Ordered(entries) = serde_json::from_str(text).ok()?;
    let mut out = Map::new();
    for (key, value) in entries {
        let field = fields
            .iter()
            .find(|f| **f == key)
            .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(&key)));
        match field {
            Some(f) => out.insert((*f).to_owned(), value),
            None => out.insert(key, value),
        };
    }
    Some(out)
}

/// `v[key] = value` without indexing's panic: a member of an object set, a `null` made an
/// object first (as indexing does); any other value is left as it is.
pub fn set_member(v: &mut Value, key: &str, value: Value) {
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    if let Value::Object(m) = v {
        m.insert(key.to_owned(), value);
    }
}

/// An object's members in the order they were sent (serde_json's `Map` sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILTER: &[&str] = FILTER_CRITERIA;

    #[test]
    fn keys_match_like_go() {
        let o = go_object(r#"{"toBLock":"pending","Address":"0x01","extra":1}"#, FILTER).unwrap();
        assert_eq!(o["toBlock"], "pending");
        assert_eq!(o["address"], "0x01");
        assert_eq!(o["extra"], 1);
        assert!(!o.contains_key("toBLock"));
        // the later key wins, whatever its spelling
        let o = go_object(r#"{"toBlock":"0x1","TOBLOCK":"0x2"}"#, FILTER).unwrap();
        assert_eq!(o["toBlock"], "0x2");
        let o = go_object(r#"{"TOBLOCK":"0x2","toBlock":"0x1"}"#, FILTER).unwrap();
        assert_eq!(o["toBlock"], "0x1");
        assert!(go_object("[1]", FILTER).is_none());
        assert!(go_object("nope", FILTER).is_none());
    }
}
