//! The KAS Token History API v2 over the index, as `caver-js-ext-kas`'s `tokenHistory` calls
//! it: every path under `/v2/transfer`, `/v2/contract` and `/v2/account`, KAS's hyphenated
//! query parameters, opaque cursors (`""` on the last page), its response fields and types and
//! its `{code, message}` errors — plus the small `/v2/preset` CRUD `getTransferHistory` needs.
//! No HTTP here: [`answer`] takes the method, path, query and body and returns a status and a
//! JSON body. Everything comes from the index store, so nothing is shown above the block the
//! index reached (itself never above the served head).

pub mod query;

use std::collections::HashMap;

use ruint::aliases::U256;
use serde_json::{json, Map, Value};

use super::db::{
    ActivityFilter, ContractView, Event, Holding, HoldingKey, IndexDb, Key, MtBy, MtHolding, Preset, Span,
};
use crate::jsonrpc::set_member;
use crate::txpath::lifecycle::hex;
use query::{address, bytes_part, hash, part_bytes, part_u64, token_id, KasError, Params, Range};

/// Who is asking, for presets: the admin (every preset) or one access key (its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The admin token, or a gateway without access keys.
    All,
    /// An access key, by id.
    Key(&'a str),
}

impl Scope<'_> {
    fn owner(&self) -> &str {
        match self {
            Scope::All => "",
            Scope::Key(k) => k,
        }
    }

    fn sees(&self, p: &Preset) -> bool {
        match self {
            Scope::All => true,
            Scope::Key(k) => p.owner == *k,
        }
    }
}

/// One request, as the server read it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: &'a str,
    /// The path after `/v2` (`/transfer/account/0x…`).
    pub path: &'a str,
    /// The raw query string.
    pub query: &'a str,
    /// The body (presets).
    pub body: &'a [u8],
    /// Who asks.
    pub scope: Scope<'a>,
    /// Now, in unix seconds (a preset's `createdAt`).
    pub now: u64,
}

/// A status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// The access-key permission (a REST group) a path falls under.
pub fn permission(path: &str) -> &'static str {
    match path == "/preset" || path.starts_with("/preset/") {
        true => "kas_preset",
        false => "kas_tokenHistory",
    }
}

/// Answers one request for `network` from `db` (blocking: run it off the async threads).
pub fn answer(db: &IndexDb, network: &str, req: &Request<'_>) -> Reply {
    let result = Params::parse(req.query).and_then(|q| route(db, network, req, &q));
    match result {
        Ok((status, v)) => Reply {
            status,
            body: v.to_string(),
        },
        Err(e) => Reply {
            status: e.status,
            body: json!({"code": e.code, "message": e.message}).to_string(),
        },
    }
}

type Answer = Result<(u16, Value), KasError>;

fn route(db: &IndexDb, net: &str, req: &Request<'_>, q: &Params) -> Answer {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    if let Some((&"preset", rest)) = segs.split_first() {
        return presets(db, req, rest);
    }
    if req.method != "GET" {
        return Err(KasError::no_route());
    }
    let at = |i: usize| segs.get(i).copied().unwrap_or("");
    let kind_of = |s: &str| match s {
        "ft" => Some(Kind::Ft),
        "nft" => Some(Kind::Nft),
        "mt" => Some(Kind::Mt),
        _ => None,
    };
    let ctx = Ctx {
        db,
        net,
        q,
        path: req.path,
    };
    match segs.as_slice() {
        ["transfer"] => ctx.transfers_of_presets(req.scope),
        ["transfer", "tx", h] => ctx.transfers_of_tx(h),
        ["transfer", "account", a] => ctx.transfers_of_account(a),
        ["contract", k] if kind_of(k).is_some() => ctx.contract_list(kind_of(k).unwrap_or(Kind::Ft)),
        ["contract", k, a] if kind_of(k).is_some() => ctx.contract_detail(kind_of(k).unwrap_or(Kind::Ft), a),
        ["contract", "nft" | "mt", a, "holder"] => ctx.holders(at(1) == "mt", a),
        ["contract", "nft", a, "token"] => ctx.nfts(a, None),
        ["contract", "nft", a, "owner", o] => ctx.nfts(a, Some(o)),
        ["contract", "nft", a, "token", id] => ctx.nft(a, id),
        ["contract", "nft", a, "token", id, "history"] => ctx.nft_history(a, id),
        ["contract", "mt", a, "token"] => ctx.mt_tokens(a),
        ["contract", "mt", a, "token", id] => ctx.mt_holders(a, id),
        ["contract", "mt", a, "owner", o] => ctx.mt_of_owner(a, o),
        ["contract", "mt", a, "owner", o, "token", id] => ctx.mt_one(a, o, id),
        ["account", a, "contract"] => ctx.account_contracts(a),
        ["account", a, "token"] => ctx.account_tokens(a),
        _ => Err(KasError::no_route()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ft,
    Nft,
    Mt,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ft => "ft",
            Kind::Nft => "nft",
            Kind::Mt => "mt",
        }
    }

    /// KAS's two standards of the kind, the KIP one first.
    fn standards(self) -> [&'static str; 2] {
        match self {
            Kind::Ft => ["KIP-7", "ERC-20"],
            Kind::Nft => ["KIP-17", "ERC-721"],
            Kind::Mt => ["KIP-37", "ERC-1155"],
        }
    }
}

