#!/usr/bin/env bash
# RouteCall throughput on one Redis and on a Redis Cluster of three primaries (each with a replica),
# in the same run on this machine: `callrouter serve` over each, driven by `callrouter load
# --route-only`. Every Redis here has AOF everysec.
#   bash benches/redis_modes.sh            (SECS=8 CONCURRENCY=128 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-8}
CONCURRENCY=${CONCURRENCY:-128}
cargo build --release --quiet
BIN=target/release/callrouter
source benches/common.sh
redis() { # redis <name> <port> [args…]
  local name=$1 port=$2; shift 2
  mkdir -p "$work/$name"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec \
    --dir "$work/$name" "$@" >/dev/null 2>&1 &
  pids+=($!)
}
route() { # route <label> <serve args…>: RouteCall/s
  local label=$1; shift
  local grpc=127.0.0.1:$(free_port) admin=127.0.0.1:$(free_port)
  $BIN serve --dev "$@" --grpc-addr "$grpc" --admin-addr "$admin" >"$work/serve-$label.log" 2>&1 &
  local server=$!
  wait_for_ready "${admin#*:}"
  local out rate
  out=$($BIN load --target "http://$grpc" --seconds "$SECS" --concurrency "$CONCURRENCY" --route-only 2>&1) || true
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
  rate=$(echo "$out" | grep -iE 'routecall' | grep -oE '[0-9,]+ calls/s' | head -1 | tr -d ', calls/s' || true)
  if [ -z "$rate" ]; then
    echo "$label: no figure; the load generator said:"; echo "$out"; tail -5 "$work/serve-$label.log"
  else
    echo "$label: $rate RouteCall/s"
  fi
}

single=$(free_port)
redis single "$single"
nodes=()
for n in 1 2 3 4 5 6; do
  port=$(free_port); bus=$(free_port)
  redis "node$n" "$port" --cluster-enabled yes --cluster-port "$bus" --cluster-node-timeout 1000 \
    --cluster-config-file "$work/node$n/nodes.conf"
  nodes+=("127.0.0.1:$port")
done
sleep 1
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
for _ in $(seq 100); do
  redis-cli -p "${nodes[0]#*:}" CLUSTER INFO | grep -q cluster_state:ok && break; sleep 0.1
done
sleep 2
route "one Redis" --redis-url "redis://127.0.0.1:$single/"
route "cluster of 3 shards" --redis-cluster "$(IFS=,; echo "${nodes[*]}")"
