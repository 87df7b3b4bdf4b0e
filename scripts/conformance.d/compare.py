#!/usr/bin/env python3
"""Compare conformance results: every test that passes against the node directly must pass
through kengate.

    compare.py --direct A.json [--direct A2.json ...] --through B.json [--through B2.json ...]
               [--allow-fail FILE] [--report FILE] [--candidates FILE]

Each file is what `runner.py` wrote ({"http": {ns: {id: status}}, "ws": {...}}); a NAME.details.json
beside it (the calls each test made) is used for the report when present.

Several runs per side make the comparison robust against tests that depend on timing (a block
arriving between two calls): a test counts as passed directly only if it passed in every direct
run that ran it (one that passed and failed is listed as flaky directly and not compared), and as
passed through kengate if it passed in most of the kengate runs that ran it (a failure in a
minority of runs is printed as a warning, not a regression).

Exit status: 0 when every test that passed directly passed through kengate or is in --allow-fail
(tests of node-key methods kengate denies by policy); 1 otherwise; 2 on bad input.
"""

import argparse
import json
import os
import sys

TRANSPORTS = ("http", "ws")


def load(path):
    with open(path) as f:
        data = json.load(f)
    flat = {}
    for t in TRANSPORTS:
        for ns, tests in data.get(t, {}).items():
            for tid, st in tests.items():
                flat[(t, tid)] = (ns, st)
    det_path = path[:-5] + ".details.json" if path.endswith(".json") else None
    details = None
    if det_path and os.path.exists(det_path):
        with open(det_path) as f:
            details = json.load(f)
    return flat, details


def load_allowed(path):
    allowed = {}
    if not path:
        return allowed
    with open(path) as f:
        for line in f:
            body, _, reason = line.partition("#")
            tid = body.strip()
            if tid:
                allowed[tid] = reason.strip()
    return allowed


def allowed_reason(allowed, transport, tid):
    return allowed.get(f"{transport}:{tid}", allowed.get(tid))


class Side:
    def __init__(self, paths):
        self.runs = [load(p) for p in paths]
        self.paths = paths

    def statuses(self, key):
        return [run[0][key][1] for run in self.runs if key in run[0]]

    def ns(self, key):
        for run in self.runs:
            if key in run[0]:
                return run[0][key][0]
        return None

    def keys(self):
        ks = set()
        for run in self.runs:
            ks.update(run[0].keys())
        return ks

    def detail(self, key, prefer_status=None):
        """The details of one run of the test (preferring a run with the given status)."""
        t, tid = key
        found = None
        for flat, det in self.runs:
            if det is None or key not in flat:
                continue
            d = det.get(t, {}).get(tid)
            if d is None:
                continue
            if prefer_status is None or d.get("status") == prefer_status:
                return d
            found = found or d
        return found

    def setup(self):
        for _flat, det in self.runs:
            if det is not None:
                return det.get("setup", [])
        return []


def _answer(call):
    if "exception" in call:
        return {"exception": call["exception"]}
    text = call.get("answer")
    try:
        obj = json.loads(text)
    except Exception:
        return {"raw": text, "http_status": call.get("status")}
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in ("id", "jsonrpc")}
        if call.get("status") not in (None, 200):
            obj["http_status"] = call.get("status")
    return obj


def _short(obj, limit=700):
    s = json.dumps(obj, separators=(",", ":"), sort_keys=True)
    return s if len(s) <= limit else s[:limit] + f"...<{len(s) - limit} more chars>"


def denied_by_kengate(d_direct, d_through):
    """True if kengate refused a call with -32601 (method not found / not allowed) that the node
    did not refuse so: an allowed-list test must fail because of the policy, not for another reason.
    Without details (no NAME.details.json) the allowed list is trusted as it is."""
    if d_through is None:
        return True
    node_refused = set()
    for c in (d_direct or {}).get("calls", []):
        err = _answer(c).get("error") if isinstance(_answer(c), dict) else None
        if isinstance(err, dict) and err.get("code") == -32601:
            node_refused.add(c.get("method"))
    for c in d_through.get("calls", []):
        ans = _answer(c)
        err = ans.get("error") if isinstance(ans, dict) else None
        if isinstance(err, dict) and err.get("code") == -32601 and c.get("method") not in node_refused:
            return True
    return False


