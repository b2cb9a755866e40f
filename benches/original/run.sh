#!/usr/bin/env bash
# Issue 16's comparison in one sitting: agent-store's in-process loadtest and the original store on Bun,
# interleaved, on the same workload (1,000 projects × 100 messages, batches of 10, small and realistic
# contents), then the table (compare.ts). agent-store runs twice per round: with one live subscriber fed
# every message (its load test's default, more work than the original does) and without (`--no-live`, as
# the original's driver runs). Needs a release build and Bun (`npm i -g bun@1.4.5`).
#
# The original's driver sends one request at a time on its one thread: it has no requests in flight to set.
# agent-store is a concurrent store, and issue 12 asks for its ingest "with both cores busy". Its load test
# keeps CONCURRENCY requests in flight here, 256 unless set. At the load test's own default of 64 (chosen for
# HTTP) the in-process engine's threads and the generator wait on each other's wake-ups: at stop 38, 12
# alternating runs each of one build gave 1.73M msg/s and 1.55 cores busy at 64 in flight, 2.11M/s (×1.24,
# ahead in 11 of 12) and 1.70 cores at 256, with less CPU per run (0.081 against 0.091 s). Each report's
# `settings.concurrency` and the table's "cores busy" column say what ran. The runs and their command are in
# BENCHMARKS.md, stop 38, "Requests in flight".
#
#   [CONCURRENCY=N] benches/original/run.sh [AGENT_STORE_BINARY] [ROUNDS] [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../target/release/agent-store}"
rounds="${2:-2}"
out="${3:-$(mktemp -d /tmp/original-bench.XXXXXX)}"
workload=(--projects "${PROJECTS:-1000}" --messages "${MESSAGES:-100}" --batch "${BATCH:-10}")
in_flight=(--concurrency "${CONCURRENCY:-256}")
mkdir -p "$out"
(cd "$here" && { [ -d node_modules/svelte ] || npm ci --no-audit --no-fund; } && bun compile.ts)
for round in $(seq 1 "$rounds"); do
    for sizes in small realistic; do
        echo "round $round, $sizes: agent-store" >&2
        "$bin" loadtest --in-process "${workload[@]}" "${in_flight[@]}" --sizes "$sizes" --quiet --report "$out/rust-$sizes-$round.json"
        # The original's driver feeds no live subscriber (`live: false`): the same workload without one.
        echo "round $round, $sizes: agent-store, no live subscriber" >&2
        "$bin" loadtest --in-process "${workload[@]}" "${in_flight[@]}" --sizes "$sizes" --no-live --quiet \
            --report "$out/rust-nolive-$sizes-$round.json"
        for runes in svelte plain; do
            echo "round $round, $sizes: original ($runes state)" >&2
            bun "$here/driver.ts" "${workload[@]}" --sizes "$sizes" --runes "$runes" --quiet \
                --report "$out/original-$runes-$sizes-$round.json"
        done
    done
done
echo "reports in $out" >&2
bun "$here/compare.ts" "$out"
