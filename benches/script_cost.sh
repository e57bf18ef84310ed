#!/usr/bin/env bash
# What the lifecycle scripts cost Redis per call. Instructions, counted by callgrind (the same for
# the same scripts and Redis build, whatever else the machine does): a redis-server under callgrind
# creates, claims, accepts and completes N tickets, then completes N more with the next claim
# ("done, next"), then claims N across six teams' queues (benches/lifecycle_cost.py), with its
# counters dumped between the phases. Time, as the targets state it (`usec_per_call`, noisy on a
# shared machine): redis-benchmark runs the create script with a routed call's arguments, 50
# clients; then one caller creates, claims, accepts and completes TIME_N tickets, then 50 agents
# complete TIME_N more with the next claim, then one agent of six teams claims TIME_N across them,
# each script's time read per phase, in RUNS rounds of which the median is printed.
# All on fresh redis-servers with AOF everysec.
# The scripts are loaded as the server loads them (`callrouter script NAME`).
#   bash benches/script_cost.sh [BINARY]   (default target/release/callrouter; N=1000 tickets under
#                                           callgrind, USEC_N=100000 creates, TIME_N=20000 tickets,
#                                           RUNS=5 rounds of them)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/callrouter}
N=${N:-1000}
USEC_N=${USEC_N:-100000}
TIME_N=${TIME_N:-20000}
RUNS=${RUNS:-5}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
source benches/common.sh

# Instructions per script call.
port=$(free_port)
mkdir -p "$work/cg"
valgrind --tool=callgrind --callgrind-out-file="$work/cg/out" redis-server --port "$port" --save '' \
  --appendonly yes --appendfsync everysec --dir "$work/cg" >/dev/null 2>&1 &
pids+=($!)
wait_for_redis "$port" 30
python3 benches/lifecycle_cost.py "$BIN" "$port" "${pids[-1]}" "$N"
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
# Dumps: 1 start, 2-5 the four phases, 6 the tickets of "done, next" and their first claims, 7 it,
# 8 the tickets of six teams, 9 the claims across the six.
for phase in 2:create 3:claim 4:accept 5:complete 7:complete_claim 9:claim_6_queues; do
  total=$(callgrind_annotate "$work/cg/out.${phase%%:*}" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "${phase#*:} script: $((total / N)) Redis instructions per call (callgrind, $N calls)"
done

# Time per create.
details='{"rule_id":"technical","reasons":["address matched building TL-00012 (confidence 1.00)","issue technical.plumbing.leak (Fuite d eau): default urgency U2","touraine-logement is open","rule technical: the sector technical team"],"address_match":{"building_id":"TL-00012","level":"BUILDING"}}'
P='callrouter:{touraine-logement}:'
port=$(free_port)
mkdir -p "$work/time"
redis-server --port "$port" --save '' --appendonly yes --appendfsync everysec --dir "$work/time" >/dev/null 2>&1 &
pids+=($!)
wait_for_redis "$port" 30
sha=$("$BIN" script create | redis-cli -p "$port" -x script load)
# The packed fields joined by the byte 255 as the server joins them (SHOWN_FIELDS and KEPT_FIELDS in
# src/store/redis/reply.rs): the shown field before and after the creation time, the kept field.
s=$'\xff'
rate=$(redis-benchmark -p "$port" -q -n "$USEC_N" -c 50 -r 100000000 evalsha "$sha" 4 \
  "${P}call:__rand_int__" "${P}q:touraine-logement.technical.tl-tours" "${P}t:__rand_int__" "${P}call:__rand_int__" \
  "$P" 1000 2592000000 "tl-__rand_int__" "c-__rand_int__" touraine-logement.technical.tl-tours 2 "" \
  99999999999999 "tl-__rand_int__${s}touraine-logement${s}technical.plumbing.leak${s}TL-00012${s}" \
  "${s}1795780124779${s}12 rue Nationale 37000 Tours" \
  "c-__rand_int__${s}${s}touraine-logement.supervisor${s}touraine-logement${s}touraine-logement.technical.tl-tours${s}$details" 2>&1 \
  | grep -oE '[0-9.]+ requests per second' || true)
usec=$(redis-cli -p "$port" info commandstats | grep -oE '^cmdstat_evalsha:.*usec_per_call=[0-9.]+' | grep -oE '[0-9.]+$')
errors=$(redis-cli -p "$port" info errorstats | grep errorstat_ || true)
[ -z "$errors" ] || { echo "the script answered errors, its figures mean nothing: $errors"; exit 1; }
echo "create script: ${usec} µs of Redis time per call, ${rate} (redis-benchmark, 50 clients, $USEC_N calls)"

# Time per script, one caller: RUNS rounds, each on a fresh redis-server, then each script's
# median and range (a shared machine moves one round's figures by 10% or more).
for round in $(seq "$RUNS"); do
  port=$(free_port)
  mkdir -p "$work/lifecycle-$round"
  redis-server --port "$port" --save '' --appendonly yes --appendfsync everysec \
    --dir "$work/lifecycle-$round" >/dev/null 2>&1 &
  pids+=($!)
  wait_for_redis "$port" 30
  python3 benches/lifecycle_cost.py "$BIN" "$port" time "$TIME_N" >>"$work/times"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
done
python3 - "$work/times" "$RUNS" "$TIME_N" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    script, rest = line.split(" script: ", 1)
    times[script].append(float(rest.split()[0]))
for script, usec in times.items():
    print("%s script: %.2f µs of Redis time per call, median of %s rounds (%.2f-%.2f; one caller, "
          "50 calls at a time, %s calls a round)"
          % (script, statistics.median(usec), sys.argv[2], min(usec), max(usec), sys.argv[3]))
PY
