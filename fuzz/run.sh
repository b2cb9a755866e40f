#!/usr/bin/env bash
# Runs every fuzz target (or those named) for RUNS iterations each and prints one summary line per target.
#
#   fuzz/run.sh                    # every target, 1,000,000 runs each
#   RUNS=100000 fuzz/run.sh convert_raw
#
# Only stable Rust is installed here: RUSTC_BOOTSTRAP=1 lets it take the nightly-only flags cargo-fuzz
# passes (-Zsanitizer=address and the coverage passes). New inputs go to fuzz/corpus-run/<target>
# (ignored by git); the committed seeds in fuzz/corpus/<target> are read, never written.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
RUNS="${RUNS:-1000000}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -a
for t in "${targets[@]}"; do
    mkdir -p "corpus-run/$t"
    log="corpus-run/$t.log"
    start=$(date +%s)
    cargo fuzz run -a "$t" "corpus-run/$t" "corpus/$t" -- \
        -runs="$RUNS" -dict=json.dict -print_final_stats=1 >"$log" 2>&1 || {
        echo "$t: FAILED (see fuzz/$log and fuzz/artifacts/$t)"
        exit 1
    }
    secs=$(( $(date +%s) - start ))
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1)
    corpus=$(find "corpus-run/$t" "corpus/$t" -type f | wc -l)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    echo "$t: $done_line; wall ${secs}s; $cov; corpus $corpus files"
done
