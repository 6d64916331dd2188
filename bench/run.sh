#!/usr/bin/env bash
# bench/run.sh - hardline and Kamailio side by side, in one run, with the
# SIPp harness in ../shared/bench/sipp-harness (HARNESS= to point elsewhere).
#
# 1. builds hardline (release) and writes a config serving the harness's
#    users (1000..1999, password pw<user>, realm bench.test) on 127.0.0.1:5080;
# 2. starts it at the harness's nice level and runs the harness against it
#    (SERVER=external, CPU and memory of its process tree);
# 3. stops it (SIGTERM, by PID) and runs the harness against Kamailio;
# 4. measures RSS with MANY_USERS (10 000) registrations on both servers;
# 5. prints a comparison table (bench/compare.py) and writes it to
#    bench/results/<run>/comparison.md.
#
# Usage: bench/run.sh [--quick]        (--quick: the harness's 3-minute smoke ladders)
# Environment: TESTS ("mem reg calls"), MANY_USERS (10000), PORT (5080), and
# every variable of the harness (DURATION, REG_RATES, CALL_RATES, ...).
# Traffic stays on loopback; every load is bounded by the harness.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS=${HARNESS:-$root/../shared/bench/sipp-harness}
TESTS=${TESTS:-"mem reg calls"}
MANY_USERS=${MANY_USERS:-10000}
PORT=${PORT:-5080}
METRICS_PORT=${METRICS_PORT:-19099}
NICE=${NICE:--10}
QUICK=()
[ "${1:-}" = --quick ] && QUICK=(--quick)

[ -x "$HARNESS/bench.sh" ] || [ -f "$HARNESS/bench.sh" ] || {
    echo "harness not found at $HARNESS (set HARNESS=)" >&2
    exit 2
}
# RUN= reuses a run directory; PHASES= picks "main" (the ladders), "many"
# (memory with MANY_USERS registrations) and/or "shield" (flood, scanner and
# guesser against both servers, in a network namespace; needs root).
RUN=${RUN:-$root/bench/results/$(date +%Y%m%d-%H%M%S)}
PHASES=${PHASES:-"main many shield"}
mkdir -p "$RUN"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

echo "== building hardline (release)"
(cd "$root" && cargo build --release --locked -p hardline)
BIN="$CARGO_TARGET_DIR/release/hardline"
git -C "$root" rev-parse --short HEAD >"$RUN/hardline-commit.txt" 2>/dev/null || true

SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

# start_hardline DIR USERS [CONFIG-ARGS...]: a fresh data directory serving
# USERS extensions (in the network namespace $NETNS when set)
NETNS=""
start_hardline() {
    local dir=$1 users=$2
    shift 2
    rm -rf "$dir"
    mkdir -p "$dir"
    # --media false: the harness's Kamailio relays no media either.
    python3 "$root/bench/hardline_config.py" --users "$users" --port "$PORT" \
        --metrics-port "$METRICS_PORT" --media false "$@" >"$dir/hardline.toml"
    local in_ns=()
    [ -n "$NETNS" ] && in_ns=(ip netns exec "$NETNS")
    "${in_ns[@]}" nice -n "$NICE" "$BIN" serve --config "$dir/hardline.toml" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        if grep -q "hardline ready" "$dir/server.log" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "hardline did not start; log:" >&2
    cat "$dir/server.log" >&2
    exit 1
}

harness() {  # OUT-DIR ARGS... (bench.sh takes its parameters from the environment too)
    local out=$1
    shift
    bash "$HARNESS/bench.sh" --out "$out" "${QUICK[@]}" "$@"
}

if [[ " $PHASES " == *" main "* ]]; then
    echo "== hardline: $TESTS"
    start_hardline "$RUN/hardline-server" 1000
    harness "$RUN/hardline" --server external --target "127.0.0.1:$PORT" \
        --server-pid "$SERVER_PID" --tests "$TESTS"
    stop_server

    echo "== kamailio: $TESTS"
    harness "$RUN/kamailio" --tests "$TESTS"
fi

# Memory with many registrations: the same harness step (mem) with more
# users, registered at a rate both servers take without loss.
if [[ " $PHASES " == *" many "* ]]; then
    echo "== memory with $MANY_USERS registrations"
    start_hardline "$RUN/hardline-server-many" "$MANY_USERS"
    USERS=$MANY_USERS PREREG_RATE=${MANY_RATE:-500} harness "$RUN/hardline-many" \
        --server external --target "127.0.0.1:$PORT" --server-pid "$SERVER_PID" --tests mem
    stop_server
    USERS=$MANY_USERS PREREG_RATE=${MANY_RATE:-500} harness "$RUN/kamailio-many" --tests mem
fi

# The shield against a flood, a scanner and a password guesser: the
# harness's flood and ips tests, legit calls from 127.0.0.1 (trusted, as an
# operator's known peer) and the attackers from 127.0.0.2-4. Everything runs
# in a network namespace of our own, so bans reach that namespace's
# nftables and never the host's: hardline with bans in the kernel, hardline
# dropping in-process only, and Kamailio with the harness's pike config.
if [[ " $PHASES " == *" shield "* ]]; then
    # A fresh namespace per server: bans one run left in the kernel must not
    # shield the next.
    new_netns() {
        [ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null
        NETNS="hlbench$$-$1"
        ip netns add "$NETNS"
        ip netns exec "$NETNS" ip link set lo up
    }
    trap 'stop_server; [ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null || true' EXIT
    for mode in kernel inprocess; do
        echo "== shield: hardline, bans $mode"
        new_netns "$mode"
        kernel=false
        [ "$mode" = kernel ] && kernel=true
        start_hardline "$RUN/hardline-server-shield-$mode" 1000 --trusted 127.0.0.1 --kernel "$kernel"
        ip netns exec "$NETNS" bash "$HARNESS/bench.sh" --out "$RUN/hardline-shield-$mode" \
            "${QUICK[@]}" --server external --target "127.0.0.1:$PORT" \
            --server-pid "$SERVER_PID" --tests "flood ips"
        stop_server
    done
    echo "== shield: kamailio (pike)"
    new_netns kamailio
    ip netns exec "$NETNS" bash "$HARNESS/bench.sh" --out "$RUN/kamailio-shield" \
        "${QUICK[@]}" --tests "flood ips"
    ip netns del "$NETNS"
    NETNS=""
fi

python3 "$root/bench/compare.py" "$RUN" | tee "$RUN/comparison.md"
echo "results: $RUN"
