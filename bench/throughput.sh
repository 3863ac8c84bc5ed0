#!/usr/bin/env bash
# Measure edgecache's cache-hit throughput and latency next to nginx proxy_cache and
# Varnish in one run of the reference harness (compare.sh), and print its table.
#
# Two edgecache targets run: "edgecache" with the access log on (the default, as in
# production) and "edgecache-nolog" with it off. Both use uvloop, which `edgecache
# serve` picks up when it is installed; the script stops if it is not.
#
# Usage: bench/throughput.sh [compare.sh options]
#   Defaults: --sizes 60k,2k --modes hit --reps 3 --duration 5; later options win.
# Environment:
#   EDGECACHE_BENCH_HARNESS  directory with compare.sh (default /work/shared/bench)
#   EDGECACHE_BIN            edgecache executable (default: .venv/bin/edgecache here)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${EDGECACHE_BENCH_HARNESS:-/work/shared/bench}"
EDGECACHE_BIN="${EDGECACHE_BIN:-$REPO/.venv/bin/edgecache}"
CONFIG="$REPO/bench/edgecache-bench.toml"

if [ ! -x "$HARNESS/compare.sh" ]; then
    echo "throughput.sh: $HARNESS/compare.sh not found; set EDGECACHE_BENCH_HARNESS" >&2
    exit 2
fi
for tool in nginx varnishd wrk taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "throughput.sh: $tool is missing; run the harness's setup.sh as root once" >&2
        exit 2
    fi
done
if [ ! -x "$EDGECACHE_BIN" ]; then
    echo "throughput.sh: $EDGECACHE_BIN not found; install edgecache into .venv first" >&2
    exit 2
fi
EDGECACHE_PYTHON="$(dirname "$EDGECACHE_BIN")/python"
if ! "$EDGECACHE_PYTHON" -c 'import uvloop' 2>/dev/null; then
    echo "throughput.sh: uvloop is not installed next to $EDGECACHE_BIN" >&2
    exit 2
fi

# Port 0 for the admin listener lets both edgecache targets run side by side.
SERVE="$EDGECACHE_BIN serve --config $CONFIG --origin {origin} --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:0"

echo "edgecache: $("$EDGECACHE_PYTHON" -c 'import sys, aiohttp, uvloop, yarl, multidict; print(
    "python", sys.version.split()[0], "aiohttp", aiohttp.__version__, "uvloop", uvloop.__version__,
    "yarl", yarl.__version__, "multidict", multidict.__version__)')"
cd "$HARNESS"
exec ./compare.sh run --targets nginx,varnish --sizes 60k,2k --modes hit --reps 3 --duration 5 \
    --cmd "edgecache=$SERVE" \
    --cmd "edgecache-nolog=env EDGECACHE_SERVER_ACCESS_LOG=false $SERVE" \
    "$@"
