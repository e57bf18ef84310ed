#!/usr/bin/env bash
# What the server's own code costs per call, in instructions counted by callgrind (the same for the
# same build and inputs, whatever else the machine is doing, unlike CPU time on a shared machine):
# `callrouter serve` under callgrind on a fresh redis-server, driven by `callrouter load` with 8
# callers; callgrind counts only while the measured phase runs.
#   - RouteCall: 20 s of RouteCall after a 3 s warm-up;
#   - claim -> complete: queues filled for 15 s (not counted), then a load whose 1 s RouteCall
#     phase is followed by agents draining every queue (counted; the few RouteCalls of that second
#     are subtracted at the RouteCall figure).
#   bash benches/server_cost.sh [BINARY]     (default target/release/callrouter; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/callrouter}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
source benches/common.sh
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }

# Starts redis-server and the server under callgrind (counting off); sets grpc and vp.
start() {
  local redis admin
  redis=$(free_port)
  redis-server --port "$redis" --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
  pids+=($!)
  grpc=$(free_port)
  admin=$(free_port)
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$1" "$BIN" serve --dev \
    --redis-url "redis://127.0.0.1:$redis/" --grpc-addr "127.0.0.1:$grpc" \
    --admin-addr "127.0.0.1:$admin" >"$work/$1.log" 2>&1 &
  vp=$!
  pids+=($vp)
  wait_for_ready "$admin" 60
}
load() { "$BIN" load --target "http://127.0.0.1:$grpc" --concurrency 8 "$@"; }
stop() { kill "$vp"; wait "$vp" 2>/dev/null || true; }

start route
load --seconds 3 --route-only >/dev/null
callgrind_control -i on "$vp" >/dev/null 2>&1
routed=$(load --seconds 20 --route-only | awk '/^RouteCall:/ {print $2}')
callgrind_control -i off "$vp" >/dev/null 2>&1
stop
per_route=$(( $(total "$work/route") / routed ))
echo "RouteCall: $per_route server instructions per call (callgrind, $routed calls)"

start cycle
load --seconds 15 --route-only >/dev/null
callgrind_control -i on "$vp" >/dev/null 2>&1
out=$(load --seconds 1)
callgrind_control -i off "$vp" >/dev/null 2>&1
stop
calls=$(echo "$out" | awk '/^RouteCall:/ {print $2}')
cycles=$(echo "$out" | awk '/^claim -> complete:/ {print $4}')
per_cycle=$(( ($(total "$work/cycle") - calls * per_route) / cycles ))
echo "claim -> complete: $per_cycle server instructions per cycle (callgrind, $cycles cycles)"
