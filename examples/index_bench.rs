//! Store benchmark of the embedded index (issue 13), for `scripts/bench-index`: how fast
//! synthetic blocks go into the index file, and how fast the KAS account history is read back
//! once it holds millions of transfers.
//!
//! ```sh
//! cargo run --release --example index_bench -- [--transfers 10000000] [--dir /tmp/kengate-index-bench]
//! ```
//!
//! **Data.** Synthetic blocks as [`kengate::index::extract`] would read them from the node (one
//! second apart, each linked to its parent's hash, `--txs-per-block` transactions each), with a
//! [`ContractRow`] for each token contract in the batch where it first moves, written with
//! [`IndexDb::write_with`]. Transactions, in block order, each moving something:
//!
//! | share | transaction | transfers |
//! |--:|---|---|
//! | 68 % | KIP-7 `transfer` (1 in 50 a mint from the zero address) | 1 FT |
//! | 10 % | KLAY value transfer (type 0x08) | 1 KLAY |
//! | 8 % | a swap: two KIP-7 transfers through a pool address, and KLAY sent along | 1 KLAY + 2 FT |
//! | 7 % | KIP-17 `transferFrom` (3 in 10 a mint) | 1 NFT |
//! | 4 % | KIP-37 `TransferSingle` | 1 MT |
//! | 2 % | KIP-37 `TransferBatch` of 4 ids | 4 MT (one event) |
//! | 1 % | a KIP-7 transfer that failed (status 0) | none |
//!
//! Senders and recipients are drawn from `--accounts` addresses with a Zipf law (exponent
//! `--zipf`: with 1.0 the busiest account is in ~8 % of the draws, the 1,000th in ~0.008 %),
//! so a few accounts have histories of hundreds of thousands of transfers and most have a few
//! dozen; token contracts likewise from `--contracts` (80 % KIP-7, 15 % KIP-17, 5 % KIP-37).
//! Everything is derived from `--seed`, so `--reuse --keep` can time the reads again on a file.
//!
//! **Writes.** The first `--transfers` − `--measure` transfers are a bulk load that only brings
//! the table to its size sooner (`--bulk-batch` blocks per store transaction and a
//! `--bulk-cache-mib` page cache: not the indexer's settings; the rows are the same). The last
//! `--measure` are written as the indexer writes — `--batch` blocks per store transaction
//! (`index.batch`, default 100), the file opened as `IndexDb::open` opens it — and timed:
//! the insert rate at that size. `--no-bulk` writes and times everything the indexer's way.
//!
//! **Reads.** The file is closed and opened again (SQLite's own cache empty, the OS page cache
//! as the writes left it), then about `--requests` KAS Token History requests go through the
//! real request path, [`kengate::index::kas::answer`], as the server calls it for
//! `GET /v2/transfer/account/{address}?kind=klay,ft,nft,mt&size=100`: first pages for accounts
//! drawn from the busiest 100, ranks 100–10,000 and the rest; deep pages, following the
//! cursor, of the 10 busiest accounts (50 pages each) and of 20 middle ones (10 pages); first
//! pages of the 50 busiest token contracts (each call to a contract is a KLAY transfer to it).
//! Each group stops after `--read-budget-s`. Then the store query behind Etherscan's `tokentx`
//! ([`IndexDb::transfers_of`], kind `ft`, `page=1&offset=100`, both sorts; its JSON shaping
//! not included) for a few accounts of each group, within `--tokentx-budget-s`.
//!
//! **Experiments** (each labelled as such in the report; kengate does none of them):
//! `--analyze` times the reads a second time after `ANALYZE`, `--cache-mib` and `--mmap-mib`
//! give the measured writes and the reads another page cache or mapping than kengate's.
//!
//! Prints a markdown report on stdout (progress on stderr); removes the file at the end unless
//! `--keep`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use kengate::index::contracts::Meta;
use kengate::index::db::{sealed_path, ContractRow, IndexDb, Page, Tuning};
use kengate::index::extract::{Address, BlockRows, Hash, Kind, Transfer, TxRow};
use kengate::index::kas::{answer, Request, Scope};
use ruint::aliases::U256;

const NET: &str = "klaytn";

