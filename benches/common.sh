# Sourced by the benchmark scripts that start processes of their own: a scratch directory, the
# processes started (append their pids to `pids`), both cleaned up on exit, and free ports.
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
