#!/usr/bin/env bash
# Two release builds' in-process ingest, interleaved pair by pair: issue 12's in-process workload, 1,000
# projects × MESSAGES small messages in batches of 10. Extra arguments go to both loadtests (e.g. `--no-live`).
# Pairs alternate which build runs first. `pairs.py` prints each run, then per side the means and in how many
# pairs new was higher, for accepted msg/s, the stream's CPU (engine and generator), page faults, context
# switches and the peak.
# A stream of 1,000 × 100 lasts ~0.1 s: use 8 pairs or more and compare the ratio, not one run.
#
#   benches/compare/inprocess.sh BASE_BINARY NEW_BINARY OUT_DIR PAIRS [MESSAGES] [-- LOADTEST_ARGS...]
#
# Both read config/default.toml unless BASE_CONFIG / NEW_CONFIG name another.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="$(realpath "$1")" new="$(realpath "$2")" out="$3" pairs="$4"
shift 4
messages=100
if [ $# -gt 0 ] && [ "$1" != "--" ]; then messages="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
base_conf="$(realpath "${BASE_CONFIG:-$here/../../config/default.toml}")"
new_conf="$(realpath "${NEW_CONFIG:-$here/../../config/default.toml}")"
mkdir -p "$out"
for i in $(seq 1 "$pairs"); do
    # Pairs alternate which build runs first: the second run of a pair reached a higher peak at stop 36.
    order="base new"
    [ $((i % 2)) = 0 ] && order="new base"
    for side in $order; do
        if [ "$side" = base ]; then bin=$base conf=$base_conf; else bin=$new conf=$new_conf; fi
        "$bin" loadtest --in-process --config "$conf" --projects 1000 --messages "$messages" --batch 10 \
            --sizes small --quiet --report "$out/$side-$i.json" "$@" >/dev/null 2>"$out/$side-$i.err"
    done
done
python3 "$here/pairs.py" inprocess "$out" "$pairs"
