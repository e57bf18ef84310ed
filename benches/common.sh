# Sourced by the benchmark scripts that start processes of their own: a scratch directory, the
# processes started (append their pids to `pids`), both cleaned up on exit, free ports, and waits
# for a redis-server or a server to answer.
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
