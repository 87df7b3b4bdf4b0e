#!/usr/bin/env python3
"""web3.py smoke test against a Klaytn endpoint, eth_ namespace only: chain id, balance, a signed transfer.

Env: RPC_URL (required), CHAIN_ID, ACCOUNTS_FILE, ACCOUNT_INDEX (default 4),
     TX_TYPE: "legacy" (EIP-155, default) or "dynamic" (EIP-1559, type 2).
"""
import json
import os
import sys

from eth_account import Account
from web3 import Web3
from web3.exceptions import TimeExhausted

RECEIPT_TIMEOUT = 60  # seconds


def env(name, default=None):
    value = os.environ.get(name) or default
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def main():
    rpc_url = env("RPC_URL")
    expected_chain_id = int(env("CHAIN_ID", os.environ.get("LOCALNET_CHAIN_ID")))
    with open(env("ACCOUNTS_FILE", os.environ.get("LOCALNET_ACCOUNTS"))) as f:
        accounts = json.load(f)
    index = int(env("ACCOUNT_INDEX", "4"))
    if index >= len(accounts):
        raise RuntimeError(f"no test account #{index} in the accounts file")
    tx_type = env("TX_TYPE", "legacy")

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    sender = Account.from_key(accounts[index]["privateKey"])
    print(f"rpc {rpc_url}, sender #{index} {sender.address}")

    # 1. chain id (eth_chainId)
    chain_id = w3.eth.chain_id
    if chain_id != expected_chain_id:
        raise RuntimeError(f"chain id {chain_id}, expected {expected_chain_id}")
    print(f"chain id: {chain_id}")

    # 2. balance (eth_getBalance, "latest")
    balance = w3.eth.get_balance(sender.address)
    if balance == 0:
        raise RuntimeError(f"sender {sender.address} has no KLAY")
    print(f"balance: {Web3.from_wei(balance, 'ether')} KLAY")

    # 3. a signed transfer to a fresh address, sent with eth_sendRawTransaction.
    # Klaytn has no fee market tip: price with eth_gasPrice (which already covers the base fee).
    recipient = Account.create().address
    value = Web3.to_wei("0.01", "ether")
    gas_price = w3.eth.gas_price
    tx = {
        "chainId": chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "to": recipient,
        "value": value,
        "gas": 21000,
    }
    if tx_type == "dynamic":
        tx.update(type=2, maxFeePerGas=gas_price, maxPriorityFeePerGas=gas_price)
    else:
        tx["gasPrice"] = gas_price
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    print(f"{tx_type} transfer: nonce {tx['nonce']}, gas price {gas_price}, hash {tx_hash.to_0x_hex()}")

    # 4. wait for the receipt (polls eth_getTransactionReceipt)
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=1)
    except TimeExhausted:
        raise RuntimeError(f"timed out after {RECEIPT_TIMEOUT}s waiting for receipt of {tx_hash.to_0x_hex()}")
    if receipt["status"] != 1:
        raise RuntimeError(f"transfer: receipt status {receipt['status']} in block {receipt['blockNumber']}")
    print(f"transfer: mined in block {receipt['blockNumber']} (gas used {receipt['gasUsed']})")

    got = w3.eth.get_balance(recipient)
    if got != value:
        raise RuntimeError(f"recipient balance {got}, expected {value}")
    print(f"recipient {recipient} balance: {Web3.from_wei(got, 'ether')} KLAY")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one clear line, non-zero exit
        print(f"web3py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print("web3py: OK")
