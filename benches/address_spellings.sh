#!/usr/bin/env bash
# Address matching as callers write addresses: `callrouter spellings` writes every registry
# address in every kind of variation (seeded), `callrouter explain` decides them, and the
# decisions are scored against the building each spelling names — found at BUILDING, routed to a
# different building, or missed — per kind. Then the whole-process time of `explain` over the first
# 4,000 spellings (median of RUNS).
#   bash benches/address_spellings.sh [EXPLAIN_BINARY]     (SEED=1 RUNS=11 by default)
# EXPLAIN_BINARY (default: this checkout's release build) lets another build be measured on the
# same spellings.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-1}
RUNS=${RUNS:-11}
cargo build --release --quiet
GEN=target/release/callrouter
BIN=${1:-$GEN}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$GEN" spellings --seed "$SEED" >"$work/spellings.jsonl"
"$BIN" explain --at 2026-11-27T10:00:00Z "$work/spellings.jsonl" >"$work/decisions.jsonl"
python3 - "$work/spellings.jsonl" "$work/decisions.jsonl" <<'PY'
import json, sys
from collections import defaultdict
asked = [json.loads(l)["call_id"] for l in open(sys.argv[1])]
told = [json.loads(l) for l in open(sys.argv[2])]
assert len(asked) == len(told), "one decision per spelling"
by_kind = defaultdict(lambda: [0, 0, 0, 0])  # tried, building, wrong, missed
for call, decision in zip(asked, told):
    building, kind = call.split("/")
    m = decision.get("address_match") or {}
    row = by_kind[kind]
    row[0] += 1
    if m.get("level") == "BUILDING":
        row[1 if m.get("building_id") == building else 2] += 1
    else:
        row[3] += 1
total = [sum(r[i] for r in by_kind.values()) for i in range(4)]
print(f"{'kind':<18}{'spellings':>10}{'building':>10}{'wrong':>8}{'missed':>8}")
for kind, (n, ok, wrong, missed) in sorted(by_kind.items()):
    print(f"{kind:<18}{n:>10}{100*ok/n:>9.2f}%{wrong:>8}{missed:>8}")
n, ok, wrong, missed = total
print(f"{'all':<18}{n:>10}{100*ok/n:>9.2f}%{wrong:>8}{missed:>8}")
print(f"found at BUILDING {100*ok/n:.2f} %, wrong building {100*wrong/n:.3f} %, missed {100*missed/n:.2f} %")
PY
head -n 4000 "$work/spellings.jsonl" >"$work/4000.jsonl"
times=()
for _ in $(seq "$RUNS"); do
  start=$(date +%s%N)
  "$BIN" explain --at 2026-11-27T10:00:00Z "$work/4000.jsonl" >/dev/null
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
empty_start=$(date +%s%N)
"$BIN" explain --at 2026-11-27T10:00:00Z /dev/null
load_ms=$(( ($(date +%s%N) - empty_start) / 1000000 ))
echo "explain over 4,000 spellings, whole process: median ${median} ms of ${RUNS} runs (${times[*]}); load alone ${load_ms} ms"
