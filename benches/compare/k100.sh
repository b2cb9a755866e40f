#!/usr/bin/env bash
# Two release builds' start and finish of 100,000 sessions over HTTP (issue 12's targets: starting ≤ 3 s,
# finishing ≤ 3 s, peak ≤ 512 MiB): 100,000 projects × 10 small messages in batches of 100, no live
# subscriber, 64 requests in flight, each run against a fresh server on a fresh data directory. The rounds
# alternate which build runs first (base-new, new-base, ...): the first run after a pause is slower. The load
# generator is NEW's for every run, so only the server differs. Prints per run the start (setup) and finish
# seconds, the server's peak, its CPU over the start per generator CPU-second (which cancels much of the
# machine's pace), the start's page faults and the persister's CPU; then each side's means (`pairs.py`).
#
#   benches/compare/k100.sh BASE_BINARY NEW_BINARY OUT_DIR ROUNDS
#
# Both read config/default.toml unless BASE_CONFIG / NEW_CONFIG name another. Ports 17990-17999 must be free.
# One run takes ~15 s on 2 cores.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="$(realpath "$1")" new="$(realpath "$2")" out="$3" rounds="$4"
base_conf="$(realpath "${BASE_CONFIG:-$here/../../config/default.toml}")"
new_conf="$(realpath "${NEW_CONFIG:-$here/../../config/default.toml}")"
mkdir -p "$out"
run() { # side round
    local side=$1 i=$2 bin conf port=$((17990 + RANDOM % 10)) data="$out/data-$1-$2"
    if [ "$side" = base ]; then bin=$base conf=$base_conf; else bin=$new conf=$new_conf; fi
    rm -rf "$data" && mkdir -p "$data"
    AGENT_STORE_TOKEN=t "$bin" serve --config "$conf" --bind "127.0.0.1:$port" --data-dir "$data" \
        >"$out/serve-$side-$i.log" 2>&1 &
    local pid=$!
    for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
    AGENT_STORE_TOKEN=t "$new" loadtest --target "http://127.0.0.1:$port" --projects 100000 --messages 10 \
        --batch 100 --sizes small --server-pid "$pid" --no-live --concurrency 64 --quiet \
        --report "$out/$side-$i.json" >"$out/loadtest-$side-$i.log" 2>&1 || echo "$side $i: loadtest failed" >&2
    kill -INT "$pid"
    wait "$pid" 2>/dev/null
    rm -rf "$data"
}
for i in $(seq 1 "$rounds"); do
    if [ $((i % 2)) = 1 ]; then run base "$i"; run new "$i"; else run new "$i"; run base "$i"; fi
done
python3 "$here/pairs.py" k100 "$out" "$rounds"
