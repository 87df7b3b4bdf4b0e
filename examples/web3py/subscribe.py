#!/usr/bin/env python3
"""WebSocket subscriber with web3.py 7 (AsyncWeb3 + WebSocketProvider): new heads and the emitter's Ping logs,
each announced block read back at once over HTTP. Same env and output as examples/ethers-ext/subscribe.js.

What web3.py does on the wire:
  await w3.eth.subscribe("newHeads")                          -> eth_subscribe ["newHeads"]
  await w3.eth.subscribe("logs", {"address", "topics":[t0]})  -> eth_subscribe ["logs", {...}]
  messages are read with `async for m in w3.socket.process_subscriptions()`. web3 only treats a message whose
  method is exactly "eth_subscription" as a notification. No other calls (no eth_chainId on connect).
  The `websockets` client sends BINARY frames by default (web3's use_text_frames=False; USE_TEXT_FRAMES=1 switches
  to text frames), and pings every 30 s (ping_timeout 300 s). web3 has no reconnect of its own for an established
  connection (max_connection_retries only covers the initial connect; we set it to 1): when the socket drops, this
  program builds a new AsyncWeb3/WebSocketProvider and subscribes again; that is a "reconnect". Blocks/logs
  announced while disconnected are missed (no backfill).
On every head n: eth_getBlockByNumber(hex n, false) and eth_getBlockReceipts(hex n) through HTTP_URL (AsyncHTTPProvider,
raw make_request, one call per HTTP request). An error, a null, a block that is not n, or receipts that are not a
list of the block's tx count make an "unreadable" entry.

Env: WS_URL, HTTP_URL (required), DURATION_S (default 20), CONTRACT or ADDRESS_FILE (polled every 200 ms),
     RECONNECT_DELAY_MS (default 500), STALL_S (default 0 = off), REQUEST_TIMEOUT_MS (HTTP, default 10000),
     USE_TEXT_FRAMES (default 0), DEBUG (1 = web3 provider logging on stderr).
Output: one JSON line on stdout:
  {"blocks":[n...],"events":[{"tx","logIndex","block","n"}],"unreadable":[{"block","why"}],"reconnects":K,
   "errors":[...],"reconnect_attempts":A,"ws_calls_by_method":{...},"http_calls":H,"contract":..}
Exit 1 only on a setup error. SIGTERM / SIGINT end the run early and still print the line.
"""
import asyncio
import json
import logging
import os
import re
import signal
import sys

from web3 import AsyncWeb3, WebSocketProvider, AsyncHTTPProvider

TOPIC0 = "0xc05b373e05c47417d9c7204807552389e512c0e21cbc01a03d1554561080ac6e"  # keccak256("Ping(uint256,address)")
MAX_ERRORS = 2000


