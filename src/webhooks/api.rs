//! The webhooks' REST API under `/v1/{network}/webhooks` (and `kengate webhooks`): create,
//! list, get, update, pause / resume, delete, rotate the secret, send a test event, list
//! recent deliveries, replay from an event. No HTTP here: [`answer`] takes the method, the
//! path after `/webhooks`, the query and the body, and returns a status and JSON. An access
//! key sees and changes only its own webhooks; the admin token all. Blocking (the store): run
//! it off the async threads.

use serde_json::{json, Value};

use super::db::DbError;
use super::model::{invalid, Event, Filter, Hook, Invalid, Kind, State};
use super::send::check_url;
use super::Webhooks;
use crate::jsonrpc::set_member;
use crate::txpath::lifecycle::hex;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The admin token: every webhook.
    Admin,
    /// An access key: its own.
    Key(&'a str),
}

impl Owner<'_> {
    fn id(&self) -> &str {
        match self {
            Owner::Admin => "",
            Owner::Key(k) => k,
        }
    }

    fn sees(&self, h: &Hook) -> bool {
        match self {
            Owner::Admin => true,
            Owner::Key(k) => h.owner == *k,
        }
    }
}

/// One request.
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// After `/webhooks` (`""`, `/wh_…`, `/wh_…/pause`, …).
    pub path: &'a str,
    /// The query string.
    pub query: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// The network in the path.
    pub network: &'a str,
    /// Who asks.
    pub owner: Owner<'a>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON.
    pub body: String,
}

fn reply(status: u16, v: Value) -> Reply {
    Reply {
        status,
        body: v.to_string(),
    }
}

fn error(status: u16, msg: &str) -> Reply {
    reply(status, json!({ "error": msg }))
}

fn bad(e: &Invalid) -> Reply {
    reply(400, json!({ "error": e.to_string(), "field": e.field }))
}

fn store(e: &DbError) -> Reply {
    tracing::warn!(error = %e, "webhooks: the store failed");
    error(500, "the webhook store failed")
}

/// `prefix_` + 24 random hex digits.
fn random_id(prefix: &str, bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).ok()?;
    Some(format!("{prefix}{}", &hex(&buf)[2..]))
}

/// Answers one request.
pub fn answer(wh: &Webhooks, req: &Request<'_>) -> Reply {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (req.method, segs.as_slice()) {
        ("POST", []) => create(wh, req),
        ("GET", []) => list(wh, req),
        ("GET", [id]) => one(wh, req, id).map(|h| reply(200, h.to_json())),
        ("PUT" | "PATCH", [id]) => update(wh, req, id),
        ("DELETE", [id]) => one(wh, req, id).and_then(|h| match wh.db().delete(&h.id) {
            Ok(_) => Ok(reply(200, json!({ "id": h.id, "deleted": true }))),
            Err(e) => Err(store(&e)),
        }),
        ("POST", [id, "pause"]) => set_state(wh, req, id, State::Paused),
        ("POST", [id, "resume"]) => set_state(wh, req, id, State::Active),
        ("POST", [id, "rotate-secret"]) => rotate(wh, req, id),
        ("POST", [id, "test"]) => test(wh, req, id),
        ("GET", [id, "deliveries"]) => deliveries(wh, req, id),
        ("POST", [id, "replay"]) => replay(wh, req, id),
        (_, [] | [_] | [_, "pause" | "resume" | "rotate-secret" | "test" | "deliveries" | "replay"]) => {
            Err(error(405, "method not allowed here"))
        }
        _ => Err(error(404, "no such webhook path")),
    };
    let out = result.unwrap_or_else(|e| e);
    if matches!(req.method, "POST" | "PUT" | "PATCH" | "DELETE") && out.status < 300 {
        if let Err(e) = wh.reload() {
            tracing::warn!(error = %e, "webhooks: cannot reload after a change");
        }
    }
    out
}

type Answer = Result<Reply, Reply>;

fn body(req: &Request<'_>) -> Result<serde_json::Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(req.body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(error(400, "the body must be a JSON object")),
    }
}

