#!/usr/bin/env bash
# Runs every test of hardline: formatting, clippy, unit and integration
# tests (the real binary driven by SIPp, baresip, sipvicious and our own
# clients, the RFC 4475 corpus, the shield and the media loss test with
# real nftables in network namespaces, which needs root), and a fuzz smoke
# run of each cargo-fuzz target.
#
# Peers the tests need are installed from Debian when missing (as root);
# without them the tests fail loudly, they never skip.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need_pkgs=()
command -v sipp >/dev/null 2>&1 || need_pkgs+=(sip-tester)
# baresip-core holds the binary and every module the softphone test loads
# (the `baresip` metapackage would add GUI and sound stacks it does not need).
command -v baresip >/dev/null 2>&1 || need_pkgs+=(baresip-core)
# The shield's tests: attack tools, and real nftables in network namespaces.
command -v svwar >/dev/null 2>&1 || need_pkgs+=(sipvicious)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# The media tests: speech for the RTP streams and announcements.
command -v espeak-ng >/dev/null 2>&1 || need_pkgs+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_pkgs+=(sox)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing test peers: ${need_pkgs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    else
        echo "missing test peers: ${need_pkgs[*]} (apt-get install them, or run as root)" >&2
        exit 1
    fi
fi

if [ ! -f "$root/../shared/conformance/rfc4475/INDEX.tsv" ] && [ -z "${HARDLINE_RFC4475_DIR:-}" ]; then
    echo "the RFC 4475 corpus is expected at ../shared/conformance/rfc4475 (or set HARDLINE_RFC4475_DIR)" >&2
    exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The PostgreSQL driver is an opt-in feature of the store; keep it building.
cargo clippy -p store --features postgres --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== fuzz smoke (${FUZZ_SECONDS:-30}s per target)"
"$root/scripts/fuzz-smoke.sh"
echo "== all tests passed"
