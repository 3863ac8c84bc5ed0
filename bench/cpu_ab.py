"""Compare the CPU time per cache hit of several edgecache builds, by process CPU time.

The reference harness (compare.sh) measures the busy time of the whole server core,
which also counts every other process the kernel runs on that core. On a shared
machine that inflates its figures by whatever else runs there. This script reads the
server process's own user and system CPU time from /proc instead, so another
tenant's load changes the result far less (it still shares caches and memory bandwidth).

It starts the harness's origin (`compare.sh serve-origin`) on CPU 0 and each target on
CPU 1, and warms each cache with a 2-second wrk run. Then it runs `wrk -t1 -c50
--latency` over the harness's 1000 product paths against the targets in turn, --reps
times, and prints medians. Everything listens on 127.0.0.1 and stops by itself.

    .venv/bin/python bench/cpu_ab.py --size 2k \\
        --cmd 'before=env PYTHONPATH=/tmp/old .venv/bin/python -m edgecache serve --config bench/edgecache-bench.toml \\
               --origin {origin} --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:0' \\
        --cmd 'after=.venv/bin/edgecache serve --config bench/edgecache-bench.toml --origin {origin} \\
               --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:0'
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

HARNESS = Path(os.environ.get("EDGECACHE_BENCH_HARNESS", "/work/shared/bench"))
ORIGIN_PORT = 18080
FIRST_PORT = 18150
# Maximum seconds of one wrk run, the same bound as the harness's.
MAX_DURATION = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s") from None
            time.sleep(0.1)


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of a process and its waited-for children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: utime, stime, cutime, cstime are fields 14-17 of proc(5).
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """Return the CPU time of every process in a process group (a target may fork workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rpartition(")")[2].split()[2]) == pgid:
                total += process_cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def run_wrk(port: int, seconds: int, paths: int) -> dict[str, float]:
    output = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", "-s",
         str(HARNESS / "rotate.lua"), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True, env={**os.environ, "BENCH_PATHS": str(paths)},
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"BENCH_RESULT (.*)", output)
    if match is None:
        raise RuntimeError(f"wrk printed no BENCH_RESULT line:\n{output}")
    return {name: float(value) for name, value in (item.split("=") for item in match.group(1).split())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cmd", action="append", required=True, metavar="NAME=CMD",
                        help="a target; {origin} and {port} are filled in (repeatable)")
    parser.add_argument("--size", default="2k", choices=("2k", "60k"), help="page size (default 2k)")
    parser.add_argument("--reps", type=int, default=3, help="runs per target (default 3)")
    parser.add_argument("--duration", type=int, default=5, help=f"seconds per wrk run, at most {MAX_DURATION}")
    parser.add_argument("--paths", type=int, default=1000, help="distinct product paths (default 1000)")
    args = parser.parse_args()
    if not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be between 1 and {MAX_DURATION} seconds, got {args.duration}")

    groups: list[int] = []
    try:
        origin = subprocess.Popen(
            ["taskset", "-c", "0", str(HARNESS / "compare.sh"), "serve-origin", "--size", args.size,
             "--seconds", str(args.reps * len(args.cmd) * (args.duration + 5) + 120)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        groups.append(origin.pid)
        wait_port(ORIGIN_PORT)
        targets: list[tuple[str, int, int]] = []
        for index, spec in enumerate(args.cmd):
            name, _, command = spec.partition("=")
            port = FIRST_PORT + index
            argv = shlex.split(command.format(origin=f"http://127.0.0.1:{ORIGIN_PORT}", port=port))
            process = subprocess.Popen(["taskset", "-c", "1", *argv], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            groups.append(process.pid)
            wait_port(port)
            run_wrk(port, 2, args.paths)
            targets.append((name, port, process.pid))

        results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in targets}
        for _ in range(args.reps):
            for name, port, pgid in targets:
                time.sleep(1)
                cpu_before = group_cpu_seconds(pgid)
                result = run_wrk(port, args.duration, args.paths)
                result["cpu_us_per_request"] = (group_cpu_seconds(pgid) - cpu_before) * 1e6 / result["requests"]
                results[name].append(result)
                print(f"{name:<12} {result['requests'] / result['duration_us'] * 1e6:8.0f} req/s  "
                      f"p99 {result['p99_us'] / 1000:6.2f} ms  {result['cpu_us_per_request']:6.1f} us CPU/req",
                      flush=True)
    finally:
        for pgid in reversed(groups):
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    first = statistics.median(run["cpu_us_per_request"] for run in results[targets[0][0]])
    print(f"\nsize {args.size}, wrk -t1 -c50 -d{args.duration}s, medians of {args.reps} runs")
    print("| target | req/s | p50 ms | p99 ms | process CPU us/req | x first |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        cpu = statistics.median(run["cpu_us_per_request"] for run in runs)
        rps = statistics.median(run["requests"] / run["duration_us"] * 1e6 for run in runs)
        p50 = statistics.median(run["p50_us"] for run in runs) / 1000
        p99 = statistics.median(run["p99_us"] for run in runs) / 1000
        print(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {cpu / first:.2f} |")


if __name__ == "__main__":
    main()