#[derive(Parser, Debug)]
#[command(about = "Store benchmark of kengate's embedded index (insert rate, KAS account-history latency)")]
struct Args {
    /// Transfers to write.
    #[arg(long, default_value_t = 10_000_000)]
    transfers: u64,
    /// Directory of the index file (created; the file is `index.db` in it).
    #[arg(long, default_value = "/tmp/kengate-index-bench")]
    dir: PathBuf,
    /// Blocks per store transaction of the measured writes (the indexer's `index.batch`).
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Transfers written last, as the indexer writes, and timed: the insert rate at the size.
    #[arg(long, default_value_t = 200_000)]
    measure: u64,
    /// Blocks per store transaction of the bulk load before them (not the indexer's setting:
    /// it only brings the table to its size sooner; the rows are the same).
    #[arg(long, default_value_t = 2_000)]
    bulk_batch: u64,
    /// Page cache of the bulk load, MiB.
    #[arg(long, default_value_t = 2_048)]
    bulk_cache_mib: u64,
    /// No bulk load: every transfer written as the indexer writes, and timed.
    #[arg(long)]
    no_bulk: bool,
    /// Transactions per block.
    #[arg(long, default_value_t = 20)]
    txs_per_block: u32,
    /// Distinct accounts.
    #[arg(long, default_value_t = 100_000)]
    accounts: usize,
    /// Distinct token contracts.
    #[arg(long, default_value_t = 1_000)]
    contracts: usize,
    /// Zipf exponent of the account and contract draws.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Seed of everything synthetic.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// KAS requests to time (about; split over the groups described above).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Seconds the `tokentx` queries may take in all.
    #[arg(long, default_value_t = 60)]
    tokentx_budget_s: u64,
    /// Use the index file in --dir as it is (filled by an earlier run with the same seed and
    /// pools): time the reads only.
    #[arg(long)]
    reuse: bool,
    /// With `--reuse`: first write this many more transfers as the indexer writes (`--batch`),
    /// timed, on top of what the file holds.
    #[arg(long, default_value_t = 0)]
    append: u64,
    /// No reads (only the writes and the sizes).
    #[arg(long)]
    no_reads: bool,
    /// Keep the index file (default: removed at the end).
    #[arg(long)]
    keep: bool,
    /// Skip the per-table sizes (`dbstat`, which reads the whole file).
    #[arg(long)]
    no_table_sizes: bool,
    /// Stop filling after this many seconds (the report says how far it got); 0: no limit.
    #[arg(long, default_value_t = 0)]
    fill_budget_s: u64,
    /// Seconds each group of read requests may take (the rest of the group is skipped).
    #[arg(long, default_value_t = 30)]
    read_budget_s: u64,
    /// Experiment, not what kengate does: after the reads, run `ANALYZE` (with `analysis_limit`
    /// 1000) on the file and time the reads again, with planner statistics.
    #[arg(long)]
    analyze: bool,
    /// Experiment, not what kengate does: a page cache of this many MiB for the measured writes
    /// and the reads instead of `index.cache_mib`'s default (0: the default).
    #[arg(long, default_value_t = 0)]
    cache_mib: u64,
    /// Also write the main figures to this file, as one JSON object (for `scripts/bench-index`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Experiment, not what kengate does: memory-map up to this many MiB of the file instead of
    /// `index.mmap_mib`'s default (0: the default; this SQLite build caps it at 2 GiB).
    #[arg(long, default_value_t = 0)]
    mmap_mib: u64,
    /// Experiment, not what kengate does: seal a window into a part every this many transfers
    /// and txs instead of `index.window_transfers`'s default (0: the default).
    #[arg(long, default_value_t = 0)]
    window_transfers: u64,
}

// ---- synthetic data ------------------------------------------------------------------------

/// splitmix64: a well-mixed 64-bit value of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `N` pseudo-random bytes naming item `n` of family `tag` (accounts, contracts, txs, blocks).
fn bytes_of<const N: usize>(seed: u64, tag: u64, n: u64) -> [u8; N] {
    let mut out = [0u8; N];
    let base = mix(seed ^ mix(tag << 56 ^ n));
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let w = mix(base.wrapping_add(i as u64)).to_be_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    out
}

const TAG_ACCOUNT: u64 = 1;
const TAG_CONTRACT: u64 = 2;
const TAG_TX: u64 = 3;
const TAG_BLOCK: u64 = 4;
const TAG_POOL: u64 = 5;

/// Draws ranks `0..n` with probability ∝ 1 / (rank + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let cdf = (0..n)
            .map(|r| {
                acc += 1.0 / ((r + 1) as f64).powf(s);
                acc
            })
            .collect();
        Self { cdf }
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> usize {
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let u = rng.f64() * total;
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }

    /// The share of draws that land on `rank`.
    fn share(&self, rank: usize) -> f64 {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let prev = if rank == 0 { 0.0 } else { self.cdf[rank - 1] };
        (self.cdf[rank] - prev) / total
    }
}

/// What a contract is (by its number: 80 % FT, 15 % NFT, 5 % MT, interleaved so that each
/// kind has busy and quiet ones).
fn contract_kind(i: usize) -> Kind {
    match i % 20 {
        0..=15 => Kind::Ft,
        16..=18 => Kind::Nft,
        _ => Kind::Mt,
    }
}

struct World {
    seed: u64,
    accounts: Vec<Address>,
    account_draw: Zipf,
    /// Contract addresses by kind, each list in rank order.
    ft: Vec<(usize, Address)>,
    nft: Vec<(usize, Address)>,
    mt: Vec<(usize, Address)>,
    ft_draw: Zipf,
    nft_draw: Zipf,
    mt_draw: Zipf,
    pools: Vec<Address>,
    /// Contracts already described (a [`ContractRow`] written).
    described: Vec<bool>,
}

impl World {
    fn new(a: &Args) -> Self {
        let accounts = (0..a.accounts as u64)
            .map(|i| bytes_of(a.seed, TAG_ACCOUNT, i))
            .collect();
        let by_kind = |k: Kind| -> Vec<(usize, Address)> {
            (0..a.contracts)
                .filter(|i| contract_kind(*i) == k)
                .map(|i| (i, bytes_of(a.seed, TAG_CONTRACT, i as u64)))
                .collect()
        };
        let (ft, nft, mt) = (by_kind(Kind::Ft), by_kind(Kind::Nft), by_kind(Kind::Mt));
        Self {
            seed: a.seed,
            account_draw: Zipf::new(a.accounts, a.zipf),
            ft_draw: Zipf::new(ft.len().max(1), a.zipf),
            nft_draw: Zipf::new(nft.len().max(1), a.zipf),
            mt_draw: Zipf::new(mt.len().max(1), a.zipf),
            ft,
            nft,
            mt,
            pools: (0..64).map(|i| bytes_of(a.seed, TAG_POOL, i)).collect(),
            accounts,
            described: vec![false; a.contracts],
        }
    }

    fn account(&self, rng: &mut fastrand::Rng) -> Address {
        self.accounts[self.account_draw.draw(rng)]
    }

    fn contract(&self, kind: Kind, rng: &mut fastrand::Rng) -> (usize, Address) {
        match kind {
            Kind::Nft => self.nft[self.nft_draw.draw(rng)],
            Kind::Mt => self.mt[self.mt_draw.draw(rng)],
            _ => self.ft[self.ft_draw.draw(rng)],
        }
    }
}

