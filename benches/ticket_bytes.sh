#!/usr/bin/env bash
# What a queued ticket costs Redis in bytes (the same for the same build and calls, unlike time):
# `callrouter serve` on a fresh redis-server (AOF, `appendfsync everysec`), N RouteCalls from
# `callrouter load` (64 callers), then Redis's `used_memory` growth per call, the append-only file's
# growth per call, the mean `MEMORY USAGE` of 200 ticket hashes with their encoding, and what one
# rewrite of the append-only file then costs per queued ticket: its child's CPU (noisier than the
# bytes) and the size of the base file it writes.
#   bash benches/ticket_bytes.sh [BINARY]   (default target/release/callrouter; N=20000 calls;
#                                          REDIS_ARGS: more redis-server options, for example
#                                          "--hash-max-listpack-value 1024")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/callrouter}
N=${N:-20000}
source benches/common.sh
rc() { redis-cli -p "$redis" "$@"; }
# shellcheck disable=SC2086 # REDIS_ARGS are options, one word each.
start_redis --auto-aof-rewrite-percentage 0 ${REDIS_ARGS:-}
start_serve "$BIN"
aof_bytes() { cat "$work"/appendonlydir/*.incr.aof | wc -c; }
used() { rc info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
m0=$(used)
a0=$(aof_bytes)
"$BIN" load --target "http://127.0.0.1:$grpc" --seconds 600 --calls "$N" --concurrency 64 \
  --route-only >"$work/load.out"
m1=$(used)
a1=$(aof_bytes)
echo "Redis memory: $(( (m1 - m0) / N )) bytes per queued ticket (used_memory, $N RouteCalls)"
echo "append-only file: $(( (a1 - a0) / N )) bytes per RouteCall"
total=0
count=0
for key in $(rc --scan --pattern '*:t:*' | head -200); do
  total=$(( total + $(rc memory usage "$key" samples 0) ))
  count=$(( count + 1 ))
  last=$key
done
echo "ticket hash: $(( total / count )) bytes (MEMORY USAGE, mean of $count), encoding $(rc object encoding "$last")"
# One rewrite over what the calls left (the server idle meanwhile): its child's CPU, from INFO cpu.
children() { rc info cpu | awk -F: '/^used_cpu_(sys|user)_children:/ {s += $2} END {printf "%.6f", s}'; }
c0=$(children)
rc bgrewriteaof >/dev/null
# Done once neither running nor scheduled (a child's CPU is counted when it has been reaped).
while rc info persistence | grep -qE '^aof_rewrite_(in_progress|scheduled):1'; do sleep 0.1; done
c1=$(children)
base=$(cat "$work"/appendonlydir/*.base.rdb | wc -c)
echo "append-only file rewrite: $(python3 -c "print(f'{($c1 - $c0) * 1e6 / $N:.1f}')") µs of CPU per queued ticket (its child, one BGREWRITEAOF), base file $(( base / N )) bytes per ticket"
