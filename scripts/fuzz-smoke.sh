#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets for FUZZ_SECONDS each
# (default 30); fails on the first crash. The toolchain is stable, so
# RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz needs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: installing"
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
shopt -s nullglob
targets=(fuzz_targets/*.rs)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found in $root/fuzz/fuzz_targets" >&2
    exit 1
fi

# Seed the message target with the RFC 4475 torture messages when present
# (corpus/ is git-ignored).
rfc4475="$root/../shared/conformance/rfc4475"
if [ -d "$rfc4475" ] && [ -f fuzz_targets/message_roundtrip.rs ]; then
    mkdir -p corpus/message_roundtrip
    cp "$rfc4475"/*.sip corpus/message_roundtrip/ 2>/dev/null || true
fi

passed=0
failed=0
for t in "${targets[@]}"; do
    name="$(basename "$t" .rs)"
    mkdir -p "corpus/$name"
    echo "== fuzz $name for ${seconds}s"
    if RUSTC_BOOTSTRAP=1 cargo fuzz run "$name" "corpus/$name" -- \
        -max_total_time="$seconds" -max_len=65535 -rss_limit_mb=2048; then
        passed=$((passed + 1))
    else
        echo "fuzz target $name FAILED (see fuzz/artifacts/$name)" >&2
        failed=$((failed + 1))
    fi
done
echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
