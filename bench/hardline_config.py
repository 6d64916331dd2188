#!/usr/bin/env python3
"""Writes a hardline config serving the SIPp harness's users on stdout.

Users FIRST..FIRST+USERS-1, password pw<user>, realm bench.test: the
population of ../shared/bench/sipp-harness/gen_users.py. The extensions
carry HA1 hashes (hardline's minimum password length refuses "pw1000"), for
both algorithms the default challenge offers.
"""
import argparse
import hashlib


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--first", type=int, default=1000)
    ap.add_argument("--domain", default="bench.test")
    ap.add_argument("--port", type=int, default=5080)
    ap.add_argument("--metrics-port", type=int, default=19099)
    # Embedded defaults unless given: finished transactions linger as compact
    # remnants (limits.max_lingering), so the live table stays small.
    ap.add_argument("--max-transactions", type=int, default=None)
    # The shield: who is trusted, and whether bans go into nftables (only
    # inside a network namespace of the benchmark's own: see run.sh).
    ap.add_argument("--trusted", default="127.0.0.0/8")
    ap.add_argument("--kernel", choices=["true", "false"], default="false")
    # The SIP ladders compare proxies: Kamailio in the harness relays no
    # media, so neither does hardline there (bench/media.sh measures the
    # relay against rtpengine).
    ap.add_argument("--media", choices=["true", "false"], default="true")
    ap.add_argument("--media-ports", default=None, help="FIRST-LAST relay ports")
    ap.add_argument("--media-timeout", type=int, default=None)
    a = ap.parse_args()
    out = [
        "[sip]",
        f'listen = ["udp:127.0.0.1:{a.port}"]',
        f'domain = "{a.domain}"',
        "",
        "[storage]",
        'path = "hardline.db"',
        "",
        "[metrics]",
        f'listen = "127.0.0.1:{a.metrics_port}"',
        "",
    ]
    # SIPp is the load generator: trusted, as an operator would trust theirs
    # (the shield still looks every packet up). The ladders run in the
    # host's network namespace: bans in-process (no nftables table of ours
    # on the host). The shield phase trusts only the legit generator and
    # floods from other addresses.
    out += ["[shield]", f'trusted = ["{a.trusted}"]', f"kernel = {a.kernel}", ""]
    out += ["[media]", f"enabled = {a.media}"]
    if a.media_ports:
        lo, hi = a.media_ports.split("-")
        out += [f"port_range = [{int(lo)}, {int(hi)}]"]
    if a.media_timeout is not None:
        out += [f"timeout_secs = {a.media_timeout}"]
    out += [""]
    if a.max_transactions is not None:
        out += ["[limits]", f"max_transactions = {a.max_transactions}", ""]
    for u in range(a.first, a.first + a.users):
        secret = f"{u}:{a.domain}:pw{u}".encode()
        out += [
            "[[extensions]]",
            f'user = "{u}"',
            f'ha1_md5 = "{hashlib.md5(secret).hexdigest()}"',
            f'ha1_sha256 = "{hashlib.sha256(secret).hexdigest()}"',
            "",
        ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