struct Ctx<'a> {
    db: &'a IndexDb,
    net: &'a str,
    q: &'a Params,
    path: &'a str,
}

fn store(e: super::db::DbError) -> KasError {
    KasError::store(e)
}

impl Ctx<'_> {
    /// The page after `q`'s cursor: its parts, if any.
    fn cursor(&self) -> Result<Option<Vec<String>>, KasError> {
        self.q.cursor(self.path, self.net)
    }

    fn next_cursor(&self, more: bool, position: &[String]) -> String {
        match more {
            true => self.q.make_cursor(self.path, self.net, position),
            false => String::new(),
        }
    }

    fn key_cursor(&self) -> Result<Option<Key>, KasError> {
        let Some(p) = self.cursor()? else { return Ok(None) };
        let log = p
            .get(2)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| KasError::query("invalid cursor"))?;
        Ok(Some(Key {
            block: part_u64(p.first())?,
            tx_idx: u32::try_from(part_u64(p.get(1))?).map_err(|_| KasError::query("invalid cursor"))?,
            log_idx: log,
        }))
    }

    fn key_parts(k: &Key) -> Vec<String> {
        vec![k.block.to_string(), k.tx_idx.to_string(), k.log_idx.to_string()]
    }

    /// A page of activity of `accounts`.
    fn activity_page(&self, accounts: &[Vec<u8>], f: &ActivityFilter) -> Answer {
        let size = self.q.size()?;
        let before = self.key_cursor()?;
        let mut keys = self
            .db
            .activity(self.net, accounts, f, before, size + 1)
            .map_err(store)?;
        let more = keys.len() > size;
        keys.truncate(size);
        let events = self.db.events(self.net, &keys).map_err(store)?;
        let mut names = Names::default();
        let items: Vec<Value> = events
            .iter()
            .map(|e| self.event_json(e, &mut names))
            .collect::<Result<_, _>>()?;
        let cursor = self.next_cursor(more, &keys.last().map(|(k, _)| Self::key_parts(k)).unwrap_or_default());
        Ok((200, json!({"items": items, "cursor": cursor})))
    }

    fn filter(&self, kinds_allowed: u8) -> Result<ActivityFilter, KasError> {
        Ok(ActivityFilter {
            kinds: self.q.kinds(kinds_allowed)?,
            contracts: Vec::new(),
            contracts_keep_klay: false,
            dir: 3,
            exclude_zero_klay: self.q.flag("exclude-zero-klay")?,
            span: self.q.range()?.map(|r| match r {
                Range::Blocks(a, b) => Span::Blocks(a, b),
                Range::Times(a, b) => Span::Times(a, b),
            }),
        })
    }

    fn transfers_of_account(&self, a: &str) -> Answer {
        let account = address(a).ok_or_else(|| KasError::uri("invalid account address"))?;
        let mut f = self.filter(15)?;
        f.contracts = self.q.contracts("ca-filter")?.iter().map(|c| c.to_vec()).collect();
        match (self.q.flag("from-only")?, self.q.flag("to-only")?) {
            (true, true) => {
                return Err(KasError::query("both from-only and to-only could not be true"));
            }
            (true, false) => f.dir = super::db::DIR_FROM,
            (false, true) => f.dir = super::db::DIR_TO,
            (false, false) => {}
        }
        self.activity_page(&[account.to_vec()], &f)
    }

    fn transfers_of_presets(&self, scope: Scope<'_>) -> Answer {
        let ids = self.q.presets()?;
        let mut accounts: Vec<Vec<u8>> = Vec::new();
        let mut contracts: Vec<Vec<u8>> = Vec::new();
        let mut unrestricted = false;
        for id in ids {
            let p = self
                .db
                .preset(id)
                .map_err(store)?
                .filter(|p| scope.sees(p))
                .ok_or_else(|| KasError::not_found("preset not found"))?;
            for a in p.addresses.iter().filter_map(|a| address(a)) {
                if !accounts.iter().any(|x| x[..] == a[..]) {
                    accounts.push(a.to_vec());
                }
            }
            unrestricted |= p.contracts.is_empty();
            contracts.extend(p.contracts.iter().filter_map(|c| address(c)).map(|c| c.to_vec()));
        }
        let mut f = self.filter(15)?;
        if !unrestricted {
            contracts.sort();
            contracts.dedup();
            f.contracts = contracts;
            f.contracts_keep_klay = true;
        }
        self.activity_page(&accounts, &f)
    }

    fn transfers_of_tx(&self, h: &str) -> Answer {
        let h = hash(h).ok_or_else(|| KasError::uri("invalid transaction hash"))?;
        let events = self.db.events_of_tx(self.net, &h).map_err(store)?;
        let mut names = Names::default();
        let items: Vec<Value> = events
            .iter()
            .map(|e| self.event_json(e, &mut names))
            .collect::<Result<_, _>>()?;
        Ok((200, json!({ "items": items })))
    }

    fn event_json(&self, e: &Event, names: &mut Names) -> Result<Value, KasError> {
        match e {
            Event::Klay(tx) => {
                let mut v = json!({
                    "transferType": "klay",
                    "from": hex(&tx.from),
                    "to": tx.to.as_deref().or(tx.created.as_deref()).map(hex).unwrap_or_default(),
                    "value": qty(&tx.value),
                    "fee": fee(tx),
                    "status": i32::from(tx.success),
                    "transactionHash": hex(&tx.hash),
                    "transactionIndex": tx.index,
                    "blockNumber": tx.block,
                    "typeInt": tx.type_int,
                    "timestamp": tx.ts,
                    "feePayer": tx.fee_payer.as_deref().map(hex).unwrap_or_default(),
                    "feeRatio": tx.fee_ratio.unwrap_or(0),
                });
                if let Some(c) = &tx.created {
                    set_member(&mut v, "contractAddress", json!(hex(c)));
                }
                Ok(v)
            }
            Event::Token { tx, rows, .. } => {
                let Some(first) = rows.first() else {
                    return Ok(Value::Null);
                };
                let transaction = json!({
                    "from": hex(&tx.from),
                    "fee": fee(tx),
                    "transactionHash": hex(&tx.hash),
                    "blockNumber": tx.block,
                    "typeInt": tx.type_int,
                    "timestamp": tx.ts,
                    "value": qty(&tx.value),
                    "feePayer": tx.fee_payer.as_deref().map(hex).unwrap_or_default(),
                    "feeRatio": tx.fee_ratio.unwrap_or(0),
                });
                let c = names.get(self.db, self.net, &first.contract)?;
                let mut v = json!({
                    "transferType": first.kind,
                    "transaction": transaction,
                    "from": hex(&first.from),
                    "to": hex(&first.to),
                });
                let mut contract = Map::new();
                contract.insert("address".into(), json!(hex(&first.contract)));
                match first.kind.as_str() {
                    "ft" => {
                        let decimals = c.as_ref().and_then(|c| c.decimals).unwrap_or(0);
                        if let Some(c) = c {
                            contract.insert("name".into(), json!(c.name.clone().unwrap_or_default()));
                            contract.insert("symbol".into(), json!(c.symbol.clone().unwrap_or_default()));
                            contract.insert("decimals".into(), json!(decimals));
                        }
                        set_member(&mut v, "value", json!(qty(&first.value)));
                        set_member(&mut v, "formattedValue", json!(formatted(word(&first.value), decimals)));
                    }
                    "nft" => {
                        if let Some(c) = c {
                            contract.insert("name".into(), json!(c.name.clone().unwrap_or_default()));
                            contract.insert("symbol".into(), json!(c.symbol.clone().unwrap_or_default()));
                        }
                        set_member(
                            &mut v,
                            "tokenId",
                            json!(first.token_id.as_deref().map(qty).unwrap_or_default()),
                        );
                    }
                    _ => {
                        set_member(
                            &mut v,
                            "operator",
                            json!(first.operator.as_deref().map(hex).unwrap_or_default()),
                        );
                        set_member(
                            &mut v,
                            "ids",
                            rows.iter()
                                .map(|r| json!(r.token_id.as_deref().map(qty).unwrap_or_default()))
                                .collect(),
                        );
                        set_member(&mut v, "values", rows.iter().map(|r| json!(qty(&r.value))).collect());
                    }
                }
                set_member(&mut v, "contract", Value::Object(contract));
                Ok(v)
            }
        }
    }

    fn contract_list(&self, kind: Kind) -> Answer {
        let size = self.q.size()?;
        let status = self.q.status()?;
        let standard = self.q.standard(kind.standards())?;
        let after = match self.cursor()? {
            None => None,
            Some(p) => Some((part_u64(p.first())?, part_bytes(p.get(1))?)),
        };
        let keep = |c: &ContractView| {
            status.is_none_or(|s| s == label(c)) && standard.is_none_or(|t| t == standard_of(kind, c))
        };
        let mut list = self
            .db
            .contracts(self.net, kind.name(), after, size + 1, &keep)
            .map_err(store)?;
        let more = list.len() > size;
        list.truncate(size);
        let items: Vec<Value> = list
            .iter()
            .map(|c| self.contract_json(kind, c))
            .collect::<Result<_, _>>()?;
        let position = list
            .last()
            .map(|c| vec![c.first_block.to_string(), bytes_part(&c.address)])
            .unwrap_or_default();
        Ok((
            200,
            json!({"items": items, "cursor": self.next_cursor(more, &position)}),
        ))
    }

    fn contract_json(&self, kind: Kind, c: &ContractView) -> Result<Value, KasError> {
        let mut v = json!({
            "address": hex(&c.address),
            "status": label(c),
            "type": standard_of(kind, c),
            "createdAt": c.created,
            "updatedAt": c.created,
            "deletedAt": 0,
        });
        match kind {
            Kind::Ft => {
                set_member(&mut v, "name", json!(c.name.clone().unwrap_or_default()));
                set_member(&mut v, "symbol", json!(c.symbol.clone().unwrap_or_default()));
                set_member(&mut v, "decimals", json!(c.decimals.unwrap_or(0)));
                set_member(
                    &mut v,
                    "totalSupply",
                    json!(c.total_supply.as_deref().map(qty).unwrap_or_else(|| "0x0".into())),
                );
            }
            Kind::Nft => {
                set_member(&mut v, "name", json!(c.name.clone().unwrap_or_default()));
                set_member(&mut v, "symbol", json!(c.symbol.clone().unwrap_or_default()));
                let n = self.db.nft_supply(self.net, &c.address).map_err(store)?;
                set_member(&mut v, "totalSupply", json!(format!("{n:#x}")));
            }
            Kind::Mt => {}
        }
        Ok(v)
    }

    /// The contract at `a`, known as `kind`; KAS's 400 / 404 otherwise.
    fn known(&self, kind: Kind, a: &str) -> Result<ContractView, KasError> {
        let what = kind.name();
        let addr = address(a).ok_or_else(|| KasError::uri(format!("invalid {what} address")))?;
        self.db
            .contract(self.net, &addr)
            .map_err(store)?
            .filter(|c| c.kind == what)
            .ok_or_else(|| KasError::not_found(format!("not found {what}")))
    }

    fn contract_detail(&self, kind: Kind, a: &str) -> Answer {
        let c = self.known(kind, a)?;
        Ok((200, self.contract_json(kind, &c)?))
    }

    fn holders(&self, multi: bool, a: &str) -> Answer {
        let kind = if multi { Kind::Mt } else { Kind::Nft };
        let c = self.known(kind, a)?;
        let n = self.db.holder_count(self.net, &c.address, multi).map_err(store)?;
        Ok((200, json!({"address": hex(&c.address), "totalHolder": n})))
    }

    fn nfts(&self, a: &str, owner: Option<&str>) -> Answer {
        let c = self.known(Kind::Nft, a)?;
        let owner = match owner {
            Some(o) => Some(address(o).ok_or_else(|| KasError::uri("invalid owner address"))?),
            None => None,
        };
        let size = self.q.size()?;
        let after = match self.cursor()? {
            Some(p) => Some(part_bytes(p.first())?),
            None => None,
        };
        let mut list = self
            .db
            .nfts(
                self.net,
                &c.address,
                owner.as_ref().map(|o| &o[..]),
                after.as_deref(),
                size + 1,
            )
            .map_err(store)?;
        let more = list.len() > size;
        list.truncate(size);
        let items: Vec<Value> = list.iter().map(nft_json).collect();
        let position = list.last().map(|n| vec![bytes_part(&n.token_id)]).unwrap_or_default();
        Ok((
            200,
            json!({"items": items, "cursor": self.next_cursor(more, &position)}),
        ))
    }

    fn nft(&self, a: &str, id: &str) -> Answer {
        let c = self.known(Kind::Nft, a)?;
        let id = token_id(id).ok_or_else(|| KasError::uri("invalid token id"))?;
        let n = self
            .db
            .nft(self.net, &c.address, &id)
            .map_err(store)?
            .ok_or_else(|| KasError::not_found("not found nft token"))?;
        Ok((200, nft_json(&n)))
    }

    fn nft_history(&self, a: &str, id: &str) -> Answer {
        let c = self.known(Kind::Nft, a)?;
        let id = token_id(id).ok_or_else(|| KasError::uri("invalid token id"))?;
        let size = self.q.size()?;
        let before = self.key_cursor()?;
        let mut list = self
            .db
            .nft_history(self.net, &c.address, &id, before, size + 1)
            .map_err(store)?;
        if list.is_empty() && before.is_none() {
            return Err(KasError::not_found("not found nft token"));
        }
        let more = list.len() > size;
        list.truncate(size);
        let items: Vec<Value> = list
            .iter()
            .map(|c| json!({"from": hex(&c.from), "to": hex(&c.to), "timestamp": c.ts}))
            .collect();
        let position = list.last().map(|c| Self::key_parts(&c.key)).unwrap_or_default();
        Ok((
            200,
            json!({"items": items, "cursor": self.next_cursor(more, &position)}),
        ))
    }

    fn mt_tokens(&self, a: &str) -> Answer {
        let c = self.known(Kind::Mt, a)?;
        let size = self.q.size()?;
        let after = match self.cursor()? {
            Some(p) => Some(part_bytes(p.first())?),
            None => None,
        };
        let mut list = self
            .db
            .mt_tokens(self.net, &c.address, after.as_deref(), size + 1)
            .map_err(store)?;
        let more = list.len() > size;
        list.truncate(size);
        let items: Vec<Value> = list
            .iter()
            .map(|t| {
                json!({
                    "tokenId": qty(&t.token_id),
                    "totalSupply": qty(&t.supply),
                    "tokenUri": t.uri.clone().unwrap_or_default(),
                })
            })
            .collect();
        let position = list.last().map(|t| vec![bytes_part(&t.token_id)]).unwrap_or_default();
        Ok((
            200,
            json!({"items": items, "cursor": self.next_cursor(more, &position)}),
        ))
    }

    /// A page of MT balances, listed by holder or by id.
    fn mt_page(&self, contract: &[u8], by: MtBy<'_>) -> Result<(Vec<Value>, String), KasError> {
        let size = self.q.size()?;
        let after = match self.cursor()? {
            Some(p) => Some(part_bytes(p.first())?),
            None => None,
        };
        let mut list = self
            .db
            .mt_holdings(self.net, contract, by, after.as_deref(), size + 1)
            .map_err(store)?;
        let more = list.len() > size;
        list.truncate(size);
        let mut tokens = HashMap::new();
        let items: Vec<Value> = list
            .iter()
            .map(|h| self.mt_json(h, &mut tokens))
            .collect::<Result<_, _>>()?;
        let position = list
            .last()
            .map(|h| match by {
                MtBy::Token(_) => vec![bytes_part(&h.holder)],
                MtBy::Holder(_) => vec![bytes_part(&h.token_id)],
            })
            .unwrap_or_default();
        Ok((items, self.next_cursor(more, &position)))
    }

    fn mt_json(&self, h: &MtHolding, tokens: &mut HashMap<Vec<u8>, (String, String)>) -> Result<Value, KasError> {
        let (supply, uri) = match tokens.get(&h.token_id) {
            Some(t) => t.clone(),
            None => {
                let t = self
                    .db
                    .mt_token(self.net, &h.contract, &h.token_id)
                    .map_err(store)?
                    .map(|t| (qty(&t.supply), t.uri.unwrap_or_default()))
                    .unwrap_or_else(|| ("0x0".into(), String::new()));
                tokens.insert(h.token_id.clone(), t.clone());
                t
            }
        };
        Ok(json!({
            "tokenId": qty(&h.token_id),
            "owner": hex(&h.holder),
            "tokenAddress": hex(&h.contract),
            "totalSupply": supply,
            "tokenUri": uri,
            "balance": qty(&h.balance),
            "transactionHash": hex(&h.last_tx),
            "transferFrom": hex(&h.last_from),
            "transferTo": hex(&h.last_to),
            "updatedAt": h.updated,
        }))
    }

    fn mt_holders(&self, a: &str, id: &str) -> Answer {
        let c = self.known(Kind::Mt, a)?;
        let id = token_id(id).ok_or_else(|| KasError::uri("invalid token id"))?;
        let (items, cursor) = self.mt_page(&c.address, MtBy::Token(&id))?;
        Ok((200, json!({"items": items, "cursor": cursor})))
    }

    fn mt_of_owner(&self, a: &str, o: &str) -> Answer {
        let c = self.known(Kind::Mt, a)?;
        let owner = address(o).ok_or_else(|| KasError::uri("invalid owner address"))?;
        let (items, cursor) = self.mt_page(&c.address, MtBy::Holder(&owner))?;
        let total = self.db.mt_total(self.net, &c.address, &owner).map_err(store)?;
        Ok((
            200,
            json!({"items": items, "totalBalance": format!("{total:#x}"), "cursor": cursor}),
        ))
    }

    fn mt_one(&self, a: &str, o: &str, id: &str) -> Answer {
        let c = self.known(Kind::Mt, a)?;
        let owner = address(o).ok_or_else(|| KasError::uri("invalid owner address"))?;
        let id = token_id(id).ok_or_else(|| KasError::uri("invalid token id"))?;
        let after = U256::from_be_bytes(id)
            .checked_sub(U256::from(1u8))
            .map(|a| a.to_be_bytes::<32>().to_vec());
        let h = self
            .db
            .mt_holdings(self.net, &c.address, MtBy::Holder(&owner), after.as_deref(), 1)
            .map_err(store)?
            .into_iter()
            .find(|h| h.token_id[..] == id[..])
            .ok_or_else(|| KasError::not_found("not found mt token"))?;
        Ok((200, self.mt_json(&h, &mut HashMap::new())?))
    }

    /// `(kind bit, contract, token id)` after the cursor; `skip_contract` moves past every id
    /// of the cursor's contract (lists by contract).
    fn holding_cursor(&self, skip_contract: bool) -> Result<Option<HoldingKey>, KasError> {
        let Some(p) = self.cursor()? else { return Ok(None) };
        let kind = u8::try_from(part_u64(p.first())?).map_err(|_| KasError::query("invalid cursor"))?;
        let contract = part_bytes(p.get(1))?;
        let id = match skip_contract {
            true => vec![0xff; 33],
            false => part_bytes(p.get(2))?,
        };
        Ok(Some((kind, contract, id)))
    }

    fn account_tokens(&self, a: &str) -> Answer {
        let owner = address(a).ok_or_else(|| KasError::uri("invalid account address"))?;
        let kinds = self.q.kinds(14)?;
        let contracts: Vec<Vec<u8>> = self.q.contracts("ca-filters")?.iter().map(|c| c.to_vec()).collect();
        let size = self.q.size()?;
        let after = self.holding_cursor(false)?;
        let mut list: Vec<Holding> = Vec::new();
        self.db
            .holdings_of(self.net, &owner, kinds, &contracts, after, &mut |h| {
                list.push(h);
                list.len() <= size
            })
            .map_err(store)?;
        let more = list.len() > size;
        list.truncate(size);
        let mut names = Names::default();
        let mut tokens = HashMap::new();
        let mut items = Vec::with_capacity(list.len());
        for h in &list {
            let c = names.get(self.db, self.net, &h.contract)?;
            let extras = match h.kind {
                2 => ft_extras(c.as_ref(), word(&h.balance)),
                4 => json!({
                    "tokenId": qty(&h.token_id),
                    "tokenUri": h.uri.clone().unwrap_or_default(),
                }),
                _ => {
                    let key = [h.contract.clone(), h.token_id.clone()].concat();
                    let (supply, uri) = match tokens.get(&key) {
                        Some(t) => Clone::clone(t),
                        None => {
                            let t: (String, String) = self
                                .db
                                .mt_token(self.net, &h.contract, &h.token_id)
                                .map_err(store)?
                                .map(|t| (qty(&t.supply), t.uri.unwrap_or_default()))
                                .unwrap_or_default();
                            tokens.insert(key, t.clone());
                            t
                        }
                    };
                    json!({"tokenId": qty(&h.token_id), "tokenUri": uri, "totalSupply": supply})
                }
            };
            items.push(json!({
                "kind": kind_name(h.kind),
                "contractAddress": hex(&h.contract),
                "updatedAt": h.updated,
                "balance": qty(&h.balance),
                "lastTransfer": {
                    "transactionHash": hex(&h.last_tx),
                    "transferFrom": hex(&h.last_from),
                    "transferTo": hex(&h.last_to),
                },
                "extras": extras,
            }));
        }
        let position = list
            .last()
            .map(|h| vec![h.kind.to_string(), bytes_part(&h.contract), bytes_part(&h.token_id)])
            .unwrap_or_default();
        Ok((
            200,
            json!({"items": items, "cursor": self.next_cursor(more, &position)}),
        ))
    }

    fn account_contracts(&self, a: &str) -> Answer {
        let owner = address(a).ok_or_else(|| KasError::uri("invalid account address"))?;
        let kinds = self.q.kinds(14)?;
        let size = self.q.size()?;
        let after = self.holding_cursor(true)?;
        // (kind, contract, total, last update), one per contract
        let mut groups: Vec<(u8, Vec<u8>, U256, u64)> = Vec::new();
        self.db
            .holdings_of(self.net, &owner, kinds, &[], after, &mut |h| {
                let amount = word(&h.balance);
                let full = groups.len() > size;
                match groups.last_mut() {
                    Some(g) if g.0 == h.kind && g.1 == h.contract => {
                        g.2 = g.2.saturating_add(amount);
                        g.3 = g.3.max(h.updated);
                        true
                    }
                    _ if full => false,
                    _ => {
                        groups.push((h.kind, h.contract, amount, h.updated));
                        true
                    }
                }
            })
            .map_err(store)?;
        let more = groups.len() > size;
        groups.truncate(size);
        let mut names = Names::default();
        let mut items = Vec::with_capacity(groups.len());
        for (kind, contract, total, updated) in &groups {
            let c = names.get(self.db, self.net, contract)?;
            let extras = match kind {
                2 => ft_extras(c.as_ref(), *total),
                4 => {
                    let n = self.db.nft_supply(self.net, contract).map_err(store)?;
                    json!({
                        "name": c.as_ref().and_then(|c| c.name.clone()).unwrap_or_default(),
                        "symbol": c.as_ref().and_then(|c| c.symbol.clone()).unwrap_or_default(),
                        "totalSupply": format!("{n:#x}"),
                    })
                }
                _ => json!({}),
            };
            items.push(json!({
                "kind": kind_name(*kind),
                "contractAddress": hex(contract),
                "updatedAt": updated,
                "totalBalance": format!("{total:#x}"),
                "extras": extras,
            }));
        }
        let position = groups
            .last()
            .map(|g| vec![g.0.to_string(), bytes_part(&g.1)])
            .unwrap_or_default();
        Ok((
            200,
            json!({"items": items, "cursor": self.next_cursor(more, &position)}),
        ))
    }
}