def describe(key, d_direct, d_through, out):
    """Write the calls of one regression: each call's method, params, and both answers."""
    dc = (d_direct or {}).get("calls", [])
    kc = (d_through or {}).get("calls", [])
    if d_through:
        out.append(f"    kengate: {d_through.get('status')}: {d_through.get('message', '')}")
        if d_through.get("where"):
            out.append(f"      at {d_through['where']}")
    n = max(len(dc), len(kc))
    for i in range(n):
        a = dc[i] if i < len(dc) else None
        b = kc[i] if i < len(kc) else None
        ref = a or b
        method = ref.get("method")
        params = ref.get("params")
        if a and b and (a.get("method"), a.get("params")) != (b.get("method"), b.get("params")):
            out.append(f"    call {i + 1} differs in the request:")
            out.append(f"      node call:    {a.get('method')} {_short(a.get('params'))}")
            out.append(f"      kengate call: {b.get('method')} {_short(b.get('params'))}")
        else:
            out.append(f"    call {i + 1} ({ref.get('transport')}): {method} params={_short(params, 400)}")
        aa = _answer(a) if a else None
        bb = _answer(b) if b else None
        if aa is not None and bb is not None and aa == bb:
            out.append(f"      same answer: {_short(aa, 300)}")
        else:
            out.append(f"      node:    {_short(aa) if a else '(no such call)'}")
            out.append(f"      kengate: {_short(bb) if b else '(no such call)'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direct", action="append", required=True)
    ap.add_argument("--through", action="append", required=True)
    ap.add_argument("--allow-fail", help="test ids allowed to fail through kengate (one per line, '# reason')")
    ap.add_argument("--report", help="write the detailed list of regressions (calls, answers) here")
    ap.add_argument("--candidates", help="only write the ids that passed directly but not through kengate "
                                         "(one 'transport:id' a line) to this file, and exit 0")
    args = ap.parse_args()

    try:
        direct = Side(args.direct)
        through = Side(args.through)
        allowed = load_allowed(args.allow_fail)
    except (OSError, ValueError) as e:
        print(f"conformance compare: {e}", file=sys.stderr)
        return 2

    keys = sorted(direct.keys() | through.keys())
    rows = {}  # (transport, ns) -> counters
    regressions, denied, flaky_direct, intermittent, not_run, not_denied = [], [], [], [], [], []
    for key in keys:
        t, tid = key
        ns = direct.ns(key) or through.ns(key)
        r = rows.setdefault((t, ns), {"direct": 0, "through": 0, "both": 0, "total": 0, "flaky": 0})
        ds, ks = direct.statuses(key), through.statuses(key)
        r["total"] += 1
        d_pass = bool(ds) and all(s == "pass" for s in ds)
        d_flaky = any(s == "pass" for s in ds) and not d_pass
        k_passes = sum(1 for s in ks if s == "pass")
        k_pass = bool(ks) and 2 * k_passes > len(ks)
        if d_pass:
            r["direct"] += 1
        if k_pass:
            r["through"] += 1
        if d_flaky:
            r["flaky"] += 1
            flaky_direct.append((key, ds, ks))
        if d_pass and not ks:
            not_run.append(key)
        elif d_pass and k_pass:
            r["both"] += 1
            if k_passes < len(ks):
                intermittent.append((key, ks))
        elif d_pass:
            reason = allowed_reason(allowed, t, tid)
            bad_st = next((s for s in ks if s != "pass"), None)
            if reason is not None and denied_by_kengate(direct.detail(key, "pass"), through.detail(key, bad_st)):
                denied.append((key, reason, ks))
            else:
                if reason is not None:
                    not_denied.append(key)
                regressions.append((key, ks))

    if args.candidates:
        with open(args.candidates, "w") as f:
            for (t, tid), _ks in regressions:
                f.write(f"{t}:{tid}\n")
            for (t, tid), _ks in intermittent:
                f.write(f"{t}:{tid}\n")
        print(f"conformance compare: {len(regressions)} candidate(s) "
              f"(passed directly, not through kengate), {len(intermittent)} intermittent")
        return 0

    print("conformance: tests that pass against the node directly vs through kengate")
    print(f"  direct runs:  {', '.join(args.direct)}")
    print(f"  kengate runs: {', '.join(args.through)}")
    print(f"  {'transport':<9} {'ns':<6} {'tests':>5} {'direct':>7} {'kengate':>8} {'both':>5} {'flaky-direct':>12}")
    for (t, ns) in sorted(rows, key=lambda k: (TRANSPORTS.index(k[0]), k[1] or "")):
        r = rows[(t, ns)]
        print(f"  {t:<9} {ns or '?':<6} {r['total']:>5} {r['direct']:>7} {r['through']:>8} {r['both']:>5} {r['flaky']:>12}")

    # set-up differences are printed first: a step that fails only through kengate explains a
    # whole family of failures below
    ds_, ks_ = direct.setup(), through.setup()
    if ds_ and ks_:
        for a, b in zip(ds_, ks_):
            if a.get("ok") != b.get("ok") or a.get("call_errors") != b.get("call_errors"):
                print(f"\nset-up step {a['step']} differs:")
                print(f"  node:    {'ok' if a.get('ok') else a.get('error')}; call errors: {a.get('call_errors')}")
                print(f"  kengate: {'ok' if b.get('ok') else b.get('error')}; call errors: {b.get('call_errors')}")

    report = []
    if regressions:
        print(f"\nREGRESSIONS: {len(regressions)} test(s) pass directly but not through kengate:")
        for key, ks in regressions:
            t, tid = key
            d_k = through.detail(key, next((s for s in ks if s != "pass"), None))
            msg = (d_k or {}).get("message", "")
            first = msg.strip().splitlines()[-1] if msg.strip() else ""
            print(f"  {t}:{tid}  [{'/'.join(ks)}]  {first[:200]}")
            report.append(f"{t}:{tid}  (direct: pass; through kengate: {'/'.join(ks)})")
            bad_st = next((s for s in ks if s != "pass"), None)
            describe(key, direct.detail(key, "pass"), through.detail(key, bad_st), report)
            report.append("")
    if not_denied:
        print(f"\nIn the allowed list but kengate refused none of their calls (-32601), so they count as regressions: {len(not_denied)}")
        for t, tid in not_denied:
            print(f"  {t}:{tid}")
    if denied:
        print(f"\nDenied by policy (allowed to fail; {os.path.basename(args.allow_fail or '')}): {len(denied)}")
        for (t, tid), reason, ks in denied:
            print(f"  {t}:{tid}  [{'/'.join(ks)}]  # {reason}")
    if intermittent:
        print(f"\nWarning: passed through kengate in most runs but not all ({len(intermittent)}):")
        for (t, tid), ks in intermittent:
            print(f"  {t}:{tid}  [{'/'.join(ks)}]")
    if flaky_direct:
        print(f"\nFlaky directly (passed in some direct runs only; not compared): {len(flaky_direct)}")
        for (t, tid), ds, ks in flaky_direct:
            print(f"  {t}:{tid}  direct [{'/'.join(ds)}]  kengate [{'/'.join(ks) or '-'}]")
    if not_run:
        print(f"\nWarning: passed directly but not run through kengate: {len(not_run)}")
        for t, tid in not_run:
            print(f"  {t}:{tid}")

    if args.report:
        denied_report = []
        for key, reason, ks in denied:
            t, tid = key
            bad_st = next((s for s in ks if s != "pass"), None)
            denied_report.append(f"{t}:{tid}  (direct: pass; through kengate: {'/'.join(ks)})  # {reason}")
            describe(key, direct.detail(key, "pass"), through.detail(key, bad_st), denied_report)
            denied_report.append("")
        setup_report = []
        for a, b in zip(ds_, ks_):
            if a.get("ok") != b.get("ok") or a.get("call_errors") != b.get("call_errors"):
                setup_report.append(f"set-up step {a['step']}:")
                setup_report.append(f"  node:    {'ok' if a.get('ok') else a.get('error')}; failing calls: {a.get('call_errors')}")
                setup_report.append(f"  kengate: {'ok' if b.get('ok') else b.get('error')}; failing calls: {b.get('call_errors')}")
        with open(args.report, "w") as f:
            f.write("kengate conformance: tests that pass against the node directly and fail through kengate.\n"
                    "For each: every call the test made (method, params), the node's answer and kengate's answer\n"
                    "(JSON-RPC ids stripped; 'same answer' where they agree).\n\n")
            f.write(f"== Regressions (not in the allowed list): {len(regressions)}\n\n")
            f.write("\n".join(report) + "\n" if report else "none\n\n")
            f.write(f"== Denied by policy (in {os.path.basename(args.allow_fail or '-')}, allowed to fail): {len(denied)}\n\n")
            f.write("\n".join(denied_report) + "\n" if denied_report else "none\n\n")
            if setup_report:
                f.write("== Set-up steps whose calls were answered differently\n\n" + "\n".join(setup_report) + "\n")

    bad = len(regressions)
    print()
    print(f"conformance: {sum(r['both'] for r in rows.values())} passed both directly and through kengate, "
          f"{bad} regression(s), {len(denied)} denied by policy")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
