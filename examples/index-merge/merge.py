#!/usr/bin/env python3
"""Experiment for issue 13 (not what kengate does): what it costs to fold a window of W transfers
into an index that already holds ~10 M, one sorted pass per random-keyed structure, instead of
100 blocks per store transaction as the indexer writes today.

A layout that appends each batch to the position-keyed tables only and merges the account, tx-hash
and contract indexes and the holdings every W transfers would pay, per window, what this times.

    cargo run --release --example index_bench -- --transfers 10000000 --dir /tmp/kib --keep --no-reads
    python3 examples/index-merge/merge.py /tmp/kib/index.db 1000000 [--cold]

Setup (not timed): the window is the last W transfers of the file. Its activity rows are taken out
of `ix_activity` (kept aside in positional order, as a merge would derive them); the tx-hash and
contract indexes are rebuilt as tables of their own without the window (`hx`, `cx`; packed, as a
sorted build leaves them: a pessimistic start for inserts); the holdings the window touched are
listed. Then each structure gets the window in one transaction, in its key order, and a
checkpoint copies the WAL into the file (both timed): the activity rows inserted, the hash and
contract rows inserted, and every FT balance, NFT owner and MT balance the window touched
rewritten by an upsert. The page cache and mapping are kengate's (`index.cache_mib` 64,
`index.mmap_mib` 1024); `--cold` drops the OS page cache first (the file is then read from disk).
The appends to the position-keyed tables themselves are not included (290,000 transfers/s alone,
BENCHMARKS.md "Where a batch's writes go"). Running it again on the same file repeats it.
"""
import os
import sqlite3
import sys
import time

path, W = sys.argv[1], int(sys.argv[2])
cold = "--cold" in sys.argv[3:]
c = sqlite3.connect(path, isolation_level=None)
c.execute("PRAGMA cache_size=-65536")
c.execute("PRAGMA mmap_size=1073741824")
c.execute("PRAGMA wal_autocheckpoint=0")
c.execute("PRAGMA temp_store=FILE")


def q(s, *a):
    return c.execute(s, a).fetchall()


head = q("SELECT max(block) FROM ix_txs")[0][0]
lo, hi = 0, head  # the highest X with at least W transfers above it
while lo < hi:
    mid = (lo + hi + 1) // 2
    if q("SELECT count(*) FROM ix_transfers WHERE block > ?", mid)[0][0] >= W:
        lo = mid
    else:
        hi = mid - 1
X = lo
ntr = q("SELECT count(*) FROM ix_transfers WHERE block > ?", X)[0][0]
ntx = q("SELECT count(*) FROM ix_txs WHERE block > ?", X)[0][0]
total_tr = q("SELECT count(*) FROM ix_transfers")[0][0]
print(f"{total_tr:,} transfers in the file; window: blocks {X + 1}-{head}, {ntx:,} txs, {ntr:,} transfers", flush=True)
t = time.time()
c.executescript(f"""
DROP TABLE IF EXISTS w_act; DROP TABLE IF EXISTS w_hx; DROP TABLE IF EXISTS w_cx;
DROP TABLE IF EXISTS w_ft; DROP TABLE IF EXISTS w_nft; DROP TABLE IF EXISTS w_mt;
DROP TABLE IF EXISTS hx; DROP TABLE IF EXISTS cx;
BEGIN;
CREATE TABLE w_act AS SELECT * FROM ix_activity WHERE block > {X} ORDER BY block, tx_idx, log_idx;
DELETE FROM ix_activity WHERE block > {X};
CREATE TABLE hx(net TEXT NOT NULL, hash BLOB NOT NULL, block INTEGER NOT NULL, idx INTEGER NOT NULL,
  PRIMARY KEY(net, hash)) WITHOUT ROWID;
INSERT INTO hx SELECT net, hash, block, idx FROM ix_txs WHERE block <= {X} ORDER BY net, hash;
CREATE TABLE w_hx AS SELECT net, hash, block, idx FROM ix_txs WHERE block > {X} ORDER BY block, idx;
CREATE TABLE cx(net TEXT NOT NULL, contract BLOB NOT NULL, token_id BLOB NOT NULL, block INTEGER NOT NULL,
  tx_idx INTEGER NOT NULL, log_idx INTEGER NOT NULL, pos INTEGER NOT NULL,
  PRIMARY KEY(net, contract, token_id, block DESC, tx_idx DESC, log_idx DESC, pos DESC)) WITHOUT ROWID;
INSERT INTO cx SELECT net, coalesce(contract, x''), coalesce(token_id, x''), block, tx_idx, log_idx, pos
  FROM ix_transfers WHERE block <= {X} ORDER BY 1, 2, 3, 4 DESC, 5 DESC, 6 DESC, 7 DESC;
CREATE TABLE w_cx AS SELECT net, coalesce(contract, x'') contract, coalesce(token_id, x'') token_id, block,
  tx_idx, log_idx, pos FROM ix_transfers WHERE block > {X} ORDER BY block, tx_idx, log_idx, pos;
CREATE TABLE w_ft AS SELECT DISTINCT net, contract, holder FROM (
  SELECT net, contract, sender holder FROM ix_transfers WHERE block > {X} AND kind = 'ft'
  UNION ALL SELECT net, contract, recipient FROM ix_transfers WHERE block > {X} AND kind = 'ft');
CREATE TABLE w_nft AS SELECT DISTINCT net, contract, token_id FROM ix_transfers WHERE block > {X} AND kind = 'nft';
CREATE TABLE w_mt AS SELECT DISTINCT net, contract, token_id, holder FROM (
  SELECT net, contract, token_id, sender holder FROM ix_transfers WHERE block > {X} AND kind = 'mt'
  UNION ALL SELECT net, contract, token_id, recipient FROM ix_transfers WHERE block > {X} AND kind = 'mt');
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
""")
print(f"setup (not timed) {time.time() - t:.0f} s", flush=True)
if cold:
    os.system("sync; echo 1 > /proc/sys/vm/drop_caches")