/// Token contracts looked up once per answer.
#[derive(Default)]
struct Names(HashMap<Vec<u8>, Option<ContractView>>);

impl Names {
    fn get(&mut self, db: &IndexDb, net: &str, contract: &[u8]) -> Result<Option<ContractView>, KasError> {
        if let Some(c) = self.0.get(contract) {
            return Ok(c.clone());
        }
        let c = db.contract(net, contract).map_err(store)?;
        self.0.insert(contract.to_vec(), c.clone());
        Ok(c)
    }
}

fn ft_extras(c: Option<&ContractView>, balance: U256) -> Value {
    let decimals = c.and_then(|c| c.decimals).unwrap_or(0);
    json!({
        "name": c.and_then(|c| c.name.clone()).unwrap_or_default(),
        "symbol": c.and_then(|c| c.symbol.clone()).unwrap_or_default(),
        "decimals": decimals,
        "totalSupply": c.and_then(|c| c.total_supply.as_deref()).map(qty).unwrap_or_else(|| "0x0".into()),
        "formattedValue": formatted(balance, decimals),
    })
}

fn nft_json(n: &super::db::NftView) -> Value {
    json!({
        "tokenId": qty(&n.token_id),
        "owner": hex(&n.owner),
        "previousOwner": hex(&n.prev_owner),
        "tokenUri": n.uri.clone().unwrap_or_default(),
        "transactionHash": hex(&n.tx_hash),
        "createdAt": n.created,
        "updatedAt": n.updated,
    })
}