fn text_field(o: &serde_json::Map<String, Value>, k: &str, max: usize) -> Result<Option<String>, Reply> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        _ => Err(bad(&invalid(k, format!("a string of at most {max} characters")))),
    }
}

fn one(wh: &Webhooks, req: &Request<'_>, id: &str) -> Result<Hook, Reply> {
    let h = wh
        .db()
        .hook(id, |n| wh.dialect(n))
        .map_err(|e| store(&e))?
        .filter(|h| req.owner.sees(h) && h.network == req.network);
    h.ok_or_else(|| error(404, "no such webhook"))
}

fn create(wh: &Webhooks, req: &Request<'_>) -> Answer {
    let o = body(req)?;
    if let Some(k) = o
        .keys()
        .find(|k| !["url", "type", "filter", "description"].contains(&k.as_str()))
    {
        return Err(bad(&invalid(k, "not a webhook field (url, type, filter, description)")));
    }
    let url = text_field(&o, "url", 2048)?.ok_or_else(|| bad(&invalid("url", "required")))?;
    check_url(&url, wh.config().allow_private).map_err(|e| bad(&invalid("url", e)))?;
    let kind = match o.get("type").and_then(Value::as_str) {
        Some(t) => Kind::parse(t).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            bad(&invalid("type", format!("one of {}", names.join(", "))))
        })?,
        None => return Err(bad(&invalid("type", "required"))),
    };
    let filter =
        Filter::parse(kind, o.get("filter").unwrap_or(&Value::Null), wh.dialect(req.network)).map_err(|e| bad(&e))?;
    let description = text_field(&o, "description", 500)?.unwrap_or_default();
    if let Owner::Key(k) = req.owner {
        let n = wh.db().count(k).map_err(|e| store(&e))?;
        if n >= wh.config().max_per_key {
            return Err(error(
                429,
                &format!("this access key has {n} webhooks, its limit (webhooks.max_per_key)"),
            ));
        }
    }
    let (Some(id), Some(secret)) = (random_id("wh_", 12), random_id("whsec_", 24)) else {
        return Err(error(500, "no randomness from the system"));
    };
    let now = super::now_ms();
    let h = Hook {
        id,
        owner: req.owner.id().to_owned(),
        network: req.network.to_owned(),
        url,
        kind,
        filter,
        secret: secret.clone(),
        description,
        state: State::Active,
        reason: None,
        from_block: wh.served(req.network),
        created: now,
        updated: now,
    };
    wh.db().insert(&h).map_err(|e| store(&e))?;
    let mut v = h.to_json();
    set_member(&mut v, "secret", json!(secret));
    Ok(reply(201, v))
}

/// A key follows only the txs sent with itself.
fn own_key_only(owner: Owner<'_>, f: &Filter) -> Result<(), Reply> {
    match (owner, f) {
        (Owner::Key(me), Filter::Txs { key: Some(k), .. }) if k != me => Err(bad(&invalid(
            "filter.key",
            "an access key may follow only the transactions sent with itself",
        ))),
        _ => Ok(()),
    }
}

fn list(wh: &Webhooks, req: &Request<'_>) -> Answer {
    let owner = match req.owner {
        Owner::Admin => None,
        Owner::Key(k) => Some(k),
    };
    let hooks = wh.db().hooks(owner, |n| wh.dialect(n)).map_err(|e| store(&e))?;
    let items: Vec<Value> = hooks
        .iter()
        .filter(|h| h.network == req.network)
        .map(Hook::to_json)
        .collect();
    Ok(reply(200, json!({ "items": items })))
}

