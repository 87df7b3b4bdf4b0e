//! The KAS Token History API v2 over the index: every `tokenHistory` path answered from blocks
//! recorded on real Klaytn v1.12.1 and Kaia v2.2.1 nodes (`tests/fixtures/index/`), checked
//! against what the recorder sent and what the contracts answered (`balanceOf`, `ownerOf`,
//! `totalSupply`, `tokenURI`, `uri`); page by page through the cursors; KAS's errors; and over
//! HTTP: `x-chain-id`, Basic auth with access keys, the keys' REST groups, presets per key.

use std::collections::BTreeMap;

use kengate::index::contracts::{Meta, INTERFACES};
use kengate::index::db::{ContractRow, TokenUri};
use kengate::index::extract::{extract, Kind, TxRow};
use kengate::index::kas::{answer, Request, Scope};
use kengate::index::IndexDb;
use ruint::aliases::U256;
use serde_json::{json, Value};

use crate::support::fake;
use crate::support::gate::{test_config, Gate};

fn hex(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s.trim_start_matches("0x")).unwrap().try_into().unwrap()
}

fn qty(decimal: &str) -> String {
    format!("{:#x}", U256::from_str_radix(decimal, 10).unwrap())
}

/// A recorded chain in an index: its fixture, the store, and every tx extracted.
struct Recorded {
    f: Value,
    db: IndexDb,
    txs: Vec<(u64, TxRow)>,
}

impl Recorded {
    fn load(flavour: &str) -> Self {
        let path = format!("{}/tests/fixtures/index/{flavour}.json", env!("CARGO_MANIFEST_DIR"));
        let f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let db = IndexDb::in_memory().unwrap();
        let calls = f["state"]["calls"].as_array().unwrap().clone();
        let decoded = |contract: &str, method: &str, arg: Option<&str>| -> Option<Value> {
            calls
                .iter()
                .find(|c| {
                    c["contract"] == contract
                        && c["method"] == method
                        && arg.is_none_or(|a| c["args"][0].as_str() == Some(a))
                })
                .map(|c| c["decoded"].clone())
                .filter(|v| !v.is_null())
        };
        let expected = f["expected"].as_array().unwrap().clone();
        // Each token contract as the ingest would describe it at its first block: the FT's
        // supply then is its first mint (the later mints and burns move it from there).
        let mut contracts: Vec<(u64, ContractRow)> = Vec::new();
        for (label, kind) in [("ft", Kind::Ft), ("nft", Kind::Nft), ("mt", Kind::Mt)] {
            let address = f["contracts"][label].as_str().unwrap();
            let first = expected.iter().find(|e| e["contract"] == address).unwrap();
            let text = |m: &str| decoded(label, m, None).and_then(|v| v.as_str().map(str::to_owned));
            let interfaces = INTERFACES
                .iter()
                .filter(|(_, id)| {
                    let arg = hex(id);
                    decoded(label, "supportsInterface(bytes4)", Some(&arg)) == Some(Value::Bool(true))
                })
                .map(|(name, _)| *name)
                .collect();
            let meta = Meta {
                name: text("name()"),
                symbol: text("symbol()"),
                decimals: text("decimals()").and_then(|d| d.parse().ok()),
                total_supply: (kind == Kind::Ft)
                    .then(|| U256::from_str_radix(first["value"].as_str().unwrap(), 10).unwrap()),
                interfaces,
                status: "ok".into(),
            };
            let row = ContractRow {
                address: unhex(address),
                kind,
                first_block: first["block_number"].as_u64().unwrap(),
                meta,
            };
            contracts.push((row.first_block, row));
        }
        // The URIs the ingest reads when a token first shows: the NFTs' as recorded; the MT's
        // `uri(id)` is one `{id}` template for every id (OpenZeppelin's ERC-1155: recorded for
        // ids 1 and 4).
        let mut uris = Vec::new();
        for c in calls
            .iter()
            .filter(|c| c["contract"] == "nft" && c["method"] == "tokenURI(uint256)")
        {
            if let Some(uri) = c["decoded"].as_str() {
                uris.push(TokenUri {
                    contract: unhex(f["contracts"]["nft"].as_str().unwrap()),
                    id: U256::from_str_radix(c["args"][0].as_str().unwrap(), 10).unwrap(),
                    uri: uri.to_owned(),
                });
            }
        }
        let template = decoded("mt", "uri(uint256)", Some("1")).unwrap();
        for e in expected.iter().filter(|e| e["kind"] == "mt") {
            uris.push(TokenUri {
                contract: unhex(f["contracts"]["mt"].as_str().unwrap()),
                id: U256::from_str_radix(e["token_id"].as_str().unwrap(), 10).unwrap(),
                uri: template.as_str().unwrap().to_owned(),
            });
        }
        let mut txs = Vec::new();
        for b in f["blocks"].as_array().unwrap() {
            let raw = |v: &Value| serde_json::value::RawValue::from_string(v.to_string()).unwrap();
            let rows = extract(&raw(&b["block"]), &raw(&b["receipts"])).unwrap();
            let new: Vec<ContractRow> = contracts
                .iter()
                .filter(|(at, _)| *at == rows.number)
                .map(|(_, c)| c.clone())
                .collect();
            db.write_with("n", std::slice::from_ref(&rows), &new, &uris).unwrap();
            txs.extend(rows.txs.iter().map(|t| (rows.number, t.clone())));
        }
        Recorded { f, db, txs }
    }

