#!/usr/bin/env python3
"""Run kaia-rpc-tester (a81bf14 for Klaytn, 4d583a9 for Kaia) against one target and record every
test's outcome.

    runner.py --suite DIR --name NAME --http URL --ws URL [--ns eth,klay,net] [--out DIR]
              [--only FILE] [--faucet-key HEX] [--chain-id N] [--blob-tool PATH]

The suite's own code runs unchanged: its test bodies, assertions and set-up functions are
imported from its main.py. Only the transport is mapped: the suite hard-builds every URL as
http://{endpoint}:8551 and ws://{endpoint}:8552, so `endpoint` is set to a name that resolves
nowhere and `Utils.call_rpc`'s `requests.post` / `Utils.call_ws`'s `create_connection` are
swapped for shims that send those URLs to --http / --ws instead (an unmapped URL is an error,
never a silent call to EN1, which listens on exactly 127.0.0.1:8551). The shims also record
every call (request and answer) per test, so a difference can be shown call by call.

The set-up (import/unlock the faucet key with personal_*, deploy two contracts, send 24 txs
with node-held keys, 4d583a9: send a blob tx signed with the faucet key, send a multisig
account-update tx) runs step by step: each of main.py's set-up functions runs on its own, a
failure is recorded and the next step still runs, and the tests that depend on a failed step
fail on their own.

The suite's config is the runner's own (Utils.get_config answers it from memory; config.json is
written only for reference), so two runners with different faucets can run at once. 4d583a9 signs
blob txs with `go run generate_raw_data.go` in its helper_tools; with --blob-tool that command runs
the given pre-built binary instead (same arguments, same stdin), without it the command fails at once
(its go.mod needs a module version the module proxy refuses).

Writes OUT/NAME.json ({"http": {ns: {test_id: status}}, "ws": {...}}) and OUT/NAME.details.json
(set-up steps, and per test: status, failure message, the calls made).
"""

import argparse
import importlib
import json
import os
import re
import sys
import time
import traceback
import unittest
from urllib.parse import urlsplit

# The suite's endpoint host: resolves nowhere, so a URL the shims fail to map cannot reach a node.
FAKE_HOST = "conformance-target.invalid"
SUITE_HTTP_PORT = 8551
SUITE_WS_PORT = 8552

HERE = os.path.dirname(os.path.abspath(__file__))

# Test id: "<ns>.<group>.<test name>" for eth/klay ("eth.block.test_eth_getCode_success": some
# names exist in two groups), "<ns>.<test name>" for the flat namespaces ("net.test_net_version_success").
def test_id(test):
    module = type(test).__module__  # e.g. eth.block.eth_block_rpc, net.net_rpc
    parts = module.split(".")
    prefix = ".".join(parts[:-1]) if len(parts) > 1 else parts[0]
    return f"{prefix}.{test._testMethodName}"


def test_ns(test):
    return type(test).__module__.split(".")[0]


# --------------------------------------------------------------------------------------------
# recording
# --------------------------------------------------------------------------------------------
MAX_TEXT = 4000  # characters of a request / answer kept per call


class Recorder:
    def __init__(self):
        self.current = None  # (transport, test id) or ("setup", step)
        self.calls = {}

    def add(self, entry):
        self.calls.setdefault(self.current, []).append(entry)

    def take(self, key):
        return self.calls.pop(key, [])


REC = Recorder()


def _clip(text):
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"...<{len(text) - MAX_TEXT} more>"


def _request_fields(data):
    try:
        req = json.loads(data)
        return req.get("method"), req.get("params")
    except Exception:
        return None, _clip(data)


# --------------------------------------------------------------------------------------------
# transport shims
# --------------------------------------------------------------------------------------------
class Targets:
    http = None
    ws = None
    http_timeout = 60.0
    ws_timeout = 60.0


def map_url(url, scheme, port):
    """http://{endpoint}:8551 -> --http, ws://{endpoint}:8552 -> --ws; anything else is an error."""
    u = urlsplit(url)
    if u.scheme != scheme or u.hostname != FAKE_HOST or u.port != port:
        raise RuntimeError(f"conformance runner: unexpected URL {url!r} (not the suite's {scheme}://{{endpoint}}:{port})")
    target = Targets.http if scheme == "http" else Targets.ws
    return target


