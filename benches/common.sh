# Sourced by the benchmark scripts that start processes of their own: a scratch directory, the
# processes started (append their pids to `pids`), both cleaned up on exit, free ports, waits for
# a redis-server or a server to answer, and the start of each on free ports.
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_for_redis PORT [SECONDS]: until the redis-server on PORT answers (default 15 s), else fails.
wait_for_redis() {
  for _ in $(seq $((${2:-15} * 10))); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the redis-server on port $1 did not answer"; exit 1
}
# wait_for_ready ADMIN_PORT [SECONDS]: until `callrouter serve` answers /readyz on its admin port
# (default 10 s), else fails.
wait_for_ready() {
  for _ in $(seq $((${2:-10} * 10))); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not become ready"; exit 1
}
# start_redis [ARGS...]: a fresh redis-server (AOF, `appendfsync everysec`, ARGS besides) on a free
# port, in the scratch directory, once it answers; sets redis.
start_redis() {
  redis=$(free_port)
  redis-server --port "$redis" --save '' --appendonly yes --appendfsync everysec --dir "$work" "$@" \
    >/dev/null 2>&1 &
  pids+=($!)
  wait_for_redis "$redis"
}
# start_serve BINARY [ARGS...]: `BINARY serve --dev` (ARGS besides) on that redis-server and free
# ports, logging to $work/serve.log, once ready; sets grpc, admin and server (its pid).
start_serve() {
  local binary=$1
  shift
  grpc=$(free_port)
  admin=$(free_port)
  "$binary" serve --dev --redis-url "redis://127.0.0.1:$redis/" --grpc-addr "127.0.0.1:$grpc" \
    --admin-addr "127.0.0.1:$admin" "$@" >"$work/serve.log" 2>&1 &
  pids+=($!)
  server=$!
  wait_for_ready "$admin"
}
