#!/usr/bin/env python3
"""Side-by-side table of one bench/run.sh run: hardline vs Kamailio.

Reads RUN/{hardline,kamailio,hardline-many,kamailio-many}/results.csv (the
harness's rows) and prints Markdown: max sustained rates, server CPU per
operation at every rate both servers passed, and memory. Ratios are
hardline / Kamailio (below 1 = hardline uses less, above 1 = more).
"""
import csv
import os
import sys


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def max_sustained(rs, kind):
    for r in rs:
        if r["test"] == kind and r["label"] == "MAX_SUSTAINED":
            return int(r["rate"])
    return None


def steps(rs, kind):
    """rate -> row of the passing steps of a ladder (the last one wins)."""
    out = {}
    for r in rs:
        if r["test"] == kind and r["label"] != "MAX_SUSTAINED" and r["pass"] == "PASS":
            out[int(r["rate"])] = r
    return out


def mem(rs, label):
    for r in rs:
        if r["test"] == "mem" and r["label"] == label:
            return float(r["server_pss_mb"]), float(r["server_rss_mb"])
    return None


def cpu_us(row, per):
    """Server CPU microseconds per operation of a step (per = ops per call)."""
    try:
        return float(row["server_cpu_pct"]) / 100 * 1e6 / (int(row["rate"]) * per)
    except (ValueError, ZeroDivisionError):
        return None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}{unit}"
    return f"{v}{unit}"


def env_line(run, name, key):
    p = os.path.join(run, name, "env.txt")
    if not os.path.exists(p):
        return ""
    for line in open(p):
        if line.startswith(key):
            return line.strip()
    return ""


def main() -> None:
    run = sys.argv[1]
    hl = rows(os.path.join(run, "hardline", "results.csv"))
    km = rows(os.path.join(run, "kamailio", "results.csv"))
    hl_many = rows(os.path.join(run, "hardline-many", "results.csv"))
    km_many = rows(os.path.join(run, "kamailio-many", "results.csv"))
    commit = ""
    cp = os.path.join(run, "hardline-commit.txt")
    if os.path.exists(cp):
        commit = open(cp).read().strip()

    print(f"Run `{os.path.basename(run)}` (hardline {commit or '?'}; "
          f"{env_line(run, 'kamailio', 'kamailio:')}; {env_line(run, 'kamailio', 'sipp:')}; "
          f"{env_line(run, 'kamailio', 'host:')})")
    print()
    print("| metric | hardline | Kamailio | hardline / Kamailio |")
    print("| --- | ---: | ---: | ---: |")
    for kind, name in (("reg", "REGISTER with digest auth, max sustained /s"),
                       ("calls", "authenticated calls, max sustained /s")):
        a, b = max_sustained(hl, kind), max_sustained(km, kind)
        print(f"| {name} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    # CPU per operation at the highest rate both passed (same offered load).
    for kind, name, per in (("reg", "server CPU per registration (401 + 200), µs", 1),
                            ("calls", "server CPU per call (INVITE, 407, ACK, INVITE, 180, 200, ACK, BYE, 200), µs", 1)):
        hs, ks = steps(hl, kind), steps(km, kind)
        common = sorted(set(hs) & set(ks))
        if not common:
            print(f"| {name} | - | - | - |")
            continue
        r = common[-1]
        a, b = cpu_us(hs[r], per), cpu_us(ks[r], per)
        print(f"| {name}, at {r}/s | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    for rs_h, rs_k, label, name in (
        (hl, km, "idle", "memory idle, RSS MB (PSS)"),
        (hl, km, "1000_registered", "memory with 1 000 registrations, RSS MB (PSS)"),
        (hl_many, km_many, None, "memory with many registrations, RSS MB (PSS)"),
    ):
        if label is None:
            labels = [r["label"] for r in rs_h if r["test"] == "mem" and r["label"] != "idle"]
            if not labels:
                continue
            label = labels[0]
            name = f"memory with {label.split('_')[0]} registrations, RSS MB (PSS)"
        a, b = mem(rs_h, label), mem(rs_k, label)
        fa = f"{a[1]:.1f} ({a[0]:.1f})" if a else "-"
        fb = f"{b[1]:.1f} ({b[0]:.1f})" if b else "-"
        print(f"| {name} | {fa} | {fb} | {ratio(a and a[1], b and b[1])} (PSS {ratio(a and a[0], b and b[0])}) |")
    print()
    for kind, name in (("reg", "REGISTER"), ("calls", "calls")):
        hs, ks = steps(hl, kind), steps(km, kind)
        common = sorted(set(hs) & set(ks))
        if not common:
            continue
        print(f"{name}: server CPU per operation at each rate both passed "
              "(µs; server CPU %, SIPp CPU %, mean response ms)")
        print()
        print("| rate /s | hardline µs | Kamailio µs | ratio | hardline CPU % | Kamailio CPU % "
              "| SIPp % (hl / km) | mean ms (hl / km) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in common:
            a, b = cpu_us(hs[r], 1), cpu_us(ks[r], 1)
            print(f"| {r} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} | {hs[r]['server_cpu_pct']} | "
                  f"{ks[r]['server_cpu_pct']} | {hs[r]['sipp_cpu_pct']} / {ks[r]['sipp_cpu_pct']} | "
                  f"{hs[r]['rt_avg_ms'] or '-'} / {ks[r]['rt_avg_ms'] or '-'} |")
        print()


if __name__ == "__main__":
    main()
