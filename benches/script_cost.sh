#!/usr/bin/env bash
# What the create script costs Redis, per call: instructions counted by callgrind (the same for the
# same script and Redis build, whatever else the machine does) and `usec_per_call` from INFO
# commandstats (what the target is stated in, but noisy on a shared machine). redis-benchmark
# runs EVALSHA of src/store/redis/scripts/common.lua + create.lua with a routed call's arguments
# (random ticket and call ids) on a fresh redis-server with AOF everysec.
#   bash benches/script_cost.sh [SCRIPT.lua]     (N=3000 calls under callgrind, USEC_N=100000)
# SCRIPT.lua replaces create.lua, to measure a variant with the same arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=${1:-src/store/redis/scripts/create.lua}
N=${N:-3000}
USEC_N=${USEC_N:-100000}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
details='{"rule_id":"technical","reasons":["address matched building TL-00012 (confidence 1.00)","issue technical.plumbing.leak (Fuite d eau): default urgency U2","touraine-logement is open","rule technical: the sector technical team"],"address_match":{"building_id":"TL-00012","level":"BUILDING"}}'
P='callrouter:{touraine-logement}:'
calls() { # calls <port> <sha> <n> <clients>
  redis-benchmark -p "$1" -q -n "$3" -c "$4" -r 100000000 evalsha "$2" 4 \
    "${P}call:__rand_int__" "${P}q:touraine-logement.technical.tl-tours" "${P}t:__rand_int__" "${P}call:__rand_int__" \
    "$P" 1000 2592000000 "tl-__rand_int__" "c-__rand_int__" touraine-logement touraine-logement \
    touraine-logement.technical.tl-tours 2 technical.plumbing.leak TL-00012 "" 1795780124779 \
    touraine-logement.supervisor "$details" 99999999999999 "12 rue Nationale 37000 Tours" 2>&1 | grep -oE '[0-9.]+ requests per second' || true
}
# Instructions: two runs under callgrind, 200 and 200 + N calls; the difference over N.
instructions() { # instructions <calls> -> total instructions of a redis-server that served them
  local port dir
  port=$(free_port); dir="$work/cg-$1"; mkdir -p "$dir"
  valgrind --tool=callgrind --callgrind-out-file="$dir/out" redis-server --port "$port" --save '' \
    --appendonly yes --appendfsync everysec --dir "$dir" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 150); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
  local sha
  sha=$(cat src/store/redis/scripts/common.lua "$SCRIPT" | redis-cli -p "$port" -x script load)
  calls "$port" "$sha" "$1" 4 >/dev/null
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "${pids[-1]}" 2>/dev/null || true
  callgrind_annotate "$dir/out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
base=$(instructions 200)
more=$(instructions $((N + 200)))
echo "create script: $(( (more - base) / N )) Redis instructions per call (callgrind, $N calls)"
# Time: redis-benchmark at 50 clients, usec_per_call.
port=$(free_port)
mkdir -p "$work/time"
redis-server --port "$port" --save '' --appendonly yes --appendfsync everysec --dir "$work/time" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
sha=$(cat src/store/redis/scripts/common.lua "$SCRIPT" | redis-cli -p "$port" -x script load)
rate=$(calls "$port" "$sha" "$USEC_N" 50)
usec=$(redis-cli -p "$port" info commandstats | grep -oE '^cmdstat_evalsha:.*usec_per_call=[0-9.]+' | grep -oE '[0-9.]+$')
errors=$(redis-cli -p "$port" info errorstats | grep errorstat_ || true)
[ -z "$errors" ] || { echo "the script answered errors, its figures mean nothing: $errors"; exit 1; }
echo "create script: ${usec} µs of Redis time per call, ${rate} (redis-benchmark, 50 clients, $USEC_N calls)"
