//! The embedded index against fake nodes serving a linked chain: it follows the served head
//! (never above it), shows its progress in `/status`, and a restart resumes from its
//! checkpoint with every block once.

use kengate::index::IndexDb;

use crate::support::fake::{self, Fake};
use crate::support::gate::{test_config, Gate};

async fn chain(head: u64) -> Vec<Fake> {
    let fakes = fake::cluster(&[head, head, head]).await;
    for f in &fakes {
        f.set_chain(true);
    }
    fakes
}

fn indexed(s: &serde_json::Value) -> Option<u64> {
    s["index"]["indexed_head"].as_u64()
}

#[tokio::test]
async fn the_index_follows_the_served_head_and_resumes_after_a_restart() {
    let fakes = chain(20).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.index.enabled = true;
    let file = cfg.index.file(&cfg.store.path);
    let gate = Gate::start(cfg.clone()).await;
    let s = gate.wait_status("indexed to 20", |s| indexed(s) == Some(20)).await;
    assert_eq!(s["index"]["lag"], 0, "{s}");
    assert!(s["index"]["halted"].is_null(), "{s}");
    let http = crate::support::client::Http::default();
    let m = String::from_utf8(http.get(&format!("{}/metrics", gate.url)).await.body.to_vec()).unwrap();
    assert!(m.contains("kengate_index_head{network=\"klaytn\"} 20"), "{m}");
    assert!(m.contains("kengate_index_halted{network=\"klaytn\"} 0"), "{m}");

    // One node two blocks behind (in sync still, within max_lag): the served head holds at
    // its head, and so does the index.
    fakes[0].set_head(22);
    fakes[1].set_head(22);
    gate.wait_status("the others at 22", |s| s["highest_head"] == 22).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let s = gate.status().await;
    assert_eq!(s["served_head"], 20, "the scenario: {s}");
    assert_eq!(indexed(&s), Some(20), "indexed above the served head: {s}");
    for f in &fakes {
        f.set_head(25);
    }
    gate.wait_status("indexed to 25", |s| indexed(s) == Some(25)).await;
    gate.stop().await;

    for f in &fakes {
        f.set_head(30);
    }
    let gate = Gate::start(cfg).await;
    gate.wait_status("indexed to 30", |s| indexed(s) == Some(30)).await;
    gate.stop().await;
    let db = IndexDb::open(&file).unwrap();
    // blocks 0..=30, one tx and two transfers (KLAY value, ERC-20) each, each once
    assert_eq!(db.counts("klaytn").unwrap(), (31, 62));
}

