#!/usr/bin/env python3
"""Helpers of bench/media.sh (the RTP relay benchmark).

  legs N            `hardline calls --format json` on stdin: when N calls are
                    answered, prints "CALLER_PORT CALLEE_PORT" per call (the
                    relay ports each endpoint sends to) and exits 0; else
                    prints the count on stderr and exits 1.
  metrics URL       the media lines of hardline's /metrics.
  report RUN        the table of RUN/*.json into RUN/media.md (and stdout).
"""
import glob
import json
import os
import re
import sys
import urllib.request


def legs(n: int) -> int:
    calls = json.load(sys.stdin)
    answered = [c for c in calls if c.get("state") == "answered"]
    out = []
    for c in answered:
        port = {s["direction"]: s.get("relay_port") for s in c.get("streams", [])
                if s.get("stream", 0) == 0}
        a, b = port.get("caller_to_callee"), port.get("callee_to_caller")
        if a and b:
            out.append(f"{a} {b}")
    if len(out) < n:
        print(f"{len(out)} of {n} calls answered with relay ports", file=sys.stderr)
        return 1
    print("\n".join(out[:n]))
    return 0


def metrics(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("hardline_media"):
            print(line)
    return 0


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or not b else a / b


def row_of(d: dict) -> dict:
    """The figures of one rtpload result."""
    w = d["window_s"]
    relay = d["watched"][0] if d.get("watched") else {}
    cpu = relay.get("cpu_s")
    pps = d["received_pps"]
    cpu_pct = None if cpu is None else 100.0 * cpu / w
    # Threads by name (rtpengine has several "poller"s): CPU % of a core.
    threads = {}
    for t in relay.get("threads", []):
        threads[t["name"]] = threads.get(t["name"], 0.0) + 100.0 * t["cpu_s"] / w
    return {
        "calls": d["calls"],
        "pps": pps,
        "cpu_pct": cpu_pct,
        "per_call": None if cpu_pct is None else cpu_pct / d["calls"],
        "us_per_pkt": None if cpu is None or not d["received_window"]
        else 1e6 * cpu / d["received_window"],
        "delivery": 100.0 * d["delivery"],
        "gen_pct": 100.0 * d["generator_cpu_s"] / w,
        # Further watched processes: hardline's SIPp UAC and UAS.
        "sipp_pct": sum(100.0 * (x.get("cpu_s") or 0.0) / w for x in d["watched"][1:])
        if len(d.get("watched", [])) > 1 else None,
        "loadavg": d.get("loadavg_1m_at_end"),
        "late": d["late_sends_over_5ms"],
        "max_late": d["max_late_ms"],
        "dead": d["dead_streams"],
        "asym": d["asymmetric"],
        "lost": d["sent_window"] - d["received_window"],
        "threads": threads,
        "wakeups": None if not relay or "voluntary_switches" not in relay
        else relay["voluntary_switches"] / w,
        "preempted": None if not relay or "involuntary_switches" not in relay
        else relay["involuntary_switches"] / w,
    }


def report(run: str) -> int:
    rows = {}
    for p in sorted(glob.glob(os.path.join(run, "*-load.json"))):
        m = re.fullmatch(r"(hardline|rtpengine)-(\d+)-load\.json", os.path.basename(p))
        if not m:
            continue
        with open(p) as f:
            rows[(m[1], int(m[2]))] = row_of(json.load(f))
    ns = sorted({n for _, n in rows})
    meta = {}
    mp = os.path.join(run, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    L = []
    L.append("# RTP relay benchmark: hardline vs rtpengine (user space)\n")
    for k, v in meta.items():
        L.append(f"- {k}: {v}")
    L.append("")
    L.append("Each call: two G.711 streams (caller->callee, callee->caller), 50 packets/s "
             "each, 172-byte UDP payload. CPU = utime+stime of the relay process (all "
             "threads) over the window, in % of one core. µs/packet = relay CPU per "
             "packet delivered. Generator = rtpload's own CPU (it shares the host's 2 "
             "cores with the relay); SIPp = hardline's idle SIPp UAC and UAS holding the "
             "calls (rtpengine's sessions need no SIP). Load avg = the host's 1-minute load average at the "
             "end of the window (the host is shared with other work). Lost: sent minus "
             "delivered in the window (negative: packets in flight at its edges).\n")
    L.append("| N calls | relay | relayed pps | relay CPU % core | CPU/call % core "
             "| µs CPU/packet | delivery % | lost | generator CPU % | SIPp CPU % | load avg "
             "| late sends >5 ms |")
    L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in ns:
        for relay in ("hardline", "rtpengine"):
            r = rows.get((relay, n))
            if not r:
                continue
            L.append(f"| {n} | {relay} | {r['pps']:.0f} | {fmt(r['cpu_pct'], '.1f')} "
                     f"| {fmt(r['per_call'], '.3f')} | {fmt(r['us_per_pkt'], '.2f')} "
                     f"| {r['delivery']:.3f} | {r['lost']} | {r['gen_pct']:.1f} "
                     f"| {fmt(r['sipp_pct'], '.1f') if r['sipp_pct'] is not None else '-'} "
                     f"| {fmt(r['loadavg'], '.2f')} | {r['late']} |")
    L.append("")
    L.append("Ratios hardline / rtpengine (below 1: hardline cheaper):\n")
    L.append("| N calls | CPU ratio | µs/packet ratio | delivery hardline | delivery rtpengine |")
    L.append("|---:|---:|---:|---:|---:|")
    for n in ns:
        h, e = rows.get(("hardline", n)), rows.get(("rtpengine", n))
        if not h or not e:
            continue
        L.append(f"| {n} | {fmt(ratio(h['cpu_pct'], e['cpu_pct']), '.2f')} "
                 f"| {fmt(ratio(h['us_per_pkt'], e['us_per_pkt']), '.2f')} "
                 f"| {h['delivery']:.3f} % | {e['delivery']:.3f} % |")
    L.append("")
    L.append("Where the relay's CPU went, by thread name (% of one core; threads "
             "under 0.5 % left out):\n")
    for (relay, n), r in sorted(rows.items()):
        busy = sorted(((v, k) for k, v in r["threads"].items() if v >= 0.5), reverse=True)
        parts = ", ".join(f"{k} {v:.1f}" for v, k in busy) or "(none above 0.5 %)"
        sw = ""
        if r["wakeups"] is not None:
            sw = (f"; context switches/s: {r['wakeups']:.0f} voluntary (wake-ups), "
                  f"{r['preempted']:.0f} involuntary, {r['pps'] / max(r['wakeups'], 1):.1f} "
                  f"packets per wake-up")
        L.append(f"- {relay} N={n}: {parts}{sw}")
    odd = [f"{relay} N={n}: {r['dead']} streams got nothing, {r['asym']} packets "
           f"from an unexpected port"
           for (relay, n), r in sorted(rows.items()) if r["dead"] or r["asym"]]
    if odd:
        L.append("")
        L.append("Anomalies:\n")
        L.extend(f"- {o}" for o in odd)
    L.extend(profile_section(run))
    text = "\n".join(L) + "\n"
    with open(os.path.join(run, "media.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


def perf_counts(path: str) -> dict:
    """perf stat -x, output: event -> count."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 3 or line.startswith("#"):
                continue
            try:
                out[parts[2]] = float(parts[0])
            except ValueError:
                pass  # <not supported> / <not counted>
    return out


def profile_section(run: str) -> list:
    """System calls per relayed packet and the hottest symbols (PROFILE=1)."""
    secs = 5.0  # media.sh PROFILE_SECS
    per = {}
    for relay in ("hardline", "rtpengine"):
        csv = os.path.join(run, f"{relay}-syscalls.csv")
        rj = os.path.join(run, f"{relay}-syscalls-run.json")
        if os.path.exists(csv) and os.path.exists(rj):
            with open(rj) as f:
                d = json.load(f)
            pkts = d["received_pps"] * secs
            if pkts:
                per[relay] = ({k: v / pkts for k, v in perf_counts(csv).items()}, d)
    if not per:
        return []
    L = ["", "Profile runs (PROFILE=1, largest N, separate runs after the measurement; "
         f"counts over {secs:.0f} s divided by the packets relayed meanwhile):", ""]
    events = sorted({k for c, _ in per.values() for k in c if c[k] > 0.0005})
    relays = sorted(per)
    L.append("| per relayed packet | " + " | ".join(relays) + " |")
    L.append("|---|" + "---:|" * len(relays))
    for e in events:
        name = e.replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "all syscalls")
        if e == "task-clock":
            name = "task-clock (µs CPU)"
        cells = []
        for r in relays:
            v = per[r][0].get(e)
            if v is not None and e == "task-clock":
                v *= 1000.0  # msec -> µs
            cells.append(fmt(v, ".3f"))
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    L.append("| delivery in that run | " + " | ".join(
        f"{100 * per[r][1]['delivery']:.2f} %" for r in relays) + " |")
    for relay in ("hardline", "rtpengine"):
        p = os.path.join(run, f"{relay}-perf.txt")
        if os.path.exists(p):
            with open(p) as f:
                top = [l.rstrip() for l in f][:15]
            L += ["", f"{relay}: hottest symbols (perf record, self time):", "", "```"] + top + ["```"]
    return L


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, arg = sys.argv[1], sys.argv[2]
    if cmd == "legs":
        return legs(int(arg))
    if cmd == "metrics":
        return metrics(arg)
    if cmd == "report":
        return report(arg)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
