#!/usr/bin/env python3
"""Large replies read through kengate with web3.py 7, checked against a node read directly.

First SENDS signed value transfers from account ACCOUNT_INDEX go out through kengate at once (so
their blocks are large: tens of KB with full transactions), and their receipts are awaited. Then,
for every block from the first of them to the head kengate serves: the block with its full
transactions (web3's get_block, i.e. eth_getBlockByNumber, and klay_/kaia_getBlockByNumber raw)
and its receipts (klay_/kaia_getBlockReceipts), and the logs of the range (get_logs) — each must be
equal to what DIRECT_URL answers for the same call. With kengate's limits.stream_over_bytes set low,
the large ones are passed on while the node sends them; this program only judges what arrives.

Env: HTTP_URL (kengate), DIRECT_URL (a node), NS (klay or kaia), CHAIN_ID, ACCOUNTS_FILE,
     ACCOUNT_INDEX (default 19), SENDS (default 40).
Output: one JSON line: {"calls", "mismatches", "errors", "largest", "bytes", "from", "to"}.
Exit 1 on a setup error only.
"""
import json
import os
import sys

from eth_account import Account
from web3 import Web3, HTTPProvider


def raw(w3, method, params):
    reply = w3.provider.make_request(method, params)
    if "error" in reply:
        raise RuntimeError(f"{method}{params}: {reply['error']}")
    return reply["result"]


def send_burst(gate, chain_id, key, n):
    """n transfers with consecutive nonces, sent at once; the lowest block they were mined in."""
    sender = Account.from_key(key)
    nonce = gate.eth.get_transaction_count(sender.address, "pending")
    price = gate.eth.gas_price
    hashes = []
    for i in range(n):
        tx = {"chainId": chain_id, "nonce": nonce + i, "to": Account.create().address, "value": 1,
              "gas": 21000, "gasPrice": price}
        hashes.append(gate.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    blocks = [gate.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.5)["blockNumber"]
              for h in hashes]
    return min(blocks)


def main():
    gate = Web3(HTTPProvider(os.environ["HTTP_URL"], request_kwargs={"timeout": 30}))
    node = Web3(HTTPProvider(os.environ["DIRECT_URL"], request_kwargs={"timeout": 30}))
    ns = os.environ.get("NS", "klay")
    with open(os.environ["ACCOUNTS_FILE"]) as f:
        key = json.load(f)[int(os.environ.get("ACCOUNT_INDEX", "19"))]["privateKey"]
    lo = send_burst(gate, int(os.environ["CHAIN_ID"]), key, int(os.environ.get("SENDS", "40")))
    head = gate.eth.block_number
    calls, size, largest, mismatches, errors = 0, 0, 0, [], []

    def same(what, through, direct):
        nonlocal calls, size, largest
        calls += 1
        text = Web3.to_json(through)
        size += len(text)
        largest = max(largest, len(text))
        if text != Web3.to_json(direct):
            mismatches.append(what)

    for n in range(lo, head + 1):
        try:
            same(f"get_block({n}, True)", gate.eth.get_block(n, True), node.eth.get_block(n, True))
            p = [hex(n), True]
            same(f"{ns}_getBlockByNumber({n})", raw(gate, f"{ns}_getBlockByNumber", p),
                 raw(node, f"{ns}_getBlockByNumber", p))
            p = [hex(n)]
            same(f"{ns}_getBlockReceipts({n})", raw(gate, f"{ns}_getBlockReceipts", p),
                 raw(node, f"{ns}_getBlockReceipts", p))
        except Exception as e:  # noqa: BLE001 - every failure is reported, none ends the run
            errors.append(f"block {n}: {e}")
    try:
        f = {"fromBlock": lo, "toBlock": head}
        same(f"get_logs({lo}..{head})", gate.eth.get_logs(f), node.eth.get_logs(f))
    except Exception as e:  # noqa: BLE001
        errors.append(f"logs: {e}")
    print(json.dumps({"calls": calls, "mismatches": mismatches, "errors": errors, "largest": largest,
                      "bytes": size, "from": lo, "to": head}))


if __name__ == "__main__":
    try:
        main()
    except KeyError as e:
        print(f"large_reads: missing env {e}", file=sys.stderr)
        sys.exit(1)