fn kind_name(bit: u8) -> &'static str {
    match bit {
        2 => "ft",
        4 => "nft",
        _ => "mt",
    }
}

/// KAS's labelling status: `completed` when the contract described itself, `failed` when a
/// read did not work.
fn label(c: &ContractView) -> &'static str {
    match c.status.as_str() {
        "ok" => "completed",
        _ => "failed",
    }
}

/// KIP-7 / KIP-17 / KIP-37 when the contract says so through `supportsInterface`, else the
/// ERC standard its events follow (ERC-721 shares KIP-17's interface id).
fn standard_of(kind: Kind, c: &ContractView) -> &'static str {
    let has = |name: &str| c.interfaces.split(',').any(|i| i == name);
    let [kip, erc] = kind.standards();
    let kip_id = match kind {
        Kind::Ft => "kip7",
        Kind::Nft => "kip17",
        Kind::Mt => "kip37",
    };
    if has(kip_id) {
        kip
    } else {
        erc
    }
}

/// A 32-byte big-endian amount (or any shorter one) as a `0x` quantity.
fn qty(b: &[u8]) -> String {
    format!("{:#x}", word(b))
}

fn word(b: &[u8]) -> U256 {
    match b.len() {
        0..=32 => U256::from_be_slice(b),
        _ => U256::MAX,
    }
}

