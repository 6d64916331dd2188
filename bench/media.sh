#!/usr/bin/env bash
# bench/media.sh - hardline's RTP relay and rtpengine (user-space forwarding)
# side by side, in one run: for each N in CALLS, N concurrent G.711 calls
# (two streams of 50 packets/s, 172-byte UDP payload) through hardline,
# then through rtpengine, measured by bench/rtpload (packets sent and
# delivered, the relay's CPU over the same window, the generator's own).
#
# hardline allocates relay ports per call in its SIP core, so its calls are
# set up with SIPp (caller 1000 -> callee 1001, registered to one SIPp UAS)
# and rtpload reads the relay ports from `hardline calls`. rtpengine's
# sessions are created by rtpload itself over the ng protocol, with each
# endpoint's real socket in the SDP. Each relay is started fresh for each N.
#
# Usage: bench/media.sh
# Environment: CALLS ("50 200 500"), DURATION (10 s window), WARMUP (2 s),
#   RELAYS ("hardline rtpengine"), PROFILE (0; 1: after the largest N,
#   system calls per packet (perf stat) and a CPU profile (perf record) of
#   each relay under the same load, in extra runs),
#   RUN (results directory).
# Ports (the host is shared): hardline SIP 5090, metrics 19190, relay
# 40000-49999; rtpengine ng 19192, relay 50000-59999; SIPp 5091-5099.
# Loopback only; every load is bounded in count and time; only processes
# started here are stopped, by PID.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLS=${CALLS:-"50 200 500"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
RELAYS=${RELAYS:-"hardline rtpengine"}
PROFILE=${PROFILE:-0}
PROFILE_SECS=5
RATE=50 # SIPp call setup rate (calls/s)
RUN=${RUN:-$root/bench/results/$(date +%Y%m%d-%H%M%S)-media}

HL_PORT=5090
HL_METRICS=19190
NG=127.0.0.1:19192
# SIPp: registration, then the UAS and the UAC. Each SIPp binds a control
# port (-cp) and media ports (-mp and -mp+2) besides its SIP port: all
# pinned inside 5091-5099 (the registration is done before the UAS starts).
REG_SIP=5091 REG_CP=5092 REG_MP=5094
UAS_SIP=5091 UAS_CP=5092 UAS_MP=5097
UAC_SIP=5093 UAC_CP=5094 UAC_MP=5096

# Refuse to start over someone else's ports rather than measure the wrong thing.
busy=$(ss -Hltun | awk '{print $5}' | grep -E ":(509[0-9]|1919[0-2])$" || true)
if [ -n "$busy" ]; then
    echo "ports in use, refusing to start: $busy" >&2
    exit 1
fi

mkdir -p "$RUN"
HL_TARGET=${CARGO_TARGET_DIR:-$root/target}
LOAD_TARGET=${RTPLOAD_TARGET_DIR:-$root/bench/rtpload/target}
echo "== building hardline (release) and rtpload"
(cd "$root" && CARGO_TARGET_DIR=$HL_TARGET cargo build --release --locked -p hardline)
(cd "$root/bench/rtpload" && CARGO_TARGET_DIR=$LOAD_TARGET cargo build --release --locked)
HL="$HL_TARGET/release/hardline"
LOAD="$LOAD_TARGET/release/rtpload"

