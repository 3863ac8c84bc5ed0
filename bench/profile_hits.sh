#!/usr/bin/env bash
# Profile edgecache's cache-hit path with py-spy while wrk sends hits to it.
#
# Starts the reference harness's origin (static product pages), edgecache pinned to
# CPU 1, warms the cache with a short wrk run, then samples edgecache with py-spy
# during a second wrk run (wrk and py-spy on CPU 0). Everything listens on 127.0.0.1
# and stops by itself. Writes collapsed stacks and a flame graph to $OUT.
#
# Usage: bench/profile_hits.sh [2k|60k] [extra edgecache serve flags]
# Environment: EDGECACHE_BENCH_HARNESS (default /work/shared/bench), OUT (default
#   /tmp/edgecache-profile), SECONDS_PROFILED (default 8), and any EDGECACHE_* setting.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${EDGECACHE_BENCH_HARNESS:-/work/shared/bench}"
SIZE="${1:-2k}"
shift || true
OUT="${OUT:-/tmp/edgecache-profile}"
PROFILED="${SECONDS_PROFILED:-8}"
PROXY_PORT=18190
ORIGIN_PORT=18080
mkdir -p "$OUT"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "profile_hits.sh: nothing listening on 127.0.0.1:$1" >&2
    return 1
}

setsid taskset -c 0 "$HARNESS/compare.sh" serve-origin --size "$SIZE" --seconds 120 >"$OUT/origin.log" 2>&1 &
pids+=($!)
wait_port "$ORIGIN_PORT"

setsid taskset -c 1 "$REPO/.venv/bin/edgecache" serve --config "$REPO/bench/edgecache-bench.toml" \
    --origin "http://127.0.0.1:$ORIGIN_PORT" --listen "127.0.0.1:$PROXY_PORT" \
    --admin-listen 127.0.0.1:0 --duration 90 "$@" >"$OUT/edgecache.log" 2>&1 &
pids+=($!)
edgecache_pid=$!
wait_port "$PROXY_PORT"

export BENCH_PATHS=1000
taskset -c 0 wrk -t1 -c50 -d2s -s "$HARNESS/rotate.lua" "http://127.0.0.1:$PROXY_PORT/" >/dev/null
taskset -c 0 "$REPO/.venv/bin/py-spy" record --pid "$edgecache_pid" --duration "$PROFILED" --rate 200 \
    --format raw --output "$OUT/stacks.txt" >"$OUT/py-spy.log" 2>&1 &
spy=$!
sleep 0.5
taskset -c 0 wrk -t1 -c50 -d"$((PROFILED - 1))"s --latency -s "$HARNESS/rotate.lua" \
    "http://127.0.0.1:$PROXY_PORT/" | tee "$OUT/wrk.txt" | grep -E "Requests/sec|BENCH_RESULT"
wait "$spy"
"$REPO/.venv/bin/python" "$REPO/bench/summarize_stacks.py" "$OUT/stacks.txt"