/// What a tx cost: gas used × the price paid.
fn fee(tx: &super::db::TxView) -> String {
    let price = word(&tx.gas_price);
    format!("{:#x}", price.saturating_mul(U256::from(tx.gas_used)))
}

/// `value / 10^decimals` in decimal, without trailing zeros (`0.00000000000000035`, `10`).
fn formatted(value: U256, decimals: u8) -> String {
    let digits = value.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = d + 1);
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    match frac.is_empty() {
        true => int.to_owned(),
        false => format!("{int}.{frac}"),
    }
}

/// The preset CRUD: `POST /preset`, `GET /preset`, `GET|PUT|DELETE /preset/{id}`.
fn presets(db: &IndexDb, req: &Request<'_>, rest: &[&str]) -> Answer {
    let scope = req.scope;
    let one = |id: &str| -> Result<Preset, KasError> {
        let id: i64 = id.parse().map_err(|_| KasError::uri("invalid preset id"))?;
        db.preset(id)
            .map_err(store)?
            .filter(|p| scope.sees(p))
            .ok_or_else(|| KasError::not_found("preset not found"))
    };
    match (req.method, rest) {
        ("GET", []) => {
            let owner = match scope {
                Scope::All => None,
                Scope::Key(k) => Some(k),
            };
            let list = db.presets(owner).map_err(store)?;
            Ok((200, json!({"items": list.iter().map(preset_json).collect::<Vec<_>>()})))
        }
        ("POST", []) => {
            let (name, addresses, contracts) = preset_body(req.body)?;
            let p = db
                .preset_create(scope.owner(), &name, &addresses, &contracts, req.now)
                .map_err(store)?;
            Ok((201, preset_json(&p)))
        }
        ("GET", [id]) => Ok((200, preset_json(&one(id)?))),
        ("PUT", [id]) => {
            let p = one(id)?;
            let (name, addresses, contracts) = preset_body(req.body)?;
            db.preset_update(p.id, &name, &addresses, &contracts).map_err(store)?;
            let p = one(id)?;
            Ok((200, preset_json(&p)))
        }
        ("DELETE", [id]) => {
            let p = one(id)?;
            db.preset_delete(p.id).map_err(store)?;
            Ok((200, json!({"id": p.id, "status": "deleted"})))
        }
        _ => Err(KasError::no_route()),
    }
}

