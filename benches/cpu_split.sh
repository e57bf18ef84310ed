#!/usr/bin/env bash
# Where the two cores go, process by process, for BullMQ (6.7.0, the Redis job queue people pick
# instead) and for callrouter, on one fresh redis-server (AOF, `appendfsync everysec`) in one run:
# BullMQ adds N jobs with 50 concurrent producers and processes them with concurrency 100
# (benches/bullmq_cpu.mjs), then, after FLUSHALL, `callrouter serve` on that Redis is driven by
# `callrouter load`: 128 callers route N calls, then 128 agents work the N tickets (as many items
# as BullMQ's, so that Redis holds as much when it rewrites its file). Each side prints, per job or
# call: its client's CPU (node; the load generator and the server), Redis's CPU (its process, and
# its append-only file rewrites that ended meanwhile) and the machine's CPU in all, with its idle
# and interrupt shares. Throughput on two shared cores is about 2 cores over the machine's CPU per
# operation, less the idle share.
#   bash benches/cpu_split.sh [BINARY]   (default target/release/callrouter; N=50000 jobs and
#                                         calls; BMQ=target/bench-bullmq, where BullMQ is
#                                         installed from npm the first time)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/callrouter}
N=${N:-50000}
BMQ=${BMQ:-$PWD/target/bench-bullmq}
source benches/common.sh
if [ ! -d "$BMQ/node_modules/bullmq" ]; then
  mkdir -p "$BMQ"
  (cd "$BMQ" && npm init -y >/dev/null && npm install --silent bullmq@6.7.0 ioredis@5 >/dev/null) \
    || { echo "cannot install BullMQ into $BMQ"; exit 1; }
fi
cp benches/bullmq_cpu.mjs "$BMQ/"
start_redis

echo "BullMQ"
(cd "$BMQ" && REDIS_PORT="$redis" N="$N" node bullmq_cpu.mjs) | sed 's/^/  /'
redis-cli -p "$redis" flushall >/dev/null

echo "callrouter"
start_serve "$BIN"
"$BIN" load --target "http://127.0.0.1:$grpc" --seconds 600 --calls "$N" --concurrency 128 \
  --redis-url "redis://127.0.0.1:$redis/" --server-pid "$server" | sed 's/^/  /'