steps = [
    ("activity rows", "INSERT INTO ix_activity SELECT * FROM w_act "
     "ORDER BY net, account, block DESC, tx_idx DESC, log_idx DESC"),
    ("tx-hash index", "INSERT INTO hx SELECT * FROM w_hx ORDER BY net, hash"),
    ("contract index", "INSERT INTO cx SELECT * FROM w_cx ORDER BY 1, 2, 3, 4 DESC, 5 DESC, 6 DESC, 7 DESC"),
    ("FT balances", "INSERT INTO ix_ft_balances SELECT b.* FROM w_ft w JOIN ix_ft_balances b "
     "ON b.net = w.net AND b.contract = w.contract AND b.holder = w.holder ORDER BY b.net, b.contract, b.holder "
     "ON CONFLICT DO UPDATE SET balance = excluded.balance, updated = excluded.updated + 1"),
    ("NFT owners", "INSERT INTO ix_nft_owners SELECT b.* FROM w_nft w JOIN ix_nft_owners b "
     "ON b.net = w.net AND b.contract = w.contract AND b.token_id = w.token_id "
     "ORDER BY b.net, b.contract, b.token_id ON CONFLICT DO UPDATE SET updated = excluded.updated + 1"),
    ("MT balances", "INSERT INTO ix_mt_balances SELECT b.* FROM w_mt w JOIN ix_mt_balances b "
     "ON b.net = w.net AND b.contract = w.contract AND b.token_id = w.token_id AND b.holder = w.holder "
     "ORDER BY b.net, b.contract, b.token_id, b.holder ON CONFLICT DO UPDATE SET updated = excluded.updated + 1"),
]
print("| structure | rows | transaction | checkpoint | µs per row |\n|---|--:|--:|--:|--:|")
total = 0.0
for name, sql in steps:
    t = time.time()
    c.execute("BEGIN")
    n = c.execute(sql).rowcount
    c.execute("COMMIT")
    t1 = time.time() - t
    t = time.time()
    q("PRAGMA wal_checkpoint(TRUNCATE)")
    t2 = time.time() - t
    total += t1 + t2
    print(f"| {name} | {n:,} | {t1:.2f} s | {t2:.2f} s | {(t1 + t2) * 1e6 / max(n, 1):.1f} |", flush=True)
print(f"\nmerge of the window: {total:.1f} s for {ntr:,} transfers = {ntr / total:,.0f} transfers/s "
      "(the appends to the position-keyed tables not included)")