fn update(wh: &Webhooks, req: &Request<'_>, id: &str) -> Answer {
    let mut h = one(wh, req, id)?;
    let o = body(req)?;
    if let Some(k) = o
        .keys()
        .find(|k| !["url", "filter", "description"].contains(&k.as_str()))
    {
        return Err(bad(&invalid(
            k,
            "cannot be changed (url, filter and description can; make a new webhook for another type)",
        )));
    }
    if let Some(url) = text_field(&o, "url", 2048)? {
        check_url(&url, wh.config().allow_private).map_err(|e| bad(&invalid("url", e)))?;
        h.url = url;
    }
    if let Some(f) = o.get("filter") {
        h.filter = Filter::parse(h.kind, f, wh.dialect(req.network)).map_err(|e| bad(&e))?;
        own_key_only(req.owner, &h.filter)?;
    }
    if let Some(d) = text_field(&o, "description", 500)? {
        h.description = d;
    }
    h.updated = super::now_ms();
    wh.db().update(&h).map_err(|e| store(&e))?;
    Ok(reply(200, h.to_json()))
}

fn set_state(wh: &Webhooks, req: &Request<'_>, id: &str, to: State) -> Answer {
    let mut h = one(wh, req, id)?;
    let now = super::now_ms();
    h.state = to;
    h.reason = None;
    h.updated = now;
    wh.db().update(&h).map_err(|e| store(&e))?;
    if to == State::Active {
        wh.db().restart(&h.id, now).map_err(|e| store(&e))?;
        wh.wake();
    }
    Ok(reply(200, h.to_json()))
}

fn rotate(wh: &Webhooks, req: &Request<'_>, id: &str) -> Answer {
    let mut h = one(wh, req, id)?;
    let Some(secret) = random_id("whsec_", 24) else {
        return Err(error(500, "no randomness from the system"));
    };
    h.secret = secret.clone();
    h.updated = super::now_ms();
    wh.db().update(&h).map_err(|e| store(&e))?;
    Ok(reply(200, json!({ "id": h.id, "secret": secret })))
}

fn test(wh: &Webhooks, req: &Request<'_>, id: &str) -> Answer {
    let h = one(wh, req, id)?;
    let now = super::now_ms();
    let Some(nonce) = random_id("", 8) else {
        return Err(error(500, "no randomness from the system"));
    };
    let e = Event::new(
        &h,
        &format!("test:{nonce}"),
        None,
        now,
        json!({ "test": true, "message": "a test event from kengate" }),
    );
    wh.db().enqueue(std::slice::from_ref(&e), now).map_err(|e| store(&e))?;
    wh.wake();
    Ok(reply(202, json!({ "id": h.id, "eventId": e.id })))
}

fn query_param<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn deliveries(wh: &Webhooks, req: &Request<'_>, id: &str) -> Answer {
    let h = one(wh, req, id)?;
    let size = match query_param(req.query, "size") {
        None => 20,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad(&invalid("size", "1..100")))?,
    };
    let before = match query_param(req.query, "before") {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| bad(&invalid("before", "a cursor from a previous page")))?,
        ),
    };
    let events = wh.db().events(&h.id, before, size).map_err(|e| store(&e))?;
    let mut items = Vec::new();
    for e in &events {
        let attempts = wh.db().attempts(&e.id).map_err(|e| store(&e))?;
        let envelope: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
        items.push(json!({
            "eventId": e.id,
            "type": envelope.get("type").unwrap_or(&Value::Null),
            "blockNumber": envelope.get("blockNumber").unwrap_or(&Value::Null),
            "state": e.state,
            "createdAt": e.created,
            "attempts": attempts.iter().map(|a| json!({
                "attempt": a.attempt,
                "at": a.at,
                "status": a.status,
                "latencyMs": a.latency_ms,
                "error": a.error,
            })).collect::<Vec<_>>(),
        }));
    }
    let cursor = match events.len() == size as usize {
        true => events.last().map(|e| e.seq.to_string()),
        false => None,
    };
    Ok(reply(200, json!({ "items": items, "cursor": cursor })))
}

fn replay(wh: &Webhooks, req: &Request<'_>, id: &str) -> Answer {
    let h = one(wh, req, id)?;
    let o = body(req)?;
    let from = o
        .get("from")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(&invalid("from", "an event id")))?;
    let n = wh
        .db()
        .replay(&h.id, from, super::now_ms())
        .map_err(|e| store(&e))?
        .ok_or_else(|| error(404, "no such event of this webhook"))?;
    wh.wake();
    Ok(reply(200, json!({ "id": h.id, "from": from, "requeued": n })))
}