/// What one fill produced.
#[derive(Default, Clone, Copy)]
struct Counts {
    blocks: u64,
    txs: u64,
    transfers: u64,
}

impl Counts {
    fn add(&mut self, c: Counts) {
        self.blocks += c.blocks;
        self.txs += c.txs;
        self.transfers += c.transfers;
    }
}

struct Maker {
    rng: fastrand::Rng,
    next_block: u64,
    parent: Hash,
    tx_seq: u64,
}

const GWEI25: u64 = 25_000_000_000;
const ZERO: Address = [0; 20];

impl Maker {
    /// The next block, and the contracts it is the first to use.
    fn block(&mut self, w: &mut World, txs_per_block: u32, new: &mut Vec<ContractRow>) -> BlockRows {
        let number = self.next_block;
        let hash: Hash = bytes_of(w.seed, TAG_BLOCK, number);
        let mut b = BlockRows {
            number,
            hash,
            parent: self.parent,
            timestamp: 1_700_000_000 + number,
            txs: Vec::with_capacity(txs_per_block as usize),
            transfers: Vec::with_capacity(txs_per_block as usize * 5 / 4),
        };
        let mut log = 0u32;
        for index in 0..txs_per_block {
            self.tx(w, &mut b, index, &mut log, new);
        }
        self.next_block += 1;
        self.parent = hash;
        b
    }

    fn tx(&mut self, w: &mut World, b: &mut BlockRows, index: u32, log: &mut u32, new: &mut Vec<ContractRow>) {
        let rng = &mut self.rng;
        let hash: Hash = bytes_of(w.seed, TAG_TX, self.tx_seq);
        self.tx_seq += 1;
        let from = w.account(rng);
        let mut tx = TxRow {
            hash,
            index,
            from,
            nonce: self.tx_seq,
            gas: 150_000,
            to: None,
            value: U256::ZERO,
            type_int: 0,
            fee_payer: None,
            fee_ratio: None,
            gas_used: 52_000,
            gas_price: U256::from(GWEI25),
            success: true,
            contract_created: None,
            selector: Some([0xa9, 0x05, 0x9c, 0xbb]),
        };
        let token = |kind: Kind, contract: Address, from: Address, to: Address, value: U256, log: &mut u32| {
            let t = Transfer {
                kind,
                tx_hash: hash,
                tx_index: index,
                log_index: Some(*log),
                batch_pos: 0,
                contract: Some(contract),
                from,
                to,
                value,
                token_id: None,
                operator: None,
            };
            *log += 1;
            t
        };
        let klay = |to: Address, value: U256| Transfer {
            kind: Kind::Klay,
            tx_hash: hash,
            tx_index: index,
            log_index: None,
            batch_pos: 0,
            contract: None,
            from,
            to,
            value,
            token_id: None,
            operator: None,
        };
        let mut used: Vec<(usize, Address, Kind)> = Vec::new();
        match rng.u32(0..100) {
            // a KIP-7 transfer (1 in 50 a mint by the token's owner)
            0..=67 => {
                let (i, c) = w.contract(Kind::Ft, rng);
                let (src, dst) = match rng.u32(0..50) {
                    0 => (ZERO, from),
                    _ => (from, w.account(rng)),
                };
                tx.to = Some(c);
                b.transfers
                    .push(token(Kind::Ft, c, src, dst, U256::from(rng.u64(1..1 << 60)), log));
                used.push((i, c, Kind::Ft));
            }
            // KLAY
            68..=77 => {
                let to = w.account(rng);
                tx.to = Some(to);
                tx.type_int = 8;
                tx.gas = 21_000;
                tx.gas_used = 21_000;
                tx.selector = None;
                tx.value = U256::from(rng.u64(1..1 << 62));
                b.transfers.push(klay(to, tx.value));
            }
            // a swap through a pool: KLAY in, two FT transfers
            78..=85 => {
                let pool = w.pools[rng.usize(0..w.pools.len())];
                let (ia, a) = w.contract(Kind::Ft, rng);
                let (ib, c) = w.contract(Kind::Ft, rng);
                tx.to = Some(pool);
                tx.value = U256::from(rng.u64(1..1 << 60));
                tx.gas_used = 140_000;
                tx.selector = Some([0x7f, 0xf3, 0x6a, 0xb5]);
                b.transfers.push(klay(pool, tx.value));
                b.transfers
                    .push(token(Kind::Ft, a, from, pool, U256::from(rng.u64(1..1 << 60)), log));
                b.transfers
                    .push(token(Kind::Ft, c, pool, from, U256::from(rng.u64(1..1 << 60)), log));
                used.push((ia, a, Kind::Ft));
                used.push((ib, c, Kind::Ft));
            }
            // KIP-17 (3 in 10 a mint)
            86..=92 => {
                let (i, c) = w.contract(Kind::Nft, rng);
                let src = if rng.u32(0..10) < 3 { ZERO } else { from };
                tx.to = Some(c);
                tx.selector = Some([0x23, 0xb8, 0x72, 0xdd]);
                let mut t = token(Kind::Nft, c, src, w.account(rng), U256::from(1u8), log);
                t.token_id = Some(U256::from(rng.u64(0..20_000)));
                b.transfers.push(t);
                used.push((i, c, Kind::Nft));
            }
            // KIP-37 TransferSingle / TransferBatch of 4 ids
            93..=98 => {
                let (i, c) = w.contract(Kind::Mt, rng);
                let to = w.account(rng);
                tx.to = Some(c);
                tx.selector = Some([0xf2, 0x42, 0x43, 0x2a]);
                let ids = if rng.u32(0..6) < 4 { 1 } else { 4 };
                let at = *log;
                *log += 1;
                for pos in 0..ids {
                    b.transfers.push(Transfer {
                        kind: Kind::Mt,
                        tx_hash: hash,
                        tx_index: index,
                        log_index: Some(at),
                        batch_pos: pos,
                        contract: Some(c),
                        from,
                        to,
                        value: U256::from(rng.u64(1..100)),
                        token_id: Some(U256::from(rng.u64(0..100))),
                        operator: Some(from),
                    });
                }
                used.push((i, c, Kind::Mt));
            }
            // a failed KIP-7 transfer: the tx, no transfer
            _ => {
                let (_, c) = w.contract(Kind::Ft, rng);
                tx.to = Some(c);
                tx.success = false;
            }
        }
        for (i, address, kind) in used {
            if !w.described[i] {
                w.described[i] = true;
                new.push(ContractRow {
                    address,
                    kind,
                    first_block: b.number,
                    meta: Meta {
                        name: Some(format!("Bench Token {i}")),
                        symbol: Some(format!("BT{i}")),
                        decimals: (kind == Kind::Ft).then_some(18),
                        total_supply: Some(U256::from(10u64).pow(U256::from(27u8))),
                        interfaces: match kind {
                            Kind::Ft => vec!["erc20", "kip7"],
                            Kind::Nft => vec!["kip17"],
                            _ => vec!["kip37", "erc1155"],
                        },
                        status: "ok".into(),
                    },
                });
            }
        }
        b.txs.push(tx);
    }
}

