#!/usr/bin/env bash
# What recording metrics costs RouteCall: alternating rounds of `callrouter serve --metrics on` and
# `--metrics off` on one fresh Redis (AOF everysec, flushed between rounds), each driven by
# `callrouter load --route-only`; prints each round's calls/s and the mean of each setting.
#   bash benches/metrics_cost.sh            (ROUNDS=6 SECS=8 CONCURRENCY=128 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
SECS=${SECS:-8}
CONCURRENCY=${CONCURRENCY:-128}
cargo build --release --quiet
BIN=target/release/callrouter
source benches/common.sh
start_redis
declare -A total=([on]=0 [off]=0)
for round in $(seq "$ROUNDS"); do
  for setting in on off; do
    # Alternate which setting goes first, so that neither always runs on a warmer machine.
    if (( round % 2 == 0 )); then setting=$([ "$setting" = on ] && echo off || echo on); fi
    redis-cli -p "$redis" FLUSHALL >/dev/null
    start_serve "$BIN" --metrics "$setting"
    out=$($BIN load --target "http://127.0.0.1:$grpc" --seconds "$SECS" --concurrency "$CONCURRENCY" --route-only 2>&1)
    kill "$server"; wait "$server" 2>/dev/null || true
    rate=$(echo "$out" | grep -iE 'routecall' | grep -oE '[0-9,]+ calls/s' | head -1 | tr -d ', calls/s')
    echo "round $round metrics $setting: ${rate:-?} RouteCall/s"
    total[$setting]=$(( ${total[$setting]} + ${rate:-0} ))
  done
done
on=$(( ${total[on]} / ROUNDS )); off=$(( ${total[off]} / ROUNDS ))
echo "mean: metrics on ${on}/s, off ${off}/s: recording costs $(python3 -c "print(f'{(1 - $on / $off) * 100:.1f}')") % of RouteCall throughput"