    fn addr(&self, who: &str) -> String {
        self.f["accounts"][who]
            .as_str()
            .or(self.f["contracts"][who].as_str())
            .unwrap()
            .to_owned()
    }

    fn get(&self, path: &str, query: &str) -> (u16, Value) {
        self.call("GET", path, query, b"", Scope::All)
    }

    fn call(&self, method: &str, path: &str, query: &str, body: &[u8], scope: Scope<'_>) -> (u16, Value) {
        let r = answer(
            &self.db,
            "n",
            &Request {
                method,
                path,
                query,
                body,
                scope,
                now: 1_800_000_000,
            },
        );
        (r.status, serde_json::from_str(&r.body).unwrap())
    }

    fn ok(&self, path: &str, query: &str) -> Value {
        let (status, v) = self.get(path, query);
        assert_eq!(status, 200, "{path}?{query}: {v}");
        v
    }

    /// Every item of a listing, `size` at a time through the cursors.
    fn pages(&self, path: &str, query: &str, size: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..100 {
            let sep = if query.is_empty() { "" } else { "&" };
            let q = match cursor.is_empty() {
                true => format!("{query}{sep}size={size}"),
                false => format!("{query}{sep}size={size}&cursor={cursor}"),
            };
            let v = self.ok(path, &q);
            let items = v["items"].as_array().unwrap();
            assert!(items.len() <= size, "{path}: a page of {} for size {size}", items.len());
            out.extend(items.iter().cloned());
            cursor = v["cursor"].as_str().unwrap().to_owned();
            if cursor.is_empty() {
                return out;
            }
            assert_eq!(items.len(), size, "{path}: a short page before the last");
        }
        panic!("{path}: the cursors never end");
    }

    /// What `who`'s history must list, newest first: one item per token event (a batch is one
    /// item) it is party to, one KLAY item per tx it sent or received.
    fn history_of(&self, who: &str) -> Vec<(u64, u32, i64, Value)> {
        let mut out: Vec<(u64, u32, i64, Value)> = Vec::new();
        let mut events: BTreeMap<(u64, u64, i64), Vec<&Value>> = BTreeMap::new();
        for e in self.f["expected"].as_array().unwrap() {
            if e["kind"] == "klay" || (e["from"] != who && e["to"] != who) {
                continue;
            }
            let key = (
                e["block_number"].as_u64().unwrap(),
                e["tx_index"].as_u64().unwrap(),
                e["log_index"].as_i64().unwrap(),
            );
            events.entry(key).or_default().push(e);
        }
        for ((block, tx, log), rows) in events {
            let e = rows[0];
            let mut v = json!({
                "transferType": e["kind"],
                "from": e["from"],
                "to": e["to"],
                "hash": e["tx_hash"],
            });
            match e["kind"].as_str().unwrap() {
                "ft" => v["value"] = json!(qty(e["value"].as_str().unwrap())),
                "nft" => v["tokenId"] = json!(qty(e["token_id"].as_str().unwrap())),
                _ => {
                    v["ids"] = rows
                        .iter()
                        .map(|r| json!(qty(r["token_id"].as_str().unwrap())))
                        .collect();
                    v["values"] = rows.iter().map(|r| json!(qty(r["value"].as_str().unwrap()))).collect();
                }
            }
            out.push((block, tx as u32, log, v));
        }
        for (block, t) in &self.txs {
            let to = t.to.or(t.contract_created).map(|a| hex(&a));
            if hex(&t.from) != who && to.as_deref() != Some(who) {
                continue;
            }
            let v = json!({
                "transferType": "klay",
                "from": hex(&t.from),
                "to": to.unwrap_or_default(),
                "hash": hex(&t.hash),
                "value": format!("{:#x}", t.value),
            });
            out.push((*block, t.index, -1, v));
        }
        out.sort_by_key(|b| std::cmp::Reverse((b.0, b.1, b.2)));
        out
    }
}