// ---- fill ----------------------------------------------------------------------------------

/// One stretch of the fill (a line of the report).
struct Stretch {
    upto: u64,
    counts: Counts,
    write: Duration,
    wall: Duration,
}

struct Fill {
    /// What the table held before.
    before: Counts,
    /// What this fill wrote.
    total: Counts,
    /// Blocks per store transaction.
    batch: u64,
    /// The fill stopped at `--fill-budget-s`, short of `--transfers`.
    cut_short: bool,
    write: Duration,
    generate: Duration,
    wall: Duration,
    stretches: Vec<Stretch>,
    slowest_batch: Duration,
}

/// One fill: until `target` transfers are in the table (`before` of them already are), `batch`
/// blocks per store transaction; it stops early after `budget_s` seconds (0: no limit).
struct Plan {
    before: Counts,
    target: u64,
    batch: u64,
    budget_s: u64,
    /// Smaller batches near the target rather than past it (the bulk load, which must leave
    /// the measured writes their share).
    exact: bool,
}

fn fill(a: &Args, db: &IndexDb, w: &mut World, maker: &mut Maker, plan: Plan) -> Fill {
    let Plan {
        before,
        target,
        batch,
        budget_s,
        exact,
    } = plan;
    let step = (target.saturating_sub(before.transfers) / 10).max(1);
    let mut next_mark = before.transfers + step;
    let (mut total, mut since) = (Counts::default(), Counts::default());
    let (mut write, mut generate) = (Duration::ZERO, Duration::ZERO);
    let (mut since_write, mut since_wall) = (Duration::ZERO, Instant::now());
    let mut slowest_batch = Duration::ZERO;
    let mut stretches = Vec::new();
    let start = Instant::now();
    let budget = Duration::from_secs(budget_s);
    let out_of_time = || budget_s > 0 && start.elapsed() > budget;
    let mut cut_short = false;
    while before.transfers + total.transfers < target {
        if out_of_time() {
            cut_short = true;
            break;
        }
        let t0 = Instant::now();
        let mut new = Vec::new();
        // a block has about `txs_per_block` transfers or more
        let left = target.saturating_sub(before.transfers + total.transfers);
        let n = match exact {
            true => batch.min((left / u64::from(a.txs_per_block.max(1))).max(1)),
            false => batch,
        };
        let blocks: Vec<BlockRows> = (0..n).map(|_| maker.block(w, a.txs_per_block, &mut new)).collect();
        let mut c = Counts {
            blocks: blocks.len() as u64,
            ..Counts::default()
        };
        for b in &blocks {
            c.txs += b.txs.len() as u64;
            c.transfers += b.transfers.len() as u64;
        }
        let t1 = Instant::now();
        db.write_with(NET, &blocks, &new, &[]).expect("write a batch");
        if before.transfers + total.transfers + c.transfers >= target {
            // the last batch: a window being sealed on the sealer's thread counts too
            db.wait_sealed();
        }
        let took = t1.elapsed();
        generate += t1 - t0;
        write += took;
        since_write += took;
        slowest_batch = slowest_batch.max(took);
        for (sum, part) in [(&mut total, c), (&mut since, c)] {
            sum.add(part);
        }
        let upto = before.transfers + total.transfers;
        if upto >= next_mark || upto >= target || out_of_time() {
            let s = Stretch {
                upto,
                counts: since,
                write: since_write,
                wall: since_wall.elapsed(),
            };
            eprintln!(
                "index_bench: {:>11} transfers in ({:>9} blocks) — this stretch {:>7.0} transfers/s written, {:>6.0} txs/s; {:.0} s so far",
                fmt_n(upto),
                fmt_n(before.blocks + total.blocks),
                rate(s.counts.transfers, s.write),
                rate(s.counts.txs, s.write),
                start.elapsed().as_secs_f64()
            );
            stretches.push(s);
            since = Counts::default();
            since_write = Duration::ZERO;
            since_wall = Instant::now();
            next_mark = (upto / step + 1) * step;
        }
    }
    Fill {
        before,
        total,
        batch,
        cut_short,
        write,
        generate,
        wall: start.elapsed(),
        stretches,
        slowest_batch,
    }
}

// ---- reads ---------------------------------------------------------------------------------

