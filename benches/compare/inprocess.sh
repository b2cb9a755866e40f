#!/usr/bin/env bash
# Two release builds' in-process ingest, interleaved pair by pair (base, new, base, new, ...): issue 12's
# in-process workload, 1,000 projects × MESSAGES small messages in batches of 10. Extra arguments go to both
# loadtests (e.g. `--no-live`). Pairs alternate which build runs first. Prints each run, then per side the means and in how many pairs new was higher,
# for accepted msg/s, the stream's CPU (engine and generator), page faults, context switches and the peak.
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
        cut -d' ' -f1 /proc/loadavg >"$out/$side-$i.load"
        "$bin" loadtest --in-process --config "$conf" --projects 1000 --messages "$messages" --batch 10 \
            --sizes small --quiet --report "$out/$side-$i.json" "$@" >/dev/null 2>"$out/$side-$i.err"
    done
done
python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def row(side, i):
    r = json.load(open(f"{out}/{side}-{i}.json"))
    stream = next(p for p in r["phases"] if p["phase"] == "stream")
    return {"msg/s": r["messages_per_s"], "stream CPU s": r["cpu_stream_s"],
            "page faults": r["page_faults_stream"], "context switches": stream["server"]["context_switches"],
            "peak MiB": r["rss_peak_bytes"] / 2**20, "load": float(open(f"{out}/{side}-{i}.load").read())}
runs = {s: [row(s, i) for i in range(1, pairs + 1)] for s in ("base", "new")}
for i in range(pairs):
    for s in ("base", "new"):
        print(s, i + 1, "  ".join(f"{k} {v:,.3f}" if v < 10 else f"{k} {v:,.1f}" for k, v in runs[s][i].items()))
for k in runs["base"][0]:
    if k == "load":
        continue
    b, n = [r[k] for r in runs["base"]], [r[k] for r in runs["new"]]
    higher = sum(y > x for x, y in zip(b, n))
    print(f"{k:17} base {statistics.mean(b):12,.3f}  new {statistics.mean(n):12,.3f}  "
          f"ratio {statistics.mean(n) / statistics.mean(b):.3f}  new higher in {higher}/{pairs}")
PY
