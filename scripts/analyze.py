#!/usr/bin/python3
"""analyze.py - numbers from a loadgen.py log, as one JSON object.

Usage:
  analyze.py LOG [--fault-at T] [--repair-at T] [--primary primary] [--backup backup]
                 [--from T] [--to T]
Importable: analyze(path, fault_at=None, repair_at=None, primary="primary",
                    backup="backup", t_from=None, t_to=None) -> dict

Requests are the `new` and `long` lines (`reopen` lines only count in
"reopens"); failed = outcome other than ok. --from/--to keep only requests
with from <= t_send < to. Times are epoch seconds (time.time(), date +%s.%N).
Keys (null when not computable):
  total ok failed outcomes{ok,reset,refused,timeout,error} by_kind{new,long}
  sites{site: ok count} first_t_send last_t_send reopens long_breaks
  max_latency_ms (ok requests) max_latency_ms_any (all) p50/p99_latency_ms (ok)
  switches   changes of serving site between consecutive ok `new` requests
             in t_send order
  fault_at failed_after_fault ok_after_fault max_latency_ms_after_fault
  first_backup_after_fault  t_done of the first ok backup answer sent >= fault
  failover_s                first_backup_after_fault - fault_at
  requests_in_window        requests sent in [fault_at, first_backup_after_fault)
  failed_in_window          failed ones among them
  repair_at failed_after_repair
  first_primary_after_repair, failback_s   same as above for primary after repair
Partial trailing lines (log still being written) are ignored.
"""
import argparse
import json
import sys

OUTCOMES = ("ok", "reset", "refused", "timeout", "error")


def read_log(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # partial line of a log still being written
            p = line.rstrip("\n").split("\t")
            if len(p) not in (7, 8) or p[0] == "t_send":
                continue
            try:
                rows.append({"t_send": float(p[0]), "t_done": float(p[1]), "kind": p[2],
                             "conn": p[3], "outcome": p[4], "site": p[5],
                             "latency_ms": float(p[6]),
                             # connect time, None if the connection never came up
                             "connect_ms": float(p[7]) if len(p) == 8 and p[7] != "-" else None})
            except ValueError:
                continue
    return rows


def never_connected(r):
    """A request whose connection never came up (refused, connect timeout): what failover
    can save, as opposed to one lost on a connection the dead site had accepted. A reset
    before the client saw its connect complete is of the second kind: a reset in SYN-SENT
    is ECONNREFUSED ("refused"); ECONNRESET ("reset") means the client's kernel had the
    SYN-ACK, so the site had accepted the connection."""
    return r["outcome"] not in ("ok", "reset") and r["connect_ms"] is None


def _max(vals):
    vals = list(vals)
    return round(max(vals), 3) if vals else None


def _pct(vals, q):
    vals = sorted(vals)
    if not vals:
        return None
    return round(vals[min(len(vals) - 1, int(q * len(vals)))], 3)


def _first_done(reqs, since, site):
    t = [r["t_done"] for r in reqs
         if r["outcome"] == "ok" and r["site"] == site and r["t_send"] >= since]
    return min(t) if t else None


def analyze(path, fault_at=None, repair_at=None, primary="primary", backup="backup",
            t_from=None, t_to=None):
    rows = read_log(path)
    if t_from is not None:
        rows = [r for r in rows if r["t_send"] >= t_from]
    if t_to is not None:
        rows = [r for r in rows if r["t_send"] < t_to]
    reqs = [r for r in rows if r["kind"] in ("new", "long")]
    ok = [r for r in reqs if r["outcome"] == "ok"]

    outcomes = {o: 0 for o in OUTCOMES}
    for r in reqs:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    sites = {}
    for r in ok:
        sites[r["site"]] = sites.get(r["site"], 0) + 1

    switches = 0
    prev = None
    for r in sorted((r for r in ok if r["kind"] == "new"), key=lambda r: r["t_send"]):
        if prev is not None and r["site"] != prev:
            switches += 1
        prev = r["site"]

    res = {
        "total": len(reqs),
        "ok": len(ok),
        "failed": len(reqs) - len(ok),
        "failed_connect": sum(1 for r in reqs if r["kind"] == "new" and never_connected(r)),
        "outcomes": outcomes,
        "by_kind": {k: sum(1 for r in reqs if r["kind"] == k) for k in ("new", "long")},
        "sites": sites,
        "first_t_send": min((r["t_send"] for r in reqs), default=None),
        "last_t_send": max((r["t_send"] for r in reqs), default=None),
        "reopens": sum(1 for r in rows if r["kind"] == "reopen"),
        "long_breaks": sum(1 for r in reqs if r["kind"] == "long" and r["outcome"] != "ok"),
        "max_latency_ms": _max(r["latency_ms"] for r in ok),
        "max_latency_ms_any": _max(r["latency_ms"] for r in reqs),
        "p50_latency_ms": _pct([r["latency_ms"] for r in ok], 0.50),
        "p99_latency_ms": _pct([r["latency_ms"] for r in ok], 0.99),
        "switches": switches,
        "fault_at": fault_at,
        "failed_after_fault": None,
        "ok_after_fault": None,
        "max_latency_ms_after_fault": None,
        "first_backup_after_fault": None,
        "failover_s": None,
        "requests_in_window": None,
        "failed_in_window": None,
        "repair_at": repair_at,
        "failed_after_repair": None,
        "first_primary_after_repair": None,
        "failback_s": None,
    }
    if fault_at is not None:
        after = [r for r in reqs if r["t_send"] >= fault_at]
        res["failed_after_fault"] = sum(1 for r in after if r["outcome"] != "ok")
        res["ok_after_fault"] = sum(1 for r in after if r["outcome"] == "ok")
        res["max_latency_ms_after_fault"] = _max(r["latency_ms"] for r in after if r["outcome"] == "ok")
        fb = _first_done(reqs, fault_at, backup)
        res["first_backup_after_fault"] = fb
        if fb is not None:
            res["failover_s"] = round(fb - fault_at, 6)
            win = [r for r in reqs if fault_at <= r["t_send"] < fb]
            res["requests_in_window"] = len(win)
            res["failed_in_window"] = sum(1 for r in win if r["outcome"] != "ok")
    if repair_at is not None:
        res["failed_after_repair"] = sum(1 for r in reqs
                                         if r["t_send"] >= repair_at and r["outcome"] != "ok")
        fp = _first_done(reqs, repair_at, primary)
        res["first_primary_after_repair"] = fp
        if fp is not None:
            res["failback_s"] = round(fp - repair_at, 6)
    return res


def main():
    ap = argparse.ArgumentParser(description="analyze a loadgen.py log")
    ap.add_argument("log")
    ap.add_argument("--fault-at", type=float)
    ap.add_argument("--repair-at", type=float)
    ap.add_argument("--primary", default="primary")
    ap.add_argument("--backup", default="backup")
    ap.add_argument("--from", dest="t_from", type=float)
    ap.add_argument("--to", dest="t_to", type=float)
    a = ap.parse_args()
    try:
        res = analyze(a.log, a.fault_at, a.repair_at, a.primary, a.backup, a.t_from, a.t_to)
    except OSError as e:
        print(f"analyze: {e}", file=sys.stderr)
        return 1
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
