#!/usr/bin/env bash
# Two release builds' HTTP ingest side by side, interleaved: 10,000 projects × 100 small messages in
# batches of 100 (issue 12's HTTP target), each run against a fresh server. Extra arguments go to the
# loadtest (e.g. `--rate 200000 --plot`, the latency target). Prints accepted msg/s, p50/p99 and the
# server's cores busy per run. The load generator is NEW's for every run, so only the server differs.
#
#   benches/compare/http.sh BASE_BINARY NEW_BINARY OUT_DIR ROUNDS [BASE_CONFIG] [NEW_CONFIG] [-- LOADTEST_ARGS...]
#
# Ports 17980-17989 must be free. One run takes ~30 s on 2 cores.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="$(realpath "$1")" new="$(realpath "$2")" out="$3" rounds="$4"
shift 4
base_conf="$(realpath "$here/../../config/default.toml")" new_conf="$base_conf"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then base_conf="$(realpath "$1")"; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then new_conf="$(realpath "$1")"; shift; fi
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
cd "$out" || exit 1

run() {
    local side=$1 round=$2 bin conf tag port=$((17980 + $2))
    case $side in base) bin=$base conf=$base_conf;; new) bin=$new conf=$new_conf;; esac
    tag="http-$side-$round"
    shift 2
    rm -rf "data-$tag"
    AGENT_STORE_TOKEN=t "$bin" serve --config "$conf" --bind "127.0.0.1:$port" --data-dir "data-$tag" \
        > "serve-$tag.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/readyz" && break
        sleep 0.2
    done
    AGENT_STORE_TOKEN=t "$new" loadtest --target "http://127.0.0.1:$port" --token t --projects 10000 \
        --messages 100 --batch 100 --sizes small --server-pid "$pid" --no-live --quiet \
        --report "$tag.json" "$@" > "$tag.out" 2>&1
    kill "$pid"
    wait "$pid"
    rm -rf "data-$tag"
    python3 - "$tag.json" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print(f'{sys.argv[1][:-5]:16} accepted {r["messages_per_s"]/1000:7.1f}k msg/s  stored {r["stored_per_s"]/1000:6.1f}k  '
      f'p50 {l["p50"]:6.1f} ms  p99 {l["p99"]:6.1f} ms  server {r.get("cores_busy") or 0:.2f} cores  load {sys.argv[2]}')
PY
}

for round in $(seq "$rounds"); do
    run base "$round" "$@"
    run new "$round" "$@"
done | tee summary.txt