def num(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else float(v)


def log(*a):
    print("subscribe(web3py):", *a, file=sys.stderr, flush=True)


def short(s):
    return re.sub(r"\s+", " ", str(s))[:300]


def hexstr(v):
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    s = str(v)
    return s if s.startswith("0x") else "0x" + s


def as_int(v):
    return int(v, 16) if isinstance(v, str) else int(v)


async def main():
    ws_url = os.environ.get("WS_URL")
    http_url = os.environ.get("HTTP_URL")
    if not ws_url or not http_url:
        raise RuntimeError("WS_URL and HTTP_URL must be set")
    duration = num("DURATION_S", 20)
    reconnect_delay = num("RECONNECT_DELAY_MS", 500) / 1000
    stall = num("STALL_S", 0)
    text_frames = os.environ.get("USE_TEXT_FRAMES", "0") not in ("", "0")
    if os.environ.get("DEBUG"):
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)

    out = {"blocks": [], "events": [], "unreadable": [], "reconnects": 0, "errors": [], "reconnect_attempts": 0,
           "ws_calls_by_method": {}, "http_calls": 0, "contract": None}

    def error(m):
        if len(out["errors"]) < MAX_ERRORS:
            out["errors"].append(short(m))
        log(m)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(duration, stop.set)

    http = AsyncWeb3(AsyncHTTPProvider(http_url, request_kwargs={"timeout": num("REQUEST_TIMEOUT_MS", 10000) / 1000}))

    async def call(method, params):
        out["http_calls"] += 1
        resp = await http.provider.make_request(method, params)
        if "error" in resp and resp["error"] is not None:
            e = resp["error"]
            raise RuntimeError(f"jsonrpc {e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e))
        return resp.get("result")

    inflight = set()

    async def read_back(n):
        h = hex(n)
        step = "eth_getBlockByNumber"
        try:
            block = await call("eth_getBlockByNumber", [h, False])
            step = "eth_getBlockReceipts"
            receipts = await call("eth_getBlockReceipts", [h])
            if block is None:
                return out["unreadable"].append({"block": n, "why": "eth_getBlockByNumber: null"})
            if as_int(block["number"]) != n:
                return out["unreadable"].append({"block": n, "why": f"eth_getBlockByNumber: got block {block['number']}"})
            if not isinstance(receipts, list):
                return out["unreadable"].append({"block": n, "why": f"eth_getBlockReceipts: {short(json.dumps(receipts))}"})
            txs = len(block.get("transactions") or [])
            if len(receipts) != txs:
                out["unreadable"].append({"block": n, "why": f"eth_getBlockReceipts: {len(receipts)} receipts, block has {txs} txs"})
        except Exception as e:  # noqa: BLE001
            out["unreadable"].append({"block": n, "why": f"{step}: {short(e)}"})

    def spawn_read(n):
        t = asyncio.ensure_future(read_back(n))
        inflight.add(t)
        t.add_done_callback(inflight.discard)

    contract = os.environ.get("CONTRACT") or None
    address_file = os.environ.get("ADDRESS_FILE") or ""
    have_contract = asyncio.Event()
    if contract:
        out["contract"] = contract
        have_contract.set()

    async def poll_address():
        nonlocal contract
        while not stop.is_set() and not contract:
            try:
                with open(address_file) as f:
                    s = f.read().strip()
                if re.fullmatch(r"0x[0-9a-fA-F]{40}", s):
                    contract = s
                    out["contract"] = s
                    log(f"contract {s} (from {address_file})")
                    have_contract.set()
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)

    poller = asyncio.ensure_future(poll_address()) if (not contract and address_file) else None

    def count(method):
        out["ws_calls_by_method"][method] = out["ws_calls_by_method"].get(method, 0) + 1

    state = {"opened": False}

    async def session():
        """One connection; returns (or raises) when it ends."""
        state["opened"] = False
        provider = WebSocketProvider(ws_url, use_text_frames=text_frames, max_connection_retries=1)
        w3 = AsyncWeb3(provider)
        try:
            await provider.connect()
            state["opened"] = True
            sub_ids = {}
            count("eth_subscribe")
            sub_ids[await w3.eth.subscribe("newHeads")] = "heads"

            async def subscribe_logs():
                await have_contract.wait()
                count("eth_subscribe")
                sid = await w3.eth.subscribe("logs", {"address": AsyncWeb3.to_checksum_address(contract), "topics": [TOPIC0]})
                sub_ids[sid] = "logs"

            logs_task = asyncio.ensure_future(subscribe_logs())
            try:
                it = w3.socket.process_subscriptions().__aiter__()
                while True:
                    if logs_task.done() and logs_task.exception():
                        raise logs_task.exception()
                    try:
                        msg = await (asyncio.wait_for(it.__anext__(), stall) if stall > 0 else it.__anext__())
                    except asyncio.TimeoutError:
                        return f"no message for {stall:g}s"
                    kind = sub_ids.get(msg.get("subscription"))
                    res = msg.get("result")
                    if kind == "heads" or (kind is None and res is not None and "parentHash" in res):
                        n = as_int(res["number"])
                        out["blocks"].append(n)
                        spawn_read(n)
                    elif kind == "logs" or (kind is None and res is not None and "logIndex" in res):
                        topics = res.get("topics") or []
                        out["events"].append({
                            "tx": hexstr(res["transactionHash"]),
                            "logIndex": as_int(res["logIndex"]),
                            "block": as_int(res["blockNumber"]),
                            "n": as_int(hexstr(topics[1])) if len(topics) > 1 else None,
                        })
                    else:
                        error(f"unexpected notification: {short(msg)}")
                return "subscription stream ended"
            finally:
                logs_task.cancel()
        finally:
            try:
                await provider.disconnect()
            except Exception:  # noqa: BLE001
                pass

    first = True
    while not stop.is_set():
        if not first:
            out["reconnect_attempts"] += 1
        first = False
        task = asyncio.ensure_future(session())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001
                pass
            break
        stopper.cancel()
        try:
            why = task.result()
        except Exception as e:  # noqa: BLE001
            why = f"{type(e).__name__}: {e}"
        error(f"websocket {'dropped' if state['opened'] else 'failed to connect'}: {short(why)}; reconnecting in {reconnect_delay:g}s")
        if state["opened"]:
            out["reconnects"] += 1
        try:
            await asyncio.wait_for(stop.wait(), reconnect_delay)
        except asyncio.TimeoutError:
            pass

    if poller:
        poller.cancel()
    if inflight:
        await asyncio.wait(set(inflight), timeout=num("REQUEST_TIMEOUT_MS", 10000) / 1000)
    try:
        await http.provider.disconnect()
    except Exception:  # noqa: BLE001
        pass
    log(f"{len(out['blocks'])} blocks, {len(out['events'])} events, {len(out['unreadable'])} unreadable, {out['reconnects']} reconnects")
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001
        print(f"subscribe(web3py): setup error: {e!r}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