class RequestsShim:
    """Stands in for the `requests` module inside the suite's utils.py (it only calls post)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def post(self, url, data=None, headers=None, timeout=None, **kw):
        real_url = map_url(url, "http", SUITE_HTTP_PORT)
        method, params = _request_fields(data)
        t0 = time.time()
        entry = {"transport": "http", "url": real_url, "method": method, "params": params}
        try:
            t = min(timeout or Targets.http_timeout, Targets.http_timeout)
            r = self._real.post(real_url, data=data, headers=headers, timeout=t, **kw)
        except Exception as e:
            entry.update(exception=repr(e), ms=int((time.time() - t0) * 1000))
            REC.add(entry)
            raise
        entry.update(status=r.status_code, answer=_clip(r.text), ms=int((time.time() - t0) * 1000))
        REC.add(entry)
        return r


class WsShim:
    def __init__(self, conn, url):
        self._conn = conn
        self._url = url
        self._entry = None

    def send(self, payload, *a, **kw):
        method, params = _request_fields(payload)
        self._entry = {"transport": "ws", "url": self._url, "method": method, "params": params}
        self._t0 = time.time()
        return self._conn.send(payload, *a, **kw)

    def recv(self, *a, **kw):
        entry = self._entry or {"transport": "ws", "url": self._url, "method": None, "params": None}
        self._entry = None
        try:
            answer = self._conn.recv(*a, **kw)
        except Exception as e:
            entry.update(exception=repr(e), ms=int((time.time() - getattr(self, "_t0", time.time())) * 1000))
            REC.add(entry)
            raise
        entry.update(answer=_clip(answer), ms=int((time.time() - getattr(self, "_t0", time.time())) * 1000))
        REC.add(entry)
        return answer

    def close(self, *a, **kw):
        return self._conn.close(*a, **kw)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def make_create_connection(real_create):
    def create_connection(url, *a, **kw):
        real_url = map_url(url, "ws", SUITE_WS_PORT)
        kw.setdefault("timeout", Targets.ws_timeout)
        try:
            conn = real_create(real_url, *a, **kw)
        except Exception as e:
            REC.add({"transport": "ws", "url": real_url, "method": None, "params": None, "exception": "connect: " + repr(e)})
            raise
        return WsShim(conn, real_url)

    return create_connection


class SubprocessShim:
    """Stands in for the `subprocess` module inside the suite's utils.py (4d583a9), which runs
    `go run generate_raw_data.go ARGS` in helper_tools to sign a blob tx: runs the pre-built
    --blob-tool binary with the same ARGS instead (or fails as the `go run` would, at once)."""

    def __init__(self, real, tool):
        self._real = real
        self._tool = tool

    def __getattr__(self, name):
        return getattr(self._real, name)

    def run(self, args, *a, **kw):
        if isinstance(args, (list, tuple)) and list(args[:3]) == ["go", "run", "generate_raw_data.go"]:
            if not self._tool:
                raise self._real.CalledProcessError(
                    1, args, output="", stderr="conformance runner: the blob-tx helper is not built (see scripts/conformance)")
            args = [self._tool] + list(args[3:])
        return self._real.run(args, *a, **kw)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
RANK = {"pass": 0, "skip": 1, "fail": 2, "error": 3}


def _message(err):
    etype, value, _tb = err
    text = "".join(traceback.format_exception_only(etype, value)).strip()
    return _clip(text)


def _where(err):
    """The suite's own line the exception came from (file:line: code), for the report."""
    _etype, _value, tb = err
    frames = traceback.extract_tb(tb)
    for fr in reversed(frames):
        base = os.path.basename(fr.filename)
        if "/kaia-rpc-tester/" in fr.filename and base not in ("utils.py", "main.py"):
            return f"{os.path.relpath(fr.filename, Runner.suite_dir)}:{fr.lineno}: {fr.line}"
    return None


