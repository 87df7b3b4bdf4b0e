//! What a webhook is: its type, its filter (read strictly from the API's JSON, every error
//! naming the field), its state, and the envelope its events travel in. Pure: no store, no
//! network.

use ruint::aliases::U256;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::events::filter::Criteria;
use crate::index::extract::amount;
use crate::jsonrpc::{hex_digits, set_member};
use crate::methods::Dialect;
use crate::store::TxStatus;
use crate::txpath::lifecycle::{hex, unhex};

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// KLAY and token transfers to or from an address.
    AddressActivity,
    /// Logs that match a `getLogs` filter.
    Log,
    /// Lifecycle changes of txs sent through kengate.
    TxStatus,
    /// Txs sent through kengate that failed: status 0, rejected or dropped.
    FailedTx,
    /// An address's KLAY or FT balance crossing a threshold.
    Balance,
    /// Every new block.
    NewBlock,
}

impl Kind {
    /// All of them, as the API names them.
    pub const ALL: [Kind; 6] = [
        Kind::AddressActivity,
        Kind::Log,
        Kind::TxStatus,
        Kind::FailedTx,
        Kind::Balance,
        Kind::NewBlock,
    ];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AddressActivity => "address_activity",
            Kind::Log => "log",
            Kind::TxStatus => "tx_status",
            Kind::FailedTx => "failed_tx",
            Kind::Balance => "balance_threshold",
            Kind::NewBlock => "new_block",
        }
    }

    /// From the API's name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Its events come from blocks (else from the transaction records).
    pub fn from_blocks(self) -> bool {
        !matches!(self, Kind::TxStatus | Kind::FailedTx)
    }
}

/// The transfer kinds an address-activity webhook can ask for.
pub const TRANSFER_KINDS: [&str; 5] = ["klay", "internal", "ft", "nft", "mt"];

/// A webhook's filter, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `address_activity`.
    Activity {
        /// The address watched.
        address: [u8; 20],
        /// Transfer kinds (all when empty).
        kinds: Vec<String>,
        /// Only these token contracts (KLAY is not filtered by it).
        contracts: Vec<[u8; 20]>,
    },
    /// `log`: the filter object as given, and what it selects.
    Log(Value, Criteria),
    /// `tx_status` and `failed_tx`: which txs (any of the given ones must match).
    Txs {
        /// One tx.
        hash: Option<String>,
        /// Its sender.
        sender: Option<String>,
        /// The access key it was sent with.
        key: Option<String>,
        /// Only these states (`tx_status`; all when empty).
        statuses: Vec<TxStatus>,
    },
    /// `balance_threshold`.
    Balance {
        /// Whose balance.
        address: [u8; 20],
        /// The FT contract (KLAY when `None`).
        token: Option<[u8; 20]>,
        /// The line crossed, in the smallest unit (peb, or the token's base unit).
        threshold: U256,
    },
    /// `new_block`.
    None,
}

/// Why a webhook's definition is refused (400, naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct Invalid {
    /// The offending field (`filter.address`, `url`, …).
    pub field: String,
    /// What is wrong with it.
    pub why: String,
}

pub(crate) fn invalid(field: &str, why: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        why: why.into(),
    }
}

fn address(v: &Value, field: &str) -> Result<[u8; 20], Invalid> {
    v.as_str()
        .and_then(|s| unhex::<20>(&s.to_ascii_lowercase()))
        .ok_or_else(|| invalid(field, "an address (0x and 40 hex digits)"))
}

fn addresses(v: &Value, field: &str) -> Result<Vec<[u8; 20]>, Invalid> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) if a.len() <= 100 => a
            .iter()
            .enumerate()
            .map(|(i, x)| address(x, &format!("{field}[{i}]")))
            .collect(),
        _ => Err(invalid(field, "a list of at most 100 addresses")),
    }
}