/// Latencies of one group of requests.
#[derive(Default)]
struct Timings {
    name: String,
    took: Vec<Duration>,
    items: u64,
    /// Requests not made: the group ran out of `--read-budget-s`.
    skipped: u64,
}

impl Timings {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    fn add(&mut self, t: Duration, items: usize) {
        self.took.push(t);
        self.items += items as u64;
    }

    fn spent(&self) -> Duration {
        self.took.iter().sum()
    }

    fn pct(&self, p: f64) -> Duration {
        let mut v = self.took.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        // nearest rank
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    fn summary(&self) -> serde_json::Value {
        let msf = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        serde_json::json!({
            "n": self.took.len(),
            "skipped": self.skipped,
            "p50_ms": msf(self.pct(50.0)),
            "p99_ms": msf(self.pct(99.0)),
            "max_ms": msf(self.pct(100.0)),
        })
    }

    fn row(&self) -> String {
        let skipped = match self.skipped {
            0 => String::new(),
            n => format!(" ({n} more skipped: out of time)"),
        };
        format!(
            "| {} | {}{skipped} | {:.0} | {} | {} | {} |",
            self.name,
            self.took.len(),
            self.items as f64 / self.took.len().max(1) as f64,
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(self.pct(100.0))
        )
    }
}

/// One KAS account page: its time, item count and next cursor.
fn kas_page(db: &IndexDb, account: &Address, cursor: &str) -> (Duration, usize, String) {
    let path = format!("/transfer/account/{}", hex(account));
    let mut query = "kind=klay,ft,nft,mt&size=100".to_string();
    if !cursor.is_empty() {
        query.push_str("&cursor=");
        query.push_str(cursor);
    }
    let req = Request {
        method: "GET",
        path: &path,
        query: &query,
        body: &[],
        scope: Scope::All,
        now: 1_800_000_000,
    };
    let t = Instant::now();
    let reply = answer(db, NET, &req);
    let took = t.elapsed();
    assert_eq!(reply.status, 200, "{path}?{query}: {}", reply.body);
    let v: serde_json::Value = serde_json::from_str(&reply.body).expect("a JSON reply");
    let items = v["items"].as_array().map_or(0, Vec::len);
    let next = v["cursor"].as_str().unwrap_or_default().to_owned();
    (took, items, next)
}

fn reads(a: &Args, db: &IndexDb, w: &World, head: u64) -> (Vec<Timings>, Vec<Timings>) {
    let mut rng = fastrand::Rng::with_seed(a.seed ^ 0x5eed);
    let n = w.accounts.len();
    let scale = |x: usize| (x * a.requests / 1000).max(1);
    let groups: [(&str, std::ops::Range<usize>); 3] = [
        ("first page, an account of the busiest 100", 0..100.min(n)),
        ("first page, ranks 100–10,000", 100.min(n)..10_000.min(n)),
        ("first page, ranks 10,000 and above", 10_000.min(n)..n),
    ];
    // first pages, the groups interleaved
    let mut plan: Vec<(usize, usize)> = Vec::new();
    for (g, (_, range)) in groups.iter().enumerate() {
        if range.is_empty() {
            continue;
        }
        for _ in 0..scale(100) {
            plan.push((g, rng.usize(range.clone())));
        }
    }
    rng.shuffle(&mut plan);
    let budget = Duration::from_secs(a.read_budget_s);
    let mut kas: Vec<Timings> = groups.iter().map(|(name, _)| Timings::new(name)).collect();
    for (g, rank) in &plan {
        if kas[*g].spent() > budget {
            kas[*g].skipped += 1;
            continue;
        }
        let (t, items, _) = kas_page(db, &w.accounts[*rank], "");
        kas[*g].add(t, items);
    }
    // deep pages through the cursor
    for (name, ranks, pages) in [
        ("pages 2–51 (cursor), the 10 busiest accounts", 0..10.min(n), scale(50)),
        (
            "pages 2–11 (cursor), 20 accounts of ranks 100–1,000",
            100.min(n)..1_000.min(n),
            scale(10),
        ),
    ] {
        let mut tm = Timings::new(name);
        let picks: Vec<usize> = match ranks.len() <= 10 {
            true => ranks.collect(),
            false => (0..20).map(|_| rng.usize(ranks.clone())).collect(),
        };
        for rank in picks {
            if tm.spent() > budget {
                tm.skipped += pages as u64;
                continue;
            }
            let (_, _, mut cursor) = kas_page(db, &w.accounts[rank], "");
            for _ in 0..pages {
                if cursor.is_empty() {
                    break;
                }
                if tm.spent() > budget {
                    tm.skipped += 1;
                    continue;
                }
                let (t, items, next) = kas_page(db, &w.accounts[rank], &cursor);
                tm.add(t, items);
                cursor = next;
            }
        }
        kas.push(tm);
    }
    // token contracts as accounts (every call to one is a KLAY transfer to it)
    let mut tm = Timings::new("first page, the 50 busiest token contracts");
    let mut busiest: Vec<Address> = w.ft.iter().take(40).map(|c| c.1).collect();
    busiest.extend(w.nft.iter().take(7).map(|c| c.1));
    busiest.extend(w.mt.iter().take(3).map(|c| c.1));
    for c in busiest.iter().take(scale(50)) {
        if tm.spent() > budget {
            tm.skipped += 1;
            continue;
        }
        let (t, items, _) = kas_page(db, c, "");
        tm.add(t, items);
    }
    kas.push(tm);

    // Etherscan tokentx's store query
    let ether_budget = Duration::from_secs(a.tokentx_budget_s);
    let started = Instant::now();
    let mut ether = Vec::new();
    'sorts: for asc in [false, true] {
        for (label, range) in &groups {
            if range.is_empty() {
                continue;
            }
            let sort = if asc { "asc" } else { "desc" };
            let mut tm = Timings::new(&format!(
                "`tokentx` sort={sort}, {}",
                label.trim_start_matches("first page, ")
            ));
            for _ in 0..10 {
                if started.elapsed() > ether_budget {
                    ether.push(tm);
                    break 'sorts;
                }
                let account = w.accounts[rng.usize(range.clone())];
                let page = Page {
                    start: 0,
                    end: head,
                    asc,
                    limit: 100,
                    skip: 0,
                };
                let t = Instant::now();
                let rows = db
                    .transfers_of(NET, "ft", Some(&account[..]), None, &page)
                    .expect("tokentx query");
                tm.add(t.elapsed(), rows.len());
            }
            ether.push(tm);
        }
    }
    (kas, ether)
}

