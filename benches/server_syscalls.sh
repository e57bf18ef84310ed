#!/usr/bin/env bash
# The server's system calls per call, by kind, counted by `perf trace` (the kernel's count, not a
# sample): `callrouter serve` on a fresh redis-server, N RouteCalls from `callrouter load` (128
# callers), then N claim -> complete cycles' worth of agents' calls, each phase counted on its own.
# On loopback a send costs the sender the receiver's work too, so sends per call are much of the
# server's kernel time. The API's connections send with `sendto` (their writes gathered,
# src/api/gather.rs); the Redis client sends with `writev`; both read with `recvfrom`.
#   bash benches/server_syscalls.sh [BINARY]   (default target/release/callrouter; N=30000;
#                                               needs perf: apt-get install linux-perf, and
#                                               kernel.perf_event_paranoid at -1 or root)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/callrouter}
N=${N:-30000}
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)"; exit 1; }
source benches/common.sh
start_redis
start_serve "$BIN"

# counted PHASE LOAD_ARGS...: runs the load generator with the server's system calls counted, and
# prints them per operation of the phase (the count of operations the load generator printed).
counted() {
  local phase=$1
  shift
  perf trace -s -p "$server" -o "$work/$phase.trace" 2>/dev/null &
  local tracer=$!
  sleep 1
  "$BIN" load --target "http://127.0.0.1:$grpc" --concurrency 128 "$@" >"$work/$phase.out"
  kill -INT "$tracer"
  wait "$tracer" || true
  python3 - "$phase" "$work/$phase.trace" "$work/$phase.out" <<'EOF'
import re, sys
phase, trace, out = sys.argv[1:]
pattern = r"RouteCall: (\d+) calls" if phase == "RouteCall" else r"complete: (\d+) cycles"
operations = int(re.search(pattern, open(out).read()).group(1))
calls = {}
for line in open(trace):
    m = re.match(r"\s+(\w+)\s+(\d+)\s+\d+\s+[\d.]+", line)
    if m and m.group(1) != "syscall":
        calls[m.group(1)] = calls.get(m.group(1), 0) + int(m.group(2))
unit = "RouteCall" if phase == "RouteCall" else "cycle"
total = sum(calls.values()) / operations
kinds = ", ".join(f"{name} {count / operations:.3f}"
                  for name, count in sorted(calls.items(), key=lambda c: -c[1])[:6])
print(f"{phase} ({operations} {unit}s): {total:.2f} system calls per {unit}: {kinds}")
EOF
}

counted RouteCall --seconds 600 --calls "$N" --route-only
# Queues filled again, then the agents' phase counted (after one RouteCall).
"$BIN" load --target "http://127.0.0.1:$grpc" --seconds 600 --calls "$N" --concurrency 128 \
  --route-only >/dev/null
counted cycles --seconds 1 --calls 1