# Every process started here, by PID; stopped on any exit.
HL_PID="" UAS_PID="" UAC_PID="" RTPE_PID=""
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_all() {
    stop_pid "$UAC_PID"
    stop_pid "$UAS_PID"
    stop_pid "$HL_PID"
    stop_pid "$RTPE_PID"
    UAC_PID="" UAS_PID="" HL_PID="" RTPE_PID=""
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# sipp_bg NAME SECS ARGS...: SIPp against hardline, bounded by `timeout`, in
# the background (its PID in $!). Logs in $dir/sipp-NAME.
sipp_bg() {
    local name=$1 secs=$2
    shift 2
    mkdir -p "$dir/sipp-$name"
    (cd "$dir/sipp-$name" && exec timeout "$secs" sipp "127.0.0.1:$HL_PORT" -t u1 -i 127.0.0.1 \
        -nostdin -trace_err "$@" >stdout.log 2>stderr.log) &
}

start_hardline() {
    rm -rf "$dir"
    mkdir -p "$dir"
    # Users 1000 and 1001 (password pw<user>, realm bench.test), loopback
    # trusted (no per-source relay cap, no call limits), bans in-process;
    # relay ports in our range, no media timeout during the run.
    {
        python3 "$root/bench/hardline_config.py" --users 2 --first 1000 \
            --port "$HL_PORT" --metrics-port "$HL_METRICS" --trusted 127.0.0.0/8 --kernel false \
            --media true --media-ports 40000-49999 --media-timeout 3600
    } >"$dir/hardline.toml"
    "$HL" serve --config "$dir/hardline.toml" >"$dir/server.log" 2>&1 &
    HL_PID=$!
    for _ in $(seq 1 300); do
        grep -q "hardline ready" "$dir/server.log" 2>/dev/null && return 0
        kill -0 "$HL_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "hardline did not start; log:" >&2
    tail -20 "$dir/server.log" >&2
    exit 1
}

# run_hardline N: N calls up through SIPp, then the load.
run_hardline() {
    local n=$1
    dir="$RUN/hardline-$n"
    echo "== hardline, $n calls"
    start_hardline
    printf 'SEQUENTIAL\n1001;bench.test;[authentication username=1001 password=pw1001];\n' >"$dir/callee.csv"
    printf 'SEQUENTIAL\n1000;bench.test;[authentication username=1000 password=pw1000];1001\n' >"$dir/caller.csv"
    # The callee's contact is the UAS (not started yet: a REGISTER does not
    # reach the contact).
    sipp_bg reg 20 -sf "$root/tests/sipp/reg.xml" -p $REG_SIP -cp $REG_CP -mp $REG_MP \
        -inf "$dir/callee.csv" -m 1 -key contact "127.0.0.1:$UAS_SIP" -key ctransport udp \
        -key expires 3600 -auth_uri bench.test
    wait $! || { echo "registration failed: $(cat "$dir/sipp-reg/stderr.log")" >&2; exit 1; }
    # Calls last longer than setup + wait + load; they are cut short by
    # stopping SIPp and hardline afterwards.
    local hold=$((n / RATE + 60 + WARMUP + DURATION))
    sipp_bg uas $((hold + 60)) -sf "$root/tests/sipp/uas.xml" -p $UAS_SIP -cp $UAS_CP -mp $UAS_MP -m "$n" -l "$n"
    UAS_PID=$!
    sleep 0.5
    sipp_bg uac $((hold + 60)) -sf "$root/tests/sipp/uac_media.xml" -p $UAC_SIP -cp $UAC_CP -mp $UAC_MP \
        -inf "$dir/caller.csv" -m "$n" -l "$n" -r $RATE -d $((hold * 1000))
    UAC_PID=$!
    # Wait (bounded) until all N calls are answered and have relay ports.
    local deadline=$((SECONDS + n / RATE + 30))
    until "$HL" calls --format json --config "$dir/hardline.toml" 2>/dev/null |
        python3 "$root/bench/media_helper.py" legs "$n" >"$dir/legs.txt" 2>"$dir/legs.err"; do
        if [ $SECONDS -ge $deadline ] || ! kill -0 "$UAC_PID" 2>/dev/null; then
            echo "calls did not come up: $(cat "$dir/legs.err")" >&2
            tail -5 "$dir/sipp-uac/stderr.log" >&2 || true
            exit 1
        fi
        sleep 1
    done
    echo "   $n calls answered"
    # SIPp's own CPU too (idle calls, but on the same 2 cores): the
    # processes under the `timeout` wrappers.
    local sipps
    sipps=$(cat /proc/"$UAC_PID"/task/*/children /proc/"$UAS_PID"/task/*/children 2>/dev/null | xargs -n1 printf -- '--watch %s ')
    # shellcheck disable=SC2086 # one word per argument
    "$LOAD" --legs "$dir/legs.txt" --duration "$DURATION" --warmup "$WARMUP" --watch "$HL_PID" $sipps \
        >"$RUN/hardline-$n-load.json"
    python3 "$root/bench/media_helper.py" metrics "http://127.0.0.1:$HL_METRICS/metrics" \
        >"$dir/metrics.txt" || true
    summary "$RUN/hardline-$n-load.json"
    if [ "$PROFILE" = 1 ] && [ "$n" = "$N_MAX" ]; then
        profile hardline "$HL_PID" --legs "$dir/legs.txt"
    fi
    stop_all
}

start_rtpengine() {
    rm -rf "$dir"
    mkdir -p "$dir"
    # No Debian config file; no kernel forwarding table: user space only.
    rtpengine --config-file=none --foreground --log-stderr --table=-1 \
        --interface=127.0.0.1 --listen-ng=$NG --port-min=50000 --port-max=59999 \
        --log-level=4 --pidfile="$dir/rtpengine.pid" >"$dir/rtpengine.log" 2>&1 &
    RTPE_PID=$!
    for _ in $(seq 1 100); do
        ss -Huln | awk '{print $4}' | grep -qx "$NG" && return 0
        kill -0 "$RTPE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "rtpengine did not start; log:" >&2
    tail -20 "$dir/rtpengine.log" >&2
    exit 1
}

run_rtpengine() {
    local n=$1
    dir="$RUN/rtpengine-$n"
    echo "== rtpengine, $n calls"
    start_rtpengine
    # Threads by name: what --num-threads defaulted to.
    cat /proc/"$RTPE_PID"/task/*/comm | sort | uniq -c >"$dir/threads.txt"
    "$LOAD" --rtpengine "$NG" --calls "$n" --duration "$DURATION" --warmup "$WARMUP" \
        --watch "$RTPE_PID" >"$RUN/rtpengine-$n-load.json"
    summary "$RUN/rtpengine-$n-load.json"
    if [ "$PROFILE" = 1 ] && [ "$n" = "$N_MAX" ]; then
        profile rtpengine "$RTPE_PID" --rtpengine "$NG" --calls "$n"
    fi
    stop_all
}

# profile RELAY PID LOAD-ARGS...: system calls by type (perf stat on the
# syscall tracepoints, counted in the kernel) and a CPU profile (perf
# record) of the relay, each under a fresh load of the same size. Extra
# runs, after the measurement: their figures are not in the table.
PERF_EVENTS="task-clock,context-switches,raw_syscalls:sys_enter"
for sc in recvfrom recvmsg recvmmsg sendto sendmsg sendmmsg epoll_wait epoll_pwait getsockname futex; do
    PERF_EVENTS="$PERF_EVENTS,syscalls:sys_enter_$sc"
done
profile() {
    local relay=$1 pid=$2 lpid
    shift 2
    command -v perf >/dev/null || { echo "   (no perf: no profile)"; return 0; }
    echo "   profiling $relay (extra runs, not the measurement)"
    # hardline hands a leg to a new source address only after the latched
    # one has been quiet for 2 s (relatch_after): each run's fresh sockets wait.
    sleep 3
    "$LOAD" "$@" --duration $((PROFILE_SECS + 2)) --warmup 1 >"$RUN/$relay-syscalls-run.json" &
    lpid=$!
    sleep 2
    timeout $((PROFILE_SECS + 10)) perf stat -x, -e "$PERF_EVENTS" -p "$pid" \
        -o "$RUN/$relay-syscalls.csv" -- sleep "$PROFILE_SECS" || true
    wait "$lpid" || true
    sleep 3
    "$LOAD" "$@" --duration $((PROFILE_SECS + 2)) --warmup 1 >"$RUN/$relay-perf-run.json" &
    lpid=$!
    sleep 2
    timeout $((PROFILE_SECS + 10)) perf record -q -F 999 -g -p "$pid" -o "$RUN/$relay-perf.data" \
        -- sleep "$PROFILE_SECS" 2>/dev/null || true
    wait "$lpid" || true
    perf report -i "$RUN/$relay-perf.data" --stdio --no-children --sort dso,sym 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -40 >"$RUN/$relay-perf.txt" || true
}

summary() {
    python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
w = d["watched"][0]
cpu = w["cpu_s"] or 0
print(f"   relayed {d['received_pps']:.0f} pps, delivery {100*d['delivery']:.3f} %, "
      f"relay CPU {100*cpu/d['window_s']:.1f} % core, generator {100*d['generator_cpu_s']/d['window_s']:.1f} %")
EOF
}

N_MAX=$(printf '%s\n' $CALLS | sort -n | tail -1)
{
    printf '{"date": "%s", "host": "%s, %s cores, kernel %s", ' "$(date -Is)" "$(hostname)" "$(nproc)" "$(uname -r)"
    printf '"hardline": "%s", ' "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
    printf '"rtpengine": "%s (user space: --table=-1; default --num-threads)", ' "$(rtpengine --version 2>&1 | head -1)"
    printf '"window": "%s s after %s s warm-up", "load average at start": "%s"}\n' "$DURATION" "$WARMUP" "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RUN/meta.json"

# Interleaved per N, so both relays see the host in the same state.
for n in $CALLS; do
    for relay in $RELAYS; do
        "run_$relay" "$n"
    done
done
python3 "$root/bench/media_helper.py" report "$RUN"
echo "results in $RUN"