/// An item reduced to what [`Recorded::history_of`] predicts.
fn essence(item: &Value) -> Value {
    let hash = item["transaction"]["transactionHash"]
        .as_str()
        .or(item["transactionHash"].as_str())
        .unwrap();
    let mut v = json!({
        "transferType": item["transferType"],
        "from": item["from"],
        "to": item["to"],
        "hash": hash,
    });
    for k in ["value", "tokenId", "ids", "values"] {
        if !item[k].is_null() {
            v[k] = item[k].clone();
        }
    }
    v
}

fn essence_all(items: &[Value]) -> Vec<Value> {
    items.iter().map(essence).collect()
}

#[test]
fn transfer_histories_page_by_page_as_recorded() {
    for flavour in ["klaytn", "kaia"] {
        let r = Recorded::load(flavour);
        for who in ["A", "B", "C", "D"] {
            let a = r.addr(who);
            let want: Vec<Value> = r.history_of(&a).into_iter().map(|w| w.3).collect();
            assert!(want.len() >= 5, "{flavour} {who}: the fixture moves little");
            let path = format!("/transfer/account/{a}");
            let got: Vec<Value> = r.pages(&path, "", 3).iter().map(essence).collect();
            assert_eq!(got, want, "{flavour} {who}: the whole history, 3 at a time");
            // the same in one page of the default size
            let one = r.ok(&path, "");
            assert_eq!(one["cursor"], "", "{flavour}");
            assert_eq!(one["items"].as_array().unwrap().len(), want.len());

            // kind, ca-filter, from-only / to-only, exclude-zero-klay, a block range
            let only = |q: &str, keep: &dyn Fn(&Value) -> bool| {
                let got: Vec<Value> = r.pages(&path, q, 2).iter().map(essence).collect();
                let want: Vec<Value> = want.iter().filter(|v| keep(v)).cloned().collect();
                assert_eq!(got, want, "{flavour} {who} {q}");
            };
            only("kind=ft,mt", &|v| {
                v["transferType"] == "ft" || v["transferType"] == "mt"
            });
            only("kind=klay", &|v| v["transferType"] == "klay");
            let nft = r.addr("nft");
            only(&format!("ca-filter={nft}"), &|v| v["transferType"] == "nft");
            only("from-only=true", &|v| v["from"] == a);
            only("to-only=true", &|v| v["to"] == a);
            only("exclude-zero-klay=true", &|v| {
                v["transferType"] != "klay" || v["value"] != "0x0"
            });
        }
        // the full items of one account, field by field for a few
        let a = r.addr("A");
        let items = r.ok(&format!("/transfer/account/{a}"), "")["items"]
            .as_array()
            .unwrap()
            .clone();
        let ft = items.iter().find(|i| i["transferType"] == "ft").unwrap();
        assert_eq!(ft["contract"]["name"], "Fixture Token", "{ft}");
        assert_eq!(ft["contract"]["symbol"], "FXT");
        assert_eq!(ft["contract"]["decimals"], 18);
        assert!(ft["transaction"]["blockNumber"].is_u64() && ft["transaction"]["typeInt"].is_u64());
        assert!(ft["transaction"]["fee"].as_str().unwrap().starts_with("0x"));
        assert!(ft["formattedValue"].is_string());
        let klay = items.iter().find(|i| i["transferType"] == "klay").unwrap();
        for k in [
            "status",
            "transactionIndex",
            "blockNumber",
            "typeInt",
            "timestamp",
            "feeRatio",
        ] {
            assert!(klay[k].is_u64(), "{flavour}: klay {k} in {klay}");
        }
        // a fee-delegated tx names its payer
        let delegated = r.txs.iter().find(|(_, t)| t.fee_payer.is_some()).unwrap();
        let (_, v) = r.get(&format!("/transfer/tx/{}", hex(&delegated.1.hash)), "");
        let k = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["transferType"] == "klay")
            .unwrap();
        assert_eq!(k["feePayer"], hex(&delegated.1.fee_payer.unwrap()), "{flavour}");

        // a block range (hex: block numbers), and the same span in unix seconds
        let blocks: Vec<u64> = r.history_of(&a).iter().map(|w| w.0).collect();
        let (lo, hi) = (blocks[blocks.len() - 1] + 4, blocks[0] - 4);
        let got = r.pages(&format!("/transfer/account/{a}"), &format!("range={lo:#x},{hi:#x}"), 2);
        let n = blocks.iter().filter(|b| (lo..=hi).contains(b)).count();
        assert!(n > 0 && n < blocks.len(), "{flavour}: the range must cut");
        assert_eq!(got.len(), n, "{flavour}: blocks {lo}..={hi}");
        let ts = |b: u64| {
            let block = r.f["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["number"] == b)
                .unwrap_or_else(|| panic!("block {b}"));
            u64::from_str_radix(
                block["block"]["timestamp"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap()
        };
        let near: Vec<u64> = blocks.iter().copied().filter(|b| (lo..=hi).contains(b)).collect();
        let (t_lo, t_hi) = (ts(*near.last().unwrap()), ts(near[0]));
        let by_time = r.pages(&format!("/transfer/account/{a}"), &format!("range={t_lo},{t_hi}"), 2);
        assert_eq!(
            essence_all(&by_time),
            essence_all(&got),
            "{flavour}: seconds {t_lo}..={t_hi}"
        );

        // one tx: a batch is one item with its ids and values, then the tx's KLAY
        let batch = r.f["expected"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "mt" && e["batch_pos"] == 2)
            .unwrap();
        let v = r.ok(&format!("/transfer/tx/{}", batch["tx_hash"].as_str().unwrap()), "");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{flavour}: {v}");
        assert_eq!(items[0]["transferType"], "mt");
        assert_eq!(items[0]["ids"].as_array().unwrap().len(), 3);
        assert_eq!(items[0]["operator"], r.addr("A"));
        assert_eq!(items[1]["transferType"], "klay");
        assert!(v.get("cursor").is_none(), "this answer has no cursor in KAS");
        let none = r.ok(&format!("/transfer/tx/0x{}", "ab".repeat(32)), "");
        assert_eq!(none, json!({"items": []}));

        // presets: the union of their accounts, newest first, each transfer once
        let (status, p) = r.call(
            "POST",
            "/preset",
            "",
            json!({"name": "ab", "addresses": [r.addr("A"), r.addr("B")]})
                .to_string()
                .as_bytes(),
            Scope::Key("k1"),
        );
        assert_eq!(status, 201, "{p}");
        let id = p["id"].as_i64().unwrap();
        let mut want: Vec<(u64, u32, i64, Value)> = r.history_of(&r.addr("A"));
        want.extend(r.history_of(&r.addr("B")));
        want.sort_by_key(|b| std::cmp::Reverse((b.0, b.1, b.2)));
        want.dedup_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2));
        let got: Vec<Value> = r
            .pages("/transfer", &format!("presets={id}"), 4)
            .iter()
            .map(essence)
            .collect();
        let want: Vec<Value> = want.into_iter().map(|w| w.3).collect();
        assert_eq!(got, want, "{flavour}: preset A+B");
    }
}