/// Every extraction rule against blocks recorded from real Klaytn v1.12.1 and Kaia v2.2.1
/// nodes (`examples/index-fixtures/record.js`): KIP-7 mints, transfers, burns and a
/// fee-delegated one; KIP-17 mints, transfers, safe transfers and a burn; KIP-37 single and
/// batch mints, transfers, an operator's transfer and a burn; KLAY values of legacy and
/// fee-delegated txs; two failed txs (no transfer); a contract whose logs lie about their
/// shape (none taken). The transfers found must be exactly the ones the recorder made.
#[test]
fn extraction_matches_what_real_nodes_recorded() {
    use kengate::index::extract::{extract, Kind};
    use ruint::aliases::U256;
    use serde_json::Value;

    let hex = |b: &[u8]| format!("0x{}", hex::encode(b));
    for flavour in ["klaytn", "kaia"] {
        let path = format!("{}/tests/fixtures/index/{flavour}.json", env!("CARGO_MANIFEST_DIR"));
        let f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut got = Vec::new();
        let mut txs = Vec::new();
        for b in f["blocks"].as_array().unwrap() {
            let block = serde_json::value::RawValue::from_string(b["block"].to_string()).unwrap();
            let receipts = serde_json::value::RawValue::from_string(b["receipts"].to_string()).unwrap();
            let rows = extract(&block, &receipts).unwrap_or_else(|e| panic!("{flavour}: {e}"));
            for t in &rows.transfers {
                got.push(serde_json::json!({
                    "kind": t.kind.as_str(),
                    "contract": t.contract.map(|c| hex(&c)),
                    "from": hex(&t.from),
                    "to": hex(&t.to),
                    "value": t.value.to_string(),
                    "token_id": t.token_id.map(|i| i.to_string()),
                    "tx_hash": hex(&t.tx_hash),
                    "block_number": rows.number,
                    "tx_index": t.tx_index,
                    "log_index": t.log_index,
                    "batch_pos": t.batch_pos,
                }));
                assert_eq!(t.kind == Kind::Klay, t.contract.is_none());
            }
            txs.extend(rows.txs.into_iter().map(|t| (rows.number, t)));
        }
        let expected = f["expected"].as_array().unwrap();
        assert_eq!(&got, expected, "{flavour}: transfers");
        // each recorded tx: sender, recipient, type, fee payer and ratio, status, created contract
        for want in f["txs"].as_array().unwrap() {
            let (n, tx) = txs
                .iter()
                .find(|(_, t)| hex(&t.hash) == want["hash"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{flavour}: {} not extracted", want["label"]));
            let label = &want["label"];
            assert_eq!(*n, want["block_number"].as_u64().unwrap(), "{flavour} {label}");
            assert_eq!(u64::from(tx.index), want["tx_index"].as_u64().unwrap(), "{label}");
            assert_eq!(hex(&tx.from), want["from"], "{flavour} {label}");
            assert_eq!(
                tx.to.map(|a| hex(&a)),
                want["to"].as_str().map(str::to_owned),
                "{label}"
            );
            assert_eq!(u64::from(tx.type_int), want["type_int"].as_u64().unwrap(), "{label}");
            assert_eq!(tx.success, want["status"] == 1, "{flavour} {label}");
            assert_eq!(
                tx.fee_payer.map(|a| hex(&a)),
                want["fee_payer"].as_str().map(str::to_owned),
                "{label}"
            );
            assert_eq!(tx.fee_ratio.map(u64::from), want["fee_ratio"].as_u64(), "{label}");
            assert_eq!(
                tx.contract_created.map(|a| hex(&a)),
                want["contract_created"].as_str().map(str::to_owned),
                "{flavour} {label}"
            );
            assert_eq!(
                tx.value,
                U256::from_str_radix(want["value"].as_str().unwrap(), 10).unwrap(),
                "{label}"
            );
        }
    }
}

/// The Etherscan-compatible API over the index: histories newest or oldest first, pages,
/// block ranges, by holder or by contract, never past what is indexed; Etherscan's envelope
/// and error strings.
#[tokio::test]
async fn the_etherscan_api_answers_from_the_index() {
    let fakes = chain(20).await;
    let mut cfg = test_config(&fake::urls(&fakes));
    cfg.index.enabled = true;
    let gate = Gate::start(cfg).await;
    gate.wait_status("indexed to 20", |s| indexed(s) == Some(20)).await;
    let http = crate::support::client::Http::default();
    let api = |q: &str| {
        let (http, url) = (http.clone(), format!("{}/api?{q}", gate.url));
        async move {
            let r = http.get(&url).await;
            assert_eq!(r.status, 200, "{url}");
            r.json()
        }
    };
    let sender = format!("0x{}", "11".repeat(20));
    let holder = format!("0x{}", "22".repeat(20));
    let token = format!("0x{}", "33".repeat(20));

    let r = api(&format!(
        "module=account&action=txlist&address={sender}&sort=desc&page=1&offset=5"
    ))
    .await;
    assert_eq!(
        (r["status"].as_str(), r["message"].as_str()),
        (Some("1"), Some("OK")),
        "{r}"
    );
    let blocks: Vec<&str> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["blockNumber"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, ["20", "19", "18", "17", "16"]);
    let t = &r["result"][0];
    assert_eq!(t["from"], sender);
    assert_eq!(t["to"], token);
    assert_eq!(t["value"], "1");
    assert_eq!(t["isError"], "0");
    assert_eq!(t["methodId"], "0xa9059cbb");
    assert_eq!(t["gasUsed"], "40000");
    // page 2, oldest first, a block range
    let r = api(&format!(
        "module=account&action=txlist&address={sender}&startblock=3&endblock=9&page=2&offset=3"
    ))
    .await;
    let blocks: Vec<&str> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["blockNumber"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, ["6", "7", "8"]);

    // token transfers, by holder and by contract
    let r = api(&format!(
        "module=account&action=tokentx&address={holder}&sort=desc&offset=2"
    ))
    .await;
    let t = &r["result"][0];
    assert_eq!(
        (t["value"].as_str(), t["contractAddress"].as_str()),
        (Some("20"), Some(token.as_str())),
        "{r}"
    );
    assert_eq!(t["from"], sender);
    // what the contract said about itself when first seen
    assert_eq!(
        (
            t["tokenName"].as_str(),
            t["tokenSymbol"].as_str(),
            t["tokenDecimal"].as_str()
        ),
        (Some("Fake Token"), Some("FAKE"), Some("18")),
        "{t}"
    );
    let r = api(&format!("module=account&action=tokentx&contractaddress={token}")).await;
    assert_eq!(r["result"].as_array().unwrap().len(), 21, "blocks 0..=20");
    let r = api(&format!("module=account&action=tokennfttx&address={holder}")).await;
    assert_eq!(
        (r["status"].as_str(), r["message"].as_str()),
        (Some("0"), Some("No transactions found"))
    );

    // Etherscan's errors
    let err = |r: serde_json::Value| {
        (
            r["status"].as_str().map(str::to_owned),
            r["result"].as_str().map(str::to_owned),
        )
    };
    let notok = |m: &str| (Some("0".to_owned()), Some(m.to_owned()));
    assert_eq!(
        err(api("module=account&action=txlist&address=0x12").await),
        notok("Error! Invalid address format")
    );
    assert_eq!(
        err(api("module=account&action=nope").await),
        notok("Error! Missing Or invalid Action name")
    );
    assert_eq!(
        err(api("action=txlist").await),
        notok("Error! Missing Or invalid Module name")
    );
    assert_eq!(
        err(api(&format!(
            "module=account&action=txlist&address={sender}&page=11&offset=1000"
        ))
        .await),
        notok("Result window is too large, PageNo x Offset size must be less than or equal to 10000")
    );
    // per network too
    let r = http
        .get(&format!(
            "{}/v1/klaytn/api?module=account&action=tokentx&contractaddress={token}&offset=1",
            gate.url
        ))
        .await;
    assert_eq!(r.json()["result"].as_array().unwrap().len(), 1);
    gate.stop().await;
}

/// `kengate index status` and `kengate index reset NETWORK` on the index file of a data dir.
#[test]
fn the_index_commands_show_and_reset_a_networks_index() {
    let dir = std::env::temp_dir().join(format!("kengate-index-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = IndexDb::open(&dir.join("index.db")).unwrap();
    let block = |n: u64| {
        let raw = |v: serde_json::Value| serde_json::value::RawValue::from_string(v.to_string()).unwrap();
        kengate::index::extract::extract(&raw(fake::chain_block(n)), &raw(fake::chain_receipts(n))).unwrap()
    };
    db.write("klaytn", &[block(0), block(1)], &[]).unwrap();
    drop(db);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
            .args(["--data-dir", dir.to_str().unwrap(), "--node", "http://127.0.0.1:9"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let s: serde_json::Value = serde_json::from_str(&run(&["index", "status"])).unwrap();
    assert_eq!(s[0]["network"], "klaytn");
    assert_eq!(
        (
            s[0]["indexed_head"].as_u64(),
            s[0]["txs"].as_u64(),
            s[0]["transfers"].as_u64()
        ),
        (Some(1), Some(2), Some(4))
    );
    run(&["index", "reset", "klaytn"]);
    let s: serde_json::Value = serde_json::from_str(&run(&["index", "status"])).unwrap();
    assert!(s[0]["indexed_head"].is_null(), "{s}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kengate"))
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--node",
            "http://127.0.0.1:9",
            "index",
            "reset",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no network named"));
}

/// The holdings kept from the transfers equal what the recorded contracts answered at the
/// last block: every FT `balanceOf`, NFT `ownerOf` (a burned token has no owner) and MT
/// `balanceOf(holder, id)` the recorder asked.
#[test]
fn holdings_kept_from_transfers_match_the_contracts_own_answers() {
    use ruint::aliases::U256;
    use serde_json::Value;

    let unhex = |s: &str| hex::decode(s.trim_start_matches("0x")).unwrap();
    for flavour in ["klaytn", "kaia"] {
        let path = format!("{}/tests/fixtures/index/{flavour}.json", env!("CARGO_MANIFEST_DIR"));
        let f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let db = IndexDb::in_memory().unwrap();
        let mut blocks = Vec::new();
        for b in f["blocks"].as_array().unwrap() {
            let raw = |v: &Value| serde_json::value::RawValue::from_string(v.to_string()).unwrap();
            blocks.push(kengate::index::extract::extract(&raw(&b["block"]), &raw(&b["receipts"])).unwrap());
        }
        // the blocks are not consecutive: write them one at a time
        for b in &blocks {
            db.write("n", std::slice::from_ref(b), &[]).unwrap();
        }
        // written again: nothing counts twice
        db.write("n", &blocks[blocks.len() - 3..], &[]).unwrap();
        let mut checked = 0;
        for c in f["state"]["calls"].as_array().unwrap() {
            let contract = unhex(c["address"].as_str().unwrap());
            let arg = |i: usize| c["args"][i].as_str().unwrap_or("").to_owned();
            let id = |s: &str| U256::from_str_radix(s, 10).unwrap().to_be_bytes::<32>();
            let want = &c["decoded"];
            match (c["contract"].as_str().unwrap(), c["method"].as_str().unwrap()) {
                ("ft", "balanceOf(address)") => {
                    let got = db.ft_balance("n", &contract, &unhex(&arg(0))).unwrap();
                    assert_eq!(
                        got.to_string(),
                        want.as_str().unwrap_or(&want.to_string()),
                        "{flavour} {c}"
                    );
                }
                ("nft", "ownerOf(uint256)") => {
                    let got = db.nft_owner("n", &contract, &id(&arg(0))).unwrap();
                    let want = want.as_str().map(unhex);
                    assert_eq!(got, want, "{flavour} {c}");
                }
                ("mt", "balanceOf(address,uint256)") => {
                    let got = db.mt_balance("n", &contract, &id(&arg(1)), &unhex(&arg(0))).unwrap();
                    assert_eq!(
                        got.to_string(),
                        want.as_str().unwrap_or(&want.to_string()),
                        "{flavour} {c}"
                    );
                }
                _ => continue,
            }
            checked += 1;
        }
        assert!(checked >= 20, "{flavour}: only {checked} answers checked");
    }
}