/// A preset body: `{name, addresses: [..], contracts?: [..]}`.
fn preset_body(body: &[u8]) -> Result<(String, Vec<String>, Vec<String>), KasError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| KasError::body("the body is not a JSON object"))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 100)
        .ok_or_else(|| KasError::body("name: a string of 1 to 100 characters"))?
        .to_owned();
    let list = |field: &str, required: bool| -> Result<Vec<String>, KasError> {
        let items = match v.get(field).unwrap_or(&Value::Null) {
            Value::Null if !required => return Ok(Vec::new()),
            Value::Array(a) => a,
            _ => return Err(KasError::body(format!("{field}: a list of addresses"))),
        };
        let mut out: Vec<String> = Vec::new();
        for a in items {
            let a = a
                .as_str()
                .and_then(address)
                .ok_or_else(|| KasError::body(format!("{field}: {a} is not an address")))?;
            let a = hex(&a);
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.len() > query::MAX_CA_FILTERS || (required && out.is_empty()) {
            return Err(KasError::body(format!(
                "{field}: 1 to {} addresses",
                query::MAX_CA_FILTERS
            )));
        }
        Ok(out)
    };
    Ok((name, list("addresses", true)?, list("contracts", false)?))
}

fn preset_json(p: &Preset) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "addresses": p.addresses,
        "contracts": p.contracts,
        "createdAt": p.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_kas_writes_them() {
        assert_eq!(formatted(U256::from(350u32), 18), "0.00000000000000035");
        assert_eq!(formatted(U256::from(1000u32), 2), "10");
        assert_eq!(formatted(U256::from(1234u32), 2), "12.34");
        assert_eq!(formatted(U256::ZERO, 18), "0");
        assert_eq!(formatted(U256::from(7u8), 0), "7");
        assert_eq!(qty(&[0u8; 32]), "0x0");
        assert_eq!(qty(&U256::from(0x15eu32).to_be_bytes::<32>()), "0x15e");
        assert_eq!(permission("/preset/3"), "kas_preset");
        assert_eq!(permission("/transfer"), "kas_tokenHistory");
    }

    #[test]
    fn unknown_paths_and_methods_are_kas_errors() {
        let db = IndexDb::in_memory().unwrap();
        let req = |method, path, query| Request {
            method,
            path,
            query,
            body: b"",
            scope: Scope::All,
            now: 1,
        };
        for (method, path, status, code) in [
            ("GET", "/nope", 404, 1010007),
            ("POST", "/transfer", 404, 1010007),
            ("GET", "/transfer", 400, 1040010),
            ("GET", "/transfer/account/0x12", 400, 1040020),
            (
                "GET",
                "/contract/ft/0x0000000000000000000000000000000000000001",
                404,
                1040400,
            ),
            (
                "GET",
                "/contract/nft/0x0000000000000000000000000000000000000001/token/12",
                404,
                1040400,
            ),
            ("GET", "/preset/9", 404, 1040400),
            ("POST", "/preset", 400, 1040030),
        ] {
            let r = answer(&db, "n", &req(method, path, ""));
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                (r.status, v["code"].as_u64()),
                (status, Some(code)),
                "{method} {path}: {}",
                r.body
            );
        }
        let r = answer(
            &db,
            "n",
            &req(
                "GET",
                "/transfer/account/0x0000000000000000000000000000000000000001",
                "",
            ),
        );
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"cursor":"","items":[]}"#));
    }
}