#[test]
fn contracts_tokens_and_holdings_as_the_contracts_answer() {
    for flavour in ["klaytn", "kaia"] {
        let r = Recorded::load(flavour);
        let calls = r.f["state"]["calls"].as_array().unwrap().clone();
        let answered = |contract: &str, method: &str| -> Vec<(Vec<String>, Value)> {
            calls
                .iter()
                .filter(|c| c["contract"] == contract && c["method"] == method)
                .map(|c| {
                    let args = c["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_owned());
                    (args.collect(), c["decoded"].clone())
                })
                .collect()
        };
        let (ft, nft, mt) = (r.addr("ft"), r.addr("nft"), r.addr("mt"));

        // FT: the detail, its supply kept from mints and burns = totalSupply() at the end
        let d = r.ok(&format!("/contract/ft/{ft}"), "");
        let supply = answered("ft", "totalSupply()")[0].1.as_str().unwrap().to_owned();
        assert_eq!(d["totalSupply"], qty(&supply), "{flavour}: {d}");
        assert_eq!(
            (d["name"].as_str(), d["symbol"].as_str(), d["decimals"].as_u64()),
            (Some("Fixture Token"), Some("FXT"), Some(18))
        );
        assert_eq!(
            (d["type"].as_str(), d["status"].as_str()),
            (Some("KIP-7"), Some("completed"))
        );
        assert!(d["createdAt"].as_u64().unwrap() > 1_600_000_000);
        let list = r.ok("/contract/ft", "");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["items"][0], d);
        assert_eq!(r.ok("/contract/ft", "type=ERC-20")["items"], json!([]));
        assert_eq!(r.ok("/contract/ft", "status=failed")["items"], json!([]));
        assert_eq!(r.ok("/contract/nft", "")["items"][0]["type"], "KIP-17");
        assert_eq!(r.ok(&format!("/contract/mt/{mt}"), "")["type"], "KIP-37");
        // a contract of another kind is not found as this one
        assert_eq!(r.get(&format!("/contract/nft/{ft}"), "").0, 404);

        // NFTs: the living ones with their owners and URIs; a burned one is gone
        let owners = answered("nft", "ownerOf(uint256)");
        let living: Vec<&(Vec<String>, Value)> = owners.iter().filter(|(_, o)| o.is_string()).collect();
        let tokens = r.pages(&format!("/contract/nft/{nft}/token"), "", 1);
        assert_eq!(tokens.len(), living.len(), "{flavour}: {tokens:?}");
        for (args, owner) in &living {
            let t = tokens.iter().find(|t| t["tokenId"] == qty(&args[0])).unwrap();
            assert_eq!(t["owner"], *owner, "{flavour}: {t}");
            let uri = answered("nft", "tokenURI(uint256)")
                .into_iter()
                .find(|(a, _)| a[0] == args[0])
                .map(|(_, u)| u)
                .unwrap();
            assert_eq!(t["tokenUri"], uri);
            assert_eq!(r.ok(&format!("/contract/nft/{nft}/token/{}", qty(&args[0])), ""), *t);
            let mine = r.ok(&format!("/contract/nft/{nft}/owner/{}", owner.as_str().unwrap()), "");
            assert!(mine["items"].as_array().unwrap().contains(t), "{flavour}: {mine}");
        }
        let burned = owners.iter().find(|(_, o)| o.is_null()).unwrap();
        let (status, e) = r.get(&format!("/contract/nft/{nft}/token/{}", qty(&burned.0[0])), "");
        assert_eq!((status, e["code"].as_u64()), (404, Some(1040400)), "{e}");
        let d = r.ok(&format!("/contract/nft/{nft}"), "");
        assert_eq!(d["totalSupply"], format!("{:#x}", living.len()));
        let holders: std::collections::BTreeSet<String> = living.iter().map(|(_, o)| o.to_string()).collect();
        assert_eq!(
            r.ok(&format!("/contract/nft/{nft}/holder"), "")["totalHolder"],
            holders.len(),
            "{flavour}"
        );
        // an NFT's ownership changes, newest first, its mint included
        let first = &living[0].0[0];
        let moves: Vec<(Value, Value)> = r.f["expected"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "nft" && e["token_id"].as_str() == Some(first))
            .map(|e| (e["from"].clone(), e["to"].clone()))
            .rev()
            .collect();
        let got: Vec<(Value, Value)> = r
            .pages(&format!("/contract/nft/{nft}/token/{}/history", qty(first)), "", 1)
            .iter()
            .map(|h| (h["from"].clone(), h["to"].clone()))
            .collect();
        assert_eq!(got, moves, "{flavour}");

        // MTs: every id with its supply (the sum of the balances the contract reports) and URI
        let balances = answered("mt", "balanceOf(address,uint256)");
        let mut supply: BTreeMap<String, U256> = BTreeMap::new();
        for (args, b) in &balances {
            let b = U256::from_str_radix(b.as_str().unwrap_or(&b.to_string()), 10).unwrap();
            *supply.entry(args[1].clone()).or_default() += b;
        }
        let ids = r.pages(&format!("/contract/mt/{mt}/token"), "", 2);
        assert_eq!(ids.len(), supply.len(), "{flavour}: {ids:?}");
        for t in &ids {
            let id = U256::from_str_radix(t["tokenId"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
            assert_eq!(
                t["totalSupply"],
                format!("{:#x}", supply[&id.to_string()]),
                "{flavour} {t}"
            );
            assert_eq!(t["tokenUri"], "https://fixtures.kengate.test/mt/{id}.json");
        }
        // holders of each id, and each holder's ids, as balanceOf says
        let mut total: BTreeMap<String, U256> = BTreeMap::new();
        for (args, b) in &balances {
            let b = U256::from_str_radix(b.as_str().unwrap_or(&b.to_string()), 10).unwrap();
            let (holder, id) = (&args[0], qty(&args[1]));
            *total.entry(holder.to_lowercase()).or_default() += b;
            let path = format!("/contract/mt/{mt}/owner/{holder}/token/{id}");
            match b.is_zero() {
                true => assert_eq!(r.get(&path, "").0, 404, "{flavour} {path}"),
                false => {
                    let one = r.ok(&path, "");
                    assert_eq!(one["balance"], format!("{b:#x}"), "{flavour} {path}");
                    let of_id = r.pages(&format!("/contract/mt/{mt}/token/{id}"), "", 1);
                    assert!(of_id.contains(&one), "{flavour}: {one} among {of_id:?}");
                }
            }
        }
        for (holder, sum) in &total {
            let v = r.ok(&format!("/contract/mt/{mt}/owner/{holder}"), "size=1");
            assert_eq!(v["totalBalance"], format!("{sum:#x}"), "{flavour} {holder}");
        }
        let mt_holders = total.values().filter(|v| !v.is_zero()).count();
        assert_eq!(
            r.ok(&format!("/contract/mt/{mt}/holder"), "")["totalHolder"],
            mt_holders
        );

        // An account's holdings: FT balance = balanceOf, NFTs = ownerOf, MT balances
        for who in ["A", "B", "C", "D"] {
            let a = r.addr(who);
            let items = r.pages(&format!("/account/{a}/token"), "", 2);
            let ft_balance = answered("ft", "balanceOf(address)")
                .into_iter()
                .find(|(args, _)| args[0].eq_ignore_ascii_case(&a))
                .map(|(_, b)| b.as_str().unwrap_or(&b.to_string()).to_owned())
                .unwrap();
            let got_ft = items.iter().find(|i| i["kind"] == "ft").map(|i| i["balance"].clone());
            match ft_balance.as_str() {
                "0" => assert_eq!(got_ft, None, "{flavour} {who}"),
                b => assert_eq!(got_ft, Some(json!(qty(b))), "{flavour} {who}"),
            }
            let nfts: Vec<&Value> = items.iter().filter(|i| i["kind"] == "nft").collect();
            let owned = living.iter().filter(|(_, o)| o.as_str() == Some(a.as_str())).count();
            assert_eq!(nfts.len(), owned, "{flavour} {who}");
            let mts: U256 = items
                .iter()
                .filter(|i| i["kind"] == "mt")
                .map(|i| U256::from_str_radix(i["balance"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
                .fold(U256::ZERO, |a, b| a + b);
            assert_eq!(mts, total.get(&a).copied().unwrap_or_default(), "{flavour} {who}");
            for i in &items {
                assert!(
                    i["lastTransfer"]["transactionHash"].as_str().unwrap().len() == 66,
                    "{i}"
                );
            }
            // by contract: one entry per contract, the sums of the above
            let contracts = r.pages(&format!("/account/{a}/contract"), "", 1);
            let kinds: Vec<&str> = contracts.iter().map(|c| c["kind"].as_str().unwrap()).collect();
            let want_kinds: Vec<&str> = [
                ("ft", got_ft.is_some()),
                ("nft", !nfts.is_empty()),
                ("mt", !mts.is_zero()),
            ]
            .into_iter()
            .filter_map(|(k, held)| held.then_some(k))
            .collect();
            assert_eq!(kinds, want_kinds, "{flavour} {who}: {contracts:?}");
            if let Some(c) = contracts.iter().find(|c| c["kind"] == "mt") {
                assert_eq!(c["totalBalance"], format!("{mts:#x}"));
            }
            // kind and ca-filters
            let only_mt = r.pages(&format!("/account/{a}/token"), &format!("kind=mt&ca-filters={mt}"), 5);
            assert!(only_mt.iter().all(|i| i["kind"] == "mt"), "{flavour}");
            assert_eq!(
                only_mt.len(),
                items.iter().filter(|i| i["kind"] == "mt").count(),
                "{flavour} {who}"
            );
        }
    }
}

#[test]
fn bad_queries_get_kas_errors_never_a_wrong_page() {
    let r = Recorded::load("klaytn");
    let a = r.addr("A");
    let acct = format!("/transfer/account/{a}");
    let err = |path: &str, query: &str| {
        let (status, v) = r.get(path, query);
        (
            status,
            v["code"].as_u64().unwrap_or(0),
            v["message"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(err(&acct, "kind=coin").0, 400);
    assert_eq!(err(&acct, "size=1001").1, 1040011);
    assert_eq!(err(&acct, "size=-3").1, 1040011);
    assert_eq!(err(&acct, "size=ten").1, 1040010);
    assert_eq!(err(&acct, "range=0x10,5").1, 1040010);
    assert_eq!(err(&acct, "range=9,5").1, 1040011);
    assert_eq!(
        err(&acct, "from-only=true&to-only=true").2,
        "[InvalidQueryParameterValue]both from-only and to-only could not be true"
    );
    assert_eq!(err(&acct, "ca-filter=0x12").1, 1040010);
    assert_eq!(
        err("/transfer/account/0xzz", "").2,
        "[InvalidUriValue]invalid account address"
    );
    assert_eq!(err("/transfer/tx/0x12", "").1, 1040020);
    assert_eq!(err("/transfer", "").2, "[InvalidQueryParameterValue]required presets");
    assert_eq!(err("/transfer", "presets=77").0, 404);
    assert_eq!(err("/account/0x12/token", "").1, 1040020);
    assert_eq!(
        err(&format!("/account/{a}/token"), "kind=klay").2,
        "[InvalidQueryParameterValue]invalid kind:klay"
    );
    assert_eq!(
        err(&format!("/contract/nft/{}/token/12", r.addr("nft")), "").2,
        "[InvalidUriValue]invalid token id"
    );
    assert_eq!(err("/contract/ft", "status=done").1, 1040010);
    assert_eq!(err("/contract/coin", "").1, 1010007);
    // a cursor from another query is refused, not read as a position of this one
    let page = r.ok(&acct, "size=2");
    let cursor = page["cursor"].as_str().unwrap();
    assert!(!cursor.is_empty());
    for (path, query) in [
        (
            format!("/transfer/account/{}", r.addr("B")),
            format!("size=2&cursor={cursor}"),
        ),
        (acct.clone(), format!("kind=ft&size=2&cursor={cursor}")),
        (acct.clone(), format!("size=2&cursor={}x", cursor)),
        (acct.clone(), "cursor=bm90LWEtY3Vyc29y".to_owned()),
    ] {
        assert_eq!(
            err(&path, &query).2,
            "[InvalidQueryParameterValue]invalid cursor",
            "{path}?{query}"
        );
    }
    // the same query with another size takes it
    assert_eq!(r.get(&acct, &format!("size=5&cursor={cursor}")).0, 200);

    // presets: a key sees and changes only its own; bad bodies are named
    let body = |v: Value| v.to_string().into_bytes();
    let (s, p) = r.call(
        "POST",
        "/preset",
        "",
        &body(json!({"name": "mine", "addresses": [a]})),
        Scope::Key("k1"),
    );
    assert_eq!(s, 201, "{p}");
    let path = format!("/preset/{}", p["id"]);
    assert_eq!(r.call("GET", &path, "", b"", Scope::Key("k2")).0, 404);
    assert_eq!(r.call("DELETE", &path, "", b"", Scope::Key("k2")).0, 404);
    assert_eq!(
        r.call("GET", "/preset", "", b"", Scope::Key("k2")).1["items"],
        json!([])
    );
    assert_eq!(
        r.call("GET", "/preset", "", b"", Scope::All).1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        r.call(
            "GET",
            "/transfer",
            &format!("presets={}", p["id"]),
            b"",
            Scope::Key("k2")
        )
        .0,
        404
    );
    let (s, v) = r.call(
        "PUT",
        &path,
        "",
        &body(json!({"name": "mine", "addresses": [r.addr("B")]})),
        Scope::Key("k1"),
    );
    assert_eq!((s, v["addresses"][0].as_str()), (200, Some(r.addr("B").as_str())));
    for (b, field) in [
        (json!({"addresses": [a]}), "name"),
        (json!({"name": "x", "addresses": []}), "addresses"),
        (json!({"name": "x", "addresses": ["0x12"]}), "addresses"),
        (json!({"name": "x", "addresses": [a], "contracts": "0x1"}), "contracts"),
    ] {
        let (s, v) = r.call("POST", "/preset", "", &body(b), Scope::Key("k1"));
        assert_eq!(s, 400, "{v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    let (s, _) = r.call("DELETE", &path, "", b"", Scope::Key("k1"));
    assert_eq!(s, 200);
    assert_eq!(r.call("GET", &path, "", b"", Scope::Key("k1")).0, 404);
}

/// Over HTTP: `/v2/...` picks the network by `x-chain-id`, takes Basic auth with an access
/// key, checks the key's REST groups, answers KAS-shaped refusals, and lists what the index
/// built from the served head.
#[tokio::test]
async fn over_http_with_access_keys_and_chain_ids() {
    use base64::Engine as _;
    let fakes = fake::cluster(&[12, 12, 12]).await;
    for f in &fakes {
        f.set_chain(true);
    }
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.index.enabled = true;
    cfg.auth.enabled = true;
    cfg.auth.keys = vec![
        kengate::config::KeyConfig {
            scope: kengate::config::KeyScope {
                methods: vec!["kas_tokenHistory".into()],
                ..Default::default()
            },
            ..kengate::config::KeyConfig::new("reader", "reader-secret-0123456789")
        },
        kengate::config::KeyConfig::new("full", "full-secret-0123456789"),
    ];
    let gate = Gate::start(cfg).await;
    gate.wait_status("indexed to 12", |s| s["index"]["indexed_head"] == 12)
        .await;
    let http = crate::support::client::Http::default();
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let get = |path: &str, auth: Option<String>, chain: Option<&str>| {
        let (http, url) = (http.clone(), format!("{}/v2{path}", gate.url));
        let chain = chain.map(str::to_owned);
        async move {
            let mut h: Vec<(&str, &str)> = Vec::new();
            if let Some(a) = &auth {
                h.push(("authorization", a));
            }
            if let Some(c) = &chain {
                h.push(("x-chain-id", c));
            }
            let r = http.get_with_headers(&url, &h).await;
            (r.status, r.json())
        }
    };
    let sender = format!("0x{}", "11".repeat(20));
    let reader = || Some(basic("reader", "reader-secret-0123456789"));
    let (status, v) = get(&format!("/transfer/account/{sender}?size=5"), reader(), Some("1337")).await;
    assert_eq!(status, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(
        items[0]["transaction"]["blockNumber"], 12,
        "newest first, at the served head: {v}"
    );
    assert_eq!(items[0]["transferType"], "ft");
    assert_eq!(items[0]["contract"]["symbol"], "FAKE");
    assert!(!v["cursor"].as_str().unwrap().is_empty());

    // refusals in KAS's shape
    let (status, v) = get("/contract/ft", None, None).await;
    assert_eq!((status, v["code"].as_u64()), (401, Some(1010009)), "{v}");
    let (status, v) = get("/contract/ft", Some(basic("reader", "wrong-secret-0123456789")), None).await;
    assert_eq!((status, v["code"].as_u64()), (401, Some(1010009)), "{v}");
    let (status, v) = get("/preset", reader(), None).await;
    assert_eq!(status, 403, "the reader's key has no kas_preset: {v}");
    assert!(v["message"].as_str().unwrap().contains("kas_preset"), "{v}");
    let (status, v) = get("/contract/ft", reader(), Some("8217")).await;
    assert!(
        (400..500).contains(&status),
        "no network with chain id 8217: {status} {v}"
    );
    assert!(v["code"].is_u64() && v["message"].is_string(), "{v}");
    let (status, v) = get("/contract/ft", Some(basic("full", "full-secret-0123456789")), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"][0]["symbol"], "FAKE");
    gate.stop().await;

    // the index off: a KAS-shaped 404
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    let r = http.get(&format!("{}/v2/contract/ft", gate.url)).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("[index] enabled"));
    gate.stop().await;
}