class Result(unittest.TestResult):
    def __init__(self, transport):
        super().__init__()
        self.transport = transport
        self.out = {}  # id -> detail dict
        self._t0 = 0

    def _set(self, test, status, message=None, where=None):
        tid = test_id(test)
        calls = REC.take((self.transport, tid))
        prev = self.out.get(tid)
        d = {"ns": test_ns(test), "status": status, "ms": int((time.time() - self._t0) * 1000)}
        if message:
            d["message"] = message
        if where:
            d["where"] = where
        d["calls"] = calls
        if prev is not None:  # the suite adds a few tests twice: keep the worse outcome
            if RANK[prev["status"]] >= RANK[status]:
                prev["calls"] = prev.get("calls", []) + calls
                return
            d["calls"] = prev.get("calls", []) + calls
        self.out[tid] = d

    def startTest(self, test):
        super().startTest(test)
        REC.current = (self.transport, test_id(test))
        self._t0 = time.time()
        Runner.progress()

    def stopTest(self, test):
        super().stopTest(test)
        REC.current = None

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "pass")

    # (message and place are taken before unittest's own addFailure/addError, which trims the
    # traceback in place)
    def addFailure(self, test, err):
        msg, where = _message(err), _where(err)
        super().addFailure(test, err)
        self._set(test, "fail", msg, where)

    def addError(self, test, err):
        msg, where = _message(err), _where(err)
        super().addError(test, err)
        self._set(test, "error", msg, where)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "fail", "unexpected success")


def load_patterns(path):
    """Lines `pattern  # reason`; a pattern is a regex matched against the whole test id."""
    pats = []
    if not os.path.exists(path):
        return pats
    with open(path) as f:
        for line in f:
            body, _, reason = line.partition("#")
            body = body.strip()
            if body:
                pats.append((re.compile(body), reason.strip()))
    return pats


def excluded_reason(tid, pats):
    for rx, reason in pats:
        if rx.fullmatch(tid):
            return reason or "excluded"
    return None


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
class Runner:
    suite_dir = None
    console = sys.stdout
    done = 0
    total = 0
    label = ""

    @classmethod
    def progress(cls):
        cls.done += 1
        if cls.done % 50 == 0 or cls.done == cls.total:
            print(f"  {cls.label}: {cls.done}/{cls.total} tests", file=cls.console, flush=True)


def write_config(suite_dir, cfg):
    path = os.path.join(suite_dir, "config.json")
    text = json.dumps(cfg, indent=4) + "\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # concurrent runners write the same content


def address_of(accounts_file, key):
    with open(accounts_file) as f:
        for a in json.load(f):
            if a["privateKey"].lower().removeprefix("0x") == key.lower().removeprefix("0x"):
                return a["address"]
    return None


BLOB_RECEIPT_DEADLINE_S = 30.0