impl Filter {
    /// Reads `kind`'s filter object (`null` is `{}`).
    pub fn parse(kind: Kind, v: &Value, dialect: Dialect) -> Result<Filter, Invalid> {
        let empty = Map::new();
        let obj = match v {
            Value::Null => &empty,
            Value::Object(o) => o,
            _ => return Err(invalid("filter", "an object")),
        };
        let known: &[&str] = match kind {
            Kind::AddressActivity => &["address", "kinds", "contracts"],
            Kind::Log => &["address", "topics"],
            Kind::TxStatus => &["hash", "sender", "key", "statuses"],
            Kind::FailedTx => &["hash", "sender", "key"],
            Kind::Balance => &["address", "token", "threshold"],
            Kind::NewBlock => &[],
        };
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(
                &format!("filter.{k}"),
                format!("not a {} filter field (those are: {})", kind.as_str(), known.join(", ")),
            ));
        }
        let get = |k: &str| obj.get(k).unwrap_or(&Value::Null);
        match kind {
            Kind::AddressActivity => {
                let kinds = match get("kinds") {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|k| match k.as_str() {
                            Some(s) if TRANSFER_KINDS.contains(&s) => Ok(s.to_owned()),
                            _ => Err(invalid(
                                "filter.kinds",
                                format!("each one of {}", TRANSFER_KINDS.join(", ")),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(invalid("filter.kinds", "a list")),
                };
                Ok(Filter::Activity {
                    address: address(get("address"), "filter.address")?,
                    kinds,
                    contracts: addresses(get("contracts"), "filter.contracts")?,
                })
            }
            Kind::Log => {
                let text = v.to_string();
                let c = Criteria::parse(if v.is_null() { "{}" } else { &text }).map_err(|e| invalid("filter", e))?;
                c.check(dialect).map_err(|e| invalid("filter", e))?;
                Ok(Filter::Log(v.clone(), c))
            }
            Kind::TxStatus | Kind::FailedTx => {
                let hash = match get("hash") {
                    Value::Null => None,
                    h => Some(
                        h.as_str()
                            .and_then(|s| unhex::<32>(&s.to_ascii_lowercase()))
                            .map(|b| hex(&b))
                            .ok_or_else(|| invalid("filter.hash", "a tx hash (0x and 64 hex digits)"))?,
                    ),
                };
                let sender = match get("sender") {
                    Value::Null => None,
                    s => Some(hex(&address(s, "filter.sender")?)),
                };
                let key = match get("key") {
                    Value::Null => None,
                    Value::String(k) if !k.is_empty() && k.len() <= 128 => Some(k.clone()),
                    _ => return Err(invalid("filter.key", "an access key id")),
                };
                if hash.is_none() && sender.is_none() && key.is_none() {
                    return Err(invalid("filter", "give a hash, a sender or a key"));
                }
                let statuses = match get("statuses") {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|s| {
                            s.as_str()
                                .and_then(TxStatus::parse)
                                .filter(|s| *s != TxStatus::Created)
                                .ok_or_else(|| {
                                    invalid(
                                        "filter.statuses",
                                        "each one of Submitted, Pending, InBlock, Rejected, Dropped",
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(invalid("filter.statuses", "a list")),
                };
                Ok(Filter::Txs {
                    hash,
                    sender,
                    key,
                    statuses,
                })
            }
            Kind::Balance => {
                let threshold = match get("threshold") {
                    Value::String(s) => s.parse::<U256>().ok().or_else(|| amount(s)),
                    Value::Number(n) => n.as_u64().map(U256::from),
                    _ => None,
                }
                .ok_or_else(|| invalid("filter.threshold", "an amount in the smallest unit (a decimal string)"))?;
                let token = match get("token") {
                    Value::Null => None,
                    t => Some(address(t, "filter.token")?),
                };
                Ok(Filter::Balance {
                    address: address(get("address"), "filter.address")?,
                    token,
                    threshold,
                })
            }
            Kind::NewBlock => Ok(Filter::None),
        }
    }

    /// The filter as the API shows it.
    pub fn to_json(&self) -> Value {
        match self {
            Filter::Activity {
                address,
                kinds,
                contracts,
            } => json!({
                "address": hex(address),
                "kinds": kinds,
                "contracts": contracts.iter().map(|c| hex(c)).collect::<Vec<_>>(),
            }),
            Filter::Log(v, _) => match v {
                Value::Null => json!({}),
                v => v.clone(),
            },
            Filter::Txs {
                hash,
                sender,
                key,
                statuses,
            } => {
                let mut m = Map::new();
                if let Some(k) = key {
                    m.insert("key".into(), json!(k));
                }
                if let Some(h) = hash {
                    m.insert("hash".into(), json!(h));
                }
                if let Some(s) = sender {
                    m.insert("sender".into(), json!(s));
                }
                if !statuses.is_empty() {
                    m.insert(
                        "statuses".into(),
                        json!(statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
                    );
                }
                Value::Object(m)
            }
            Filter::Balance {
                address,
                token,
                threshold,
            } => {
                let mut v = json!({"address": hex(address), "threshold": threshold.to_string()});
                if let Some(t) = token {
                    set_member(&mut v, "token", json!(hex(t)));
                }
                v
            }
            Filter::None => json!({}),
        }
    }
}

/// Whether a webhook is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Events are delivered.
    Active,
    /// Its owner paused it: events are kept, not delivered.
    Paused,
    /// Paused by kengate after an event's retries ran out; resumable, with its backlog.
    Failing,
}

impl State {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Paused => "paused",
            State::Failing => "failing",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<State> {
        [State::Active, State::Paused, State::Failing]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// A webhook as stored (its `Debug` leaves the secret out).
#[derive(Clone, PartialEq, Eq)]
pub struct Hook {
    /// `wh_` + 24 hex digits.
    pub id: String,
    /// The access key that made it (`""`: the admin).
    pub owner: String,
    /// The network it watches.
    pub network: String,
    /// Where events are POSTed.
    pub url: String,
    /// What it is told about.
    pub kind: Kind,
    /// Which events of that kind.
    pub filter: Filter,
    /// The HMAC key its deliveries are signed with.
    pub secret: String,
    /// Free text.
    pub description: String,
    /// Delivered to or not.
    pub state: State,
    /// Why it is failing.
    pub reason: Option<String>,
    /// Block events are for blocks after this one (the served head when it was made).
    pub from_block: u64,
    /// Unix ms.
    pub created: u64,
    /// Unix ms.
    pub updated: u64,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("network", &self.network)
            .field("kind", &self.kind)
            .field("filter", &self.filter)
            .field("state", &self.state)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Hook {
    /// The hook as the API shows it (never its secret).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "network": self.network,
            "url": self.url,
            "type": self.kind.as_str(),
            "filter": self.filter.to_json(),
            "description": self.description,
            "state": self.state.as_str(),
            "reason": self.reason,
            "fromBlock": self.from_block,
            "createdAt": self.created,
            "updatedAt": self.updated,
        })
    }
}

/// One event ready for the outbox: its stable id, and the envelope's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_` + 32 hex digits, derived from the webhook and what happened, so that a block
    /// or a record read again makes the same id (and the outbox keeps one).
    pub id: String,
    /// The webhook.
    pub hook: String,
    /// The block it is about, if any.
    pub block: Option<u64>,
    /// The envelope `{id, webhookId, type, network, createdAt, blockNumber, event}`, exactly
    /// as it is POSTed (and signed).
    pub body: String,
}

impl Event {
    /// The envelope of `event` for `hook`, identified by `key` (what happened, unique per hook).
    pub fn new(hook: &Hook, key: &str, block: Option<u64>, created: u64, event: Value) -> Event {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\n{key}", hook.id).as_bytes());
        // The first 16 bytes of the 32-byte digest.
        let id = format!("evt_{}", hex_digits(digest.get(..16).unwrap_or_default()));
        let body = json!({
            "id": id,
            "webhookId": hook.id,
            "type": hook.kind.as_str(),
            "network": hook.network,
            "createdAt": created,
            "blockNumber": block,
            "event": event,
        })
        .to_string();
        Event {
            id,
            hook: hook.id.clone(),
            block,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: Kind, v: Value) -> Result<Filter, Invalid> {
        Filter::parse(kind, &v, Dialect::Klaytn)
    }

    #[test]
    fn filters_are_read_strictly_and_errors_name_the_field() {
        let a = format!("0x{}", "ab".repeat(20));
        let f = parse(Kind::AddressActivity, json!({"address": a, "kinds": ["ft"]})).unwrap();
        assert_eq!(f.to_json()["address"], json!(a));
        for (kind, v, field) in [
            (Kind::AddressActivity, json!({}), "filter.address"),
            (Kind::AddressActivity, json!({"address": "0x12"}), "filter.address"),
            (
                Kind::AddressActivity,
                json!({"address": a, "kinds": ["gold"]}),
                "filter.kinds",
            ),
            (Kind::AddressActivity, json!({"address": a, "color": 1}), "filter.color"),
            (
                Kind::AddressActivity,
                json!({"address": a, "contracts": ["x"]}),
                "filter.contracts[0]",
            ),
            (Kind::TxStatus, json!({}), "filter"),
            (Kind::TxStatus, json!({"hash": "0x1"}), "filter.hash"),
            (
                Kind::TxStatus,
                json!({"sender": a, "statuses": ["Mined"]}),
                "filter.statuses",
            ),
            (Kind::Balance, json!({"address": a}), "filter.threshold"),
            (
                Kind::Balance,
                json!({"address": a, "threshold": "-1"}),
                "filter.threshold",
            ),
            (Kind::Log, json!({"topics": "x"}), "filter"),
            (Kind::NewBlock, json!({"x": 1}), "filter.x"),
            (Kind::NewBlock, json!([]), "filter"),
        ] {
            let e = parse(kind, v.clone()).unwrap_err();
            assert_eq!(e.field, field, "{kind:?} {v}: {e}");
        }
        let f = parse(
            Kind::Balance,
            json!({"address": a, "threshold": "1000000000000000000000"}),
        )
        .unwrap();
        assert_eq!(f.to_json()["threshold"], json!("1000000000000000000000"));
        let f = parse(Kind::TxStatus, json!({"hash": format!("0x{}", "CD".repeat(32))})).unwrap();
        assert_eq!(f.to_json()["hash"], json!(format!("0x{}", "cd".repeat(32))));
        assert!(parse(
            Kind::Log,
            json!({"address": a, "topics": [null, [format!("0x{}", "00".repeat(32))]]})
        )
        .is_ok());
    }

    #[test]
    fn event_ids_are_stable_per_webhook_and_what_happened() {
        let hook = Hook {
            id: "wh_1".into(),
            owner: String::new(),
            network: "n".into(),
            url: "http://x".into(),
            kind: Kind::NewBlock,
            filter: Filter::None,
            secret: "s".into(),
            description: String::new(),
            state: State::Active,
            reason: None,
            from_block: 0,
            created: 0,
            updated: 0,
        };
        let a = Event::new(&hook, "n:5", Some(5), 1, json!({}));
        let b = Event::new(&hook, "n:5", Some(5), 2, json!({}));
        assert_eq!(a.id, b.id, "the same happening, read again");
        assert_ne!(a.id, Event::new(&hook, "n:6", Some(6), 1, json!({})).id);
        let other = Hook {
            id: "wh_2".into(),
            ..hook.clone()
        };
        assert_ne!(a.id, Event::new(&other, "n:5", Some(5), 1, json!({})).id);
        assert!(!format!("{hook:?}").contains("\"s\""), "Debug shows no secret");
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            (
                v["id"].as_str(),
                v["webhookId"].as_str(),
                v["type"].as_str(),
                v["blockNumber"].as_u64()
            ),
            (Some(a.id.as_str()), Some("wh_1"), Some("new_block"), Some(5))
        );
    }
}