// ---- report --------------------------------------------------------------------------------

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn fmt_n(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The index's two files: the index file in `dir` and the sealed file beside it.
fn index_files(dir: &Path) -> [PathBuf; 2] {
    let file = dir.join("index.db");
    let sealed = sealed_path(&file);
    [file, sealed]
}

/// A file's WAL (`-wal`) or shared-memory index (`-shm`).
fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Bytes in the two files, and in their WALs.
fn sizes(dir: &Path) -> (u64, u64) {
    index_files(dir).iter().fold((0, 0), |(db, wal), f| {
        (db + file_size(f), wal + file_size(&beside(f, "-wal")))
    })
}

/// Removes both files with their WALs.
fn remove_files(dir: &Path) {
    for f in index_files(dir) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(beside(&f, suffix));
        }
    }
}

/// Bytes per table, its indexes included (`dbstat`), in both files.
fn table_sizes(dir: &Path) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for file in ["index.db", "index.sealed.db"] {
        let conn = rusqlite::Connection::open_with_flags(dir.join(file), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut stmt = conn.prepare(
            "SELECT COALESCE(m.tbl_name, s.name), SUM(s.pgsize) FROM dbstat s \
             LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.1));
    Ok(out)
}

fn rows_of(db_file: &Path, table: &str) -> u64 {
    rusqlite::Connection::open_with_flags(db_file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as u64)
}

/// The index's settings for a phase: `cache_mib` MiB of page cache (kengate's default for 0)
/// and `--mmap-mib` (kengate's default for 0).
fn tuning(a: &Args, cache_mib: u64) -> Tuning {
    let d = Tuning::default();
    Tuning {
        cache_mib: if cache_mib > 0 { cache_mib } else { d.cache_mib },
        mmap_mib: if a.mmap_mib > 0 { a.mmap_mib } else { d.mmap_mib },
        window_transfers: if a.window_transfers > 0 {
            a.window_transfers
        } else {
            d.window_transfers
        },
    }
}

fn print_fill(title: &str, f: &Fill, activity_note: &str) {
    let t = f.total;
    println!("{title}\n");
    if f.cut_short {
        println!("**Stopped by `--fill-budget-s` before its target.**\n");
    }
    println!(
        "{} blocks, {} txs, {} transfers ({:.2} per tx) written in {:.1} s of store time ({:.1} s wall, {:.1} s of it \
         building the synthetic blocks) on top of {} transfers; {} blocks per store transaction, slowest \
         transaction {}{activity_note}.\n",
        fmt_n(t.blocks),
        fmt_n(t.txs),
        fmt_n(t.transfers),
        t.transfers as f64 / t.txs.max(1) as f64,
        f.write.as_secs_f64(),
        f.wall.as_secs_f64(),
        f.generate.as_secs_f64(),
        fmt_n(f.before.transfers),
        f.batch,
        ms(f.slowest_batch)
    );
    println!("| transfers in the table | transfers/s | txs/s | blocks/s | stretch wall time |");
    println!("|--:|--:|--:|--:|--:|");
    for s in &f.stretches {
        println!(
            "| up to {} | {} | {} | {} | {:.1} s |",
            fmt_n(s.upto),
            fmt_n(rate(s.counts.transfers, s.write) as u64),
            fmt_n(rate(s.counts.txs, s.write) as u64),
            fmt_n(rate(s.counts.blocks, s.write) as u64),
            s.wall.as_secs_f64()
        );
    }
    println!(
        "| **{} → {}** | **{}** | **{}** | **{}** | {:.1} s |\n",
        fmt_n(f.before.transfers),
        fmt_n(f.before.transfers + t.transfers),
        fmt_n(rate(t.transfers, f.write) as u64),
        fmt_n(rate(t.txs, f.write) as u64),
        fmt_n(rate(t.blocks, f.write) as u64),
        f.wall.as_secs_f64()
    );
}

/// All of `groups` as one.
fn merged(name: &str, groups: &[Timings]) -> Timings {
    let mut all = Timings::new(name);
    for t in groups {
        all.took.extend(&t.took);
        all.items += t.items;
        all.skipped += t.skipped;
    }
    all
}

fn fill_json(f: &Fill) -> serde_json::Value {
    let last = f.stretches.last();
    serde_json::json!({
        "from": f.before.transfers,
        "to": f.before.transfers + f.total.transfers,
        "blocks_per_transaction": f.batch,
        "transfers": f.total.transfers,
        "txs": f.total.txs,
        "blocks": f.total.blocks,
        "store_seconds": (f.write.as_secs_f64() * 10.0).round() / 10.0,
        "transfers_per_s": rate(f.total.transfers, f.write).round(),
        "txs_per_s": rate(f.total.txs, f.write).round(),
        "last_stretch_transfers_per_s": last.map(|s| rate(s.counts.transfers, s.write).round()),
        "cut_short": f.cut_short,
    })
}

fn print_reads(kas: &[Timings], ether: &[Timings], a: &Args) {
    println!("| requests | n | items per page | p50 | p99 | max |");
    println!("|---|--:|--:|--:|--:|--:|");
    for t in kas {
        println!("{}", t.row());
    }
    println!("{}\n", merged("**all KAS requests**", kas).row());
    if !ether.is_empty() {
        println!(
            "Etherscan `tokentx`'s store query (`IndexDb::transfers_of`, kind ft, `page=1&offset=100`, no JSON), \
             10 accounts per group while the {} s budget lasts:\n",
            a.tokentx_budget_s
        );
        println!("| requests | n | rows | p50 | p99 | max |");
        println!("|---|--:|--:|--:|--:|--:|");
        for t in ether {
            println!("{}", t.row());
        }
        println!();
    }
}

fn main() {
    let a = Args::parse();
    // The store's own log lines (e.g. `RUST_LOG=kengate::index=debug`: each seal's timings).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let file = a.dir.join("index.db");
    if !a.reuse {
        remove_files(&a.dir);
    }
    let mut experiments = Vec::new();
    if a.mmap_mib > 0 {
        experiments.push(format!("`mmap_size` {} MiB", a.mmap_mib));
    }
    if a.cache_mib > 0 {
        experiments.push(format!("a {} MiB page cache for the measured writes", a.cache_mib));
    }
    if a.window_transfers > 0 {
        experiments.push(format!("windows sealed every {} transfers and txs", a.window_transfers));
    }
    let mut w = World::new(&a);
    let mut maker = Maker {
        rng: fastrand::Rng::with_seed(a.seed),
        next_block: 1,
        parent: [0; 32],
        tx_seq: 0,
    };
    let mut bulk = None;
    let mut measured = None;
    let mut sizes_open = (0, 0);
    if !a.reuse {
        let bulk_target = match a.no_bulk {
            true => 0,
            false => a.transfers.saturating_sub(a.measure),
        };
        let mut have = Counts::default();
        if bulk_target > 0 {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).expect("create --dir");
            }
            let db = IndexDb::open_with(&file, tuning(&a, a.bulk_cache_mib)).expect("open the index file");
            eprintln!(
                "index_bench: bulk load of {} transfers into {} ({} blocks per store transaction, {} MiB page cache)",
                fmt_n(bulk_target),
                file.display(),
                a.bulk_batch,
                a.bulk_cache_mib
            );
            let plan = Plan {
                before: have,
                target: bulk_target,
                batch: a.bulk_batch,
                budget_s: a.fill_budget_s,
                exact: true,
            };
            let f = fill(&a, &db, &mut w, &mut maker, plan);
            have.add(f.total);
            bulk = Some(f);
        }
        // the measured part: as the indexer writes (kengate's settings unless --cache-mib)
        let db = IndexDb::open_with(&file, tuning(&a, a.cache_mib)).expect("open the index file");
        eprintln!(
            "index_bench: writing up to {} transfers as the indexer does ({} blocks per store transaction)",
            fmt_n(a.transfers),
            a.batch
        );
        let plan = Plan {
            before: have,
            target: a.transfers,
            batch: a.batch,
            budget_s: a.fill_budget_s,
            exact: false,
        };
        let f = fill(&a, &db, &mut w, &mut maker, plan);
        have.add(f.total);
        measured = Some(f);
        let cp = db.checkpoint(NET).expect("checkpoint").expect("an index was filled");
        assert_eq!(cp.number, have.blocks, "the checkpoint is the last block written");
        assert_eq!(
            db.counts(NET).expect("counts"),
            (have.txs, have.transfers),
            "every row once"
        );
        sizes_open = sizes(&a.dir);
    } else if a.append > 0 {
        let db = IndexDb::open_with(&file, tuning(&a, a.cache_mib)).expect("open the index file");
        let cp = db
            .checkpoint(NET)
            .expect("checkpoint")
            .expect("--append needs a filled file");
        let (txs, transfers) = db.counts(NET).expect("counts");
        // go on from the file's last block; every tx so far had a sequence number
        maker.next_block = cp.number + 1;
        maker.parent = cp.hash;
        maker.tx_seq = txs;
        w.described.iter_mut().for_each(|d| *d = true);
        let have = Counts {
            blocks: cp.number,
            txs,
            transfers,
        };
        eprintln!(
            "index_bench: appending {} transfers as the indexer does ({} blocks per store transaction)",
            fmt_n(a.append),
            a.batch
        );
        let plan = Plan {
            before: have,
            target: transfers + a.append,
            batch: a.batch,
            budget_s: a.fill_budget_s,
            exact: false,
        };
        measured = Some(fill(&a, &db, &mut w, &mut maker, plan));
        sizes_open = sizes(&a.dir);
    }
    let db = IndexDb::open(&file).expect("open the index file");
    let head = db
        .checkpoint(NET)
        .expect("checkpoint")
        .expect("an index was filled")
        .number;
    let (txs, transfers) = db.counts(NET).expect("counts");
    drop(db);
    let activity = rows_of(&sealed_path(&file), "ix_activity");
    let (db_bytes, wal_bytes) = match sizes_open {
        (0, 0) => sizes(&a.dir),
        open => open,
    };

    // the report
    let settings = match experiments.is_empty() {
        true => {
            let d = Tuning::default();
            format!(
                "kengate's store as it is (`IndexDb::open`: WAL, `synchronous = NORMAL`, a {} MiB page cache, \
                 {} MiB memory-mapped, checkpoints on a thread of their own, account entries, tx hashes and \
                 balances sealed into a part every {} transfers and txs by the sealer's thread)",
                d.cache_mib, d.mmap_mib, d.window_transfers
            )
        }
        false => format!("**experiment, not kengate as it is**: {}", experiments.join(", ")),
    };
    println!(
        "Settings: {settings}. Synthetic chain: {} txs per block, {} accounts, {} token contracts, Zipf exponent {}.\n",
        a.txs_per_block,
        fmt_n(a.accounts as u64),
        fmt_n(a.contracts as u64),
        a.zipf
    );
    println!("#### Store: insert rate\n");
    if let Some(f) = &bulk {
        print_fill(
            &format!(
                "Bulk load first, to reach the size quickly (**not the indexer's settings**: {} blocks per store \
                 transaction, a {} MiB page cache; same rows):",
                a.bulk_batch, a.bulk_cache_mib
            ),
            f,
            "",
        );
    }
    if let Some(f) = &measured {
        print_fill(
            &format!(
                "Then written as the indexer writes ({} blocks per store transaction, `IndexDb::write_with`{}):",
                a.batch,
                match a.cache_mib {
                    0 => String::new(),
                    m => format!(", **{m} MiB page cache (experiment)**"),
                }
            ),
            f,
            &format!(
                "; {} activity rows sealed in the end (the window's are in memory)",
                fmt_n(activity)
            ),
        );
        println!("Rates are over store time (`IndexDb::write_with`), not the building of the synthetic blocks.\n");
    } else {
        println!(
            "(`--reuse`: no fill this run; {} txs, {} transfers in the file)\n",
            fmt_n(txs),
            fmt_n(transfers)
        );
    }
    println!("#### Store: size on disk\n");
    println!(
        "`index.db` and `index.sealed.db` {} + their WALs {} (while open, after the last write) = {} for {} transfers and {} txs: \
         **{:.0} bytes per transfer** (everything the index keeps — txs, transfers, activity, holdings, their \
         indexes — over the transfers).\n",
        mib(db_bytes),
        mib(wal_bytes),
        mib(db_bytes + wal_bytes),
        fmt_n(transfers),
        fmt_n(txs),
        (db_bytes + wal_bytes) as f64 / transfers.max(1) as f64
    );
    let plain = (!a.no_reads).then(|| {
        eprintln!("index_bench: timing reads (file reopened: no statistics, as kengate runs)");
        let db = IndexDb::open_with(&file, tuning(&a, a.cache_mib)).expect("reopen the index file");
        reads(&a, &db, &w, head)
    });
    let analyzed = (a.analyze && !a.no_reads).then(|| {
        eprintln!("index_bench: ANALYZE, then the reads again");
        let t = Instant::now();
        let c = rusqlite::Connection::open(&file).expect("open for ANALYZE");
        c.execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")
            .expect("ANALYZE");
        drop(c);
        let took = t.elapsed();
        let db = IndexDb::open_with(&file, tuning(&a, a.cache_mib)).expect("reopen the index file");
        (took, reads(&a, &db, &w, head))
    });
    let share = |r: usize| 100.0 * w.account_draw.share(r);
    if let Some(plain) = &plain {
        println!(
            "#### Reads: KAS account history (`GET /v2/transfer/account/{{address}}?kind=klay,ft,nft,mt&size=100`)\n"
        );
        println!(
        "Through `kengate::index::kas::answer` (the server's handler minus HTTP), the file reopened after the fill \
         (SQLite's cache empty, the OS page cache warm), one request at a time; each group stops after {} s. \
         Account draws: the busiest account is in {:.2} % of the sender/recipient draws, rank 100 in {:.3} %, \
         rank 10,000 in {:.5} %.\n",
        a.read_budget_s,
        share(0),
        share(100.min(w.accounts.len() - 1)),
        share(10_000.min(w.accounts.len() - 1))
    );
        println!("As kengate runs (no planner statistics in the file):\n");
        print_reads(&plain.0, &plain.1, &a);
        if let Some((took, (kas, ether))) = &analyzed {
            println!(
                "**Experiment**: after `ANALYZE` (`analysis_limit` 1000, {:.1} s), which kengate does not run:\n",
                took.as_secs_f64()
            );
            print_reads(kas, ether, &a);
        }
    }
    let tables = match a.no_table_sizes {
        true => Vec::new(),
        false => {
            eprintln!("index_bench: measuring the tables (dbstat)");
            table_sizes(&a.dir).unwrap_or_default()
        }
    };

    if !tables.is_empty() {
        println!("#### Store: size per table (`dbstat`)\n");
        println!("| table (with its indexes) | size | bytes per transfer |");
        println!("|---|--:|--:|");
        for (name, bytes) in tables.iter().filter(|t| t.1 >= 64 * 1024) {
            println!(
                "| `{name}` | {} | {:.0} |",
                mib(*bytes),
                *bytes as f64 / transfers.max(1) as f64
            );
        }
        println!();
    }
    if let Some(path) = &a.json {
        let reads_json = |(kas, ether): &(Vec<Timings>, Vec<Timings>)| serde_json::json!({"kas": merged("", kas).summary(), "tokentx": merged("", ether).summary()});
        let v = serde_json::json!({
            "transfers": transfers,
            "txs": txs,
            "blocks": head,
            "experiments": experiments,
            "bulk": bulk.as_ref().map(fill_json),
            "measured": measured.as_ref().map(fill_json),
            "size": {
                "db_bytes": db_bytes,
                "wal_bytes": wal_bytes,
                "bytes_per_transfer": ((db_bytes + wal_bytes) as f64 / transfers.max(1) as f64).round(),
            },
            "reads": plain.as_ref().map(reads_json),
            "reads_after_analyze": analyzed.as_ref().map(|(_, r)| reads_json(r)),
        });
        std::fs::write(path, format!("{v}\n")).expect("write --json");
    }
    if !a.keep {
        remove_files(&a.dir);
        let _ = std::fs::remove_dir(&a.dir);
    }
}