class receipt_polled:
    """Within it, the suite's `get_transaction_receipt` waits for the receipt (polls every 0.25 s,
    up to BLOB_RECEIPT_DEADLINE_S) instead of taking one look. 4d583a9's `makeBlobTxData` sends a
    blob tx, sleeps a fixed time and looks once; a blob tx is announced to peers rather than sent
    whole, so the block it lands in varies from run to run, and one slow run left the blob tests
    without their tx on one side only (a difference of timing, not of the node or kengate). The
    suite's calls still go through the recorded transport; a receipt that never comes ends in the
    suite's own warning as before."""

    def __init__(self, module):
        self.module = module
        self.orig = None

    def __enter__(self):
        orig = self.orig = self.module.get_transaction_receipt

        def polled(endpoint, params):
            deadline = time.time() + BLOB_RECEIPT_DEADLINE_S
            while True:
                receipt, error = orig(endpoint, params)
                if (receipt is not None and error is None) or time.time() >= deadline:
                    return receipt, error
                time.sleep(0.25)

        self.module.get_transaction_receipt = polled
        return self

    def __exit__(self, *exc):
        self.module.get_transaction_receipt = self.orig
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", required=True, help="the unpacked kaia-rpc-tester directory")
    ap.add_argument("--name", required=True)
    ap.add_argument("--http", required=True)
    ap.add_argument("--ws", required=True)
    ap.add_argument("--ns", default="eth,klay,net")
    ap.add_argument("--out", default=".")
    ap.add_argument("--transports", default="http,ws")
    ap.add_argument("--only", help="file of test ids to run (lines 'id' or 'http:id' / 'ws:id')")
    ap.add_argument("--faucet-key", required=True, help="faucet private key (hex)")
    ap.add_argument("--faucet-address", required=True)
    ap.add_argument("--chain-id", default="1337")
    ap.add_argument("--exclude", default=os.path.join(HERE, "excluded.txt"))
    ap.add_argument("--wait", type=float, default=float(os.environ.get("CONFORMANCE_WAIT", "2")),
                    help="cap in seconds on the suite's fixed waits for a block (default 2; blocks are 1 s)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-call HTTP/WS timeout in seconds")
    ap.add_argument("--blob-tool", help="pre-built helper_tools/generate_raw_data (4d583a9's blob-tx signer)")
    args = ap.parse_args()

    suite_dir = os.path.abspath(args.suite)
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    work = os.path.join(out_dir, f"{args.name}.work")
    os.makedirs(work, exist_ok=True)
    Runner.suite_dir = suite_dir
    Targets.http = args.http.rstrip("/") or args.http
    Targets.ws = args.ws
    Targets.http_timeout = Targets.ws_timeout = args.timeout
    namespaces = [n.strip() for n in args.ns.split(",") if n.strip()]
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]

    only = None
    if args.only:
        only = {"http": set(), "ws": set()}
        with open(args.only) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                if line.startswith(("http:", "ws:")):
                    t, _, tid = line.partition(":")
                    only[t].add(tid)
                else:
                    only["http"].add(line)
                    only["ws"].add(line)
        transports = [t for t in transports if only[t]]

    # The suite's config (read by the test classes at import time, as class attributes, and by
    # main.py and utils.py): Utils.get_config answers it from memory (below); config.json is written
    # for reference only (concurrent runners may differ in their faucet).
    config = {
        "endpoint": FAKE_HOST,
        "rpcPort": str(SUITE_HTTP_PORT),
        "wsPort": str(SUITE_WS_PORT),
        "chainId": str(args.chain_id),
        "faucetPrivateKey": args.faucet_key.lower().removeprefix("0x"),
        "faucetAddress": args.faucet_address,
        "faucetPassword": "conformance",
    }
    # 4d583a9 also requires an "EOA with code" account (EIP-7702; only read by its tests): the
    # template's (it has no code on this chain, directly and through kengate alike).
    try:
        with open(os.path.join(suite_dir, "config_template.json")) as f:
            template = json.load(f)
        for k, v in template.items():
            if k.startswith("eoaWithCode"):
                config[k] = v
    except (OSError, ValueError):
        pass
    write_config(suite_dir, config)

    console = sys.stdout
    Runner.console = console
    # The suite prints every call and writes ./reports/<time>/klaytn.log: keep both in the work dir.
    os.chdir(work)
    suite_log = open(os.path.join(work, "suite-stdout.log"), "w")
    sys.stdout = suite_log
    sys.path.insert(0, suite_dir)
    sys.argv = [os.path.join(suite_dir, "main.py")]

    import requests
    import websocket

    utils = importlib.import_module("utils")
    utils.requests = RequestsShim(requests)
    utils.create_connection = make_create_connection(websocket.create_connection)
    utils.Utils.get_config = staticmethod(lambda: dict(config))
    if hasattr(utils, "subprocess"):
        utils.subprocess = SubprocessShim(utils.subprocess, os.path.abspath(args.blob_tool) if args.blob_tool else None)
    if args.wait >= 0:
        def capped_wait(_front, second, _rear):
            # The suite waits 5 s "until writing a block"; blocks here come every second. Its one
            # longer wait (4d583a9's set-up: 10 s until the blob tx is in a block, then a single
            # receipt lookup) gets three times the cap.
            second = float(second)
            time.sleep(min(second, args.wait if second <= 5 else 3 * args.wait))

        utils.Utils.waiting_count = staticmethod(capped_wait)

    krt = importlib.import_module("main")  # the suite's main.py, not run as __main__
    krt.config = utils.Utils.get_config()
    krt.config["namespaces"] = ",".join(namespaces)

    # --- set-up, step by step (main.initialize() minus get_config, each step on its own) ----
    setup = []
    print(f"conformance: {args.name}: set-up against {Targets.http}", file=console, flush=True)
    # main.initialize()'s steps in its order (makeBlobTxData: 4d583a9 only)
    steps = [st for st in ("load_test_data", "prepare", "makeTxData", "makeBlobTxData",
                           "inject_test_data_to_testcases", "make_multisig_account") if hasattr(krt, st)]
    for step in steps:
        REC.current = ("setup", step)
        t0 = time.time()
        entry = {"step": step}
        try:
            if step == "makeBlobTxData" and hasattr(krt, "kaia_common"):
                with receipt_polled(krt.kaia_common):
                    getattr(krt, step)()
            else:
                getattr(krt, step)()
            entry["ok"] = True
        except Exception as e:
            entry["ok"] = False
            entry["error"] = _clip("".join(traceback.format_exception_only(type(e), e)).strip())
            entry["where"] = _where(sys.exc_info())
        entry["ms"] = int((time.time() - t0) * 1000)
        entry["calls"] = REC.take(("setup", step))
        # the step's failing calls (method: error), for the summary and for compare
        errors = []
        for c in entry["calls"]:
            try:
                ans = json.loads(c.get("answer") or "{}")
            except Exception:
                ans = {"error": {"message": c.get("answer")}}
            if "exception" in c:
                errors.append(f"{c.get('method')}: {c['exception']}")
            elif isinstance(ans, dict) and ans.get("error") is not None:
                err = ans["error"]
                msg = err.get("message") if isinstance(err, dict) else err
                errors.append(f"{c.get('method')}: {msg}")
        entry["call_errors"] = errors
        setup.append(entry)
        status = "ok" if entry["ok"] else "FAILED"
        extra = f" ({'; '.join(errors)})" if errors else ""
        print(f"  set-up {step}: {status}{extra}", file=console, flush=True)
    REC.current = None
    if getattr(krt, "test_data_set", None) is None:
        print("conformance: the set-up produced no test data; cannot run the tests", file=console)
        return 2
    if not any(s["step"] == "inject_test_data_to_testcases" and s["ok"] for s in setup):
        krt.inject_test_data_to_testcases()
    krt.load_test_suites()

    excluded = load_patterns(args.exclude)
    results = {}
    details = {"meta": {"name": args.name, "http": Targets.http, "ws": Targets.ws, "namespaces": namespaces,
                        "wait_cap_s": args.wait, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
               "setup": setup}
    for transport in transports:
        suites = krt.rpc_test_suites if transport == "http" else krt.ws_test_suites
        tests = []
        for s in suites:
            for t in s:
                if test_ns(t) not in namespaces:
                    continue
                if only is not None and test_id(t) not in only[transport]:
                    continue
                tests.append(t)
        res = Result(transport)
        Runner.done, Runner.total, Runner.label = 0, len(tests), f"{args.name} {transport}"
        t0 = time.time()
        for t in tests:
            reason = excluded_reason(test_id(t), excluded)
            if reason:
                res.startTest(t)
                res.addSkip(t, f"excluded: {reason}")
                res.stopTest(t)
                continue
            t(res)
        results[transport] = {}
        for tid, d in res.out.items():
            results[transport].setdefault(d["ns"], {})[tid] = d["status"]
        details[transport] = res.out
        print(f"  {args.name} {transport}: {len(tests)} tests in {time.time() - t0:.0f} s", file=console, flush=True)

    sys.stdout = console
    suite_log.close()
    for t in ("http", "ws"):
        results.setdefault(t, {})
    with open(os.path.join(out_dir, f"{args.name}.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    with open(os.path.join(out_dir, f"{args.name}.details.json"), "w") as f:
        json.dump(details, f, indent=1, sort_keys=True)

    print(f"conformance: {args.name} ({Targets.http}, {Targets.ws}) -> {out_dir}/{args.name}.json")
    print(f"  {'transport':<9} {'ns':<6} {'pass':>5} {'fail':>5} {'error':>5} {'skip':>5}")
    for transport in ("http", "ws"):
        for ns in namespaces:
            st = list(results[transport].get(ns, {}).values())
            if not st:
                continue
            c = {k: st.count(k) for k in ("pass", "fail", "error", "skip")}
            print(f"  {transport:<9} {ns:<6} {c['pass']:>5} {c['fail']:>5} {c['error']:>5} {c['skip']:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
