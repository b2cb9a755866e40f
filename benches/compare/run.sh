#!/usr/bin/env bash
# Two release builds of agent-store side by side in one sitting, interleaved, on the workloads the issues'
# targets name (BENCHMARKS.md): in-process and HTTP 10,000 projects × 100 small messages (batches of 100),
# twice each; sustained 10,000 × 1,000 in-process; 100,000 projects × 10 messages over HTTP with the server's
# peak and its memory 75 s after the run. Then `summary.py` prints the table.
#
#   benches/compare/run.sh BASE_BINARY NEW_BINARY OUT_DIR [BASE_CONFIG] [NEW_CONFIG]
#
# The configs default to config/default.toml; give the base its own when the new build added keys the
# base does not know. Ports 17960-17979 must be free. Takes about 10 minutes on 2 cores.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="$1" new="$2" out="$3"
base_conf="$(realpath "${4:-$here/../../config/default.toml}")"
new_conf="$(realpath "${5:-$here/../../config/default.toml}")"
base="$(realpath "$base")" new="$(realpath "$new")"
mkdir -p "$out"
cd "$out" || exit 1
log() { echo "$(date +%T) $* (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a times.log >&2; }
bin_of() { case $1 in base) echo "$base";; new) echo "$new";; esac; }
conf_of() { case $1 in base) echo "$base_conf";; new) echo "$new_conf";; esac; }

# http SIDE TAG PORT PROJECTS MESSAGES BATCH: a fresh server, the load, its memory, then stop it.
http() {
    local side=$1 tag=$2 port=$3 data="$out/data-$2"
    rm -rf "$data"
    AGENT_STORE_TOKEN=t "$(bin_of "$side")" serve --config "$(conf_of "$side")" --bind "127.0.0.1:$port" \
        --data-dir "$data" > "serve-$tag.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/v1/health" -H 'Authorization: Bearer t' && break
        sleep 0.2
    done
    AGENT_STORE_TOKEN=t "$(bin_of "$side")" loadtest --target "http://127.0.0.1:$port" --token t \
        --projects "$4" --messages "$5" --batch "$6" --sizes small --server-pid "$pid" --no-live --quiet \
        --report "$tag.json" > "$tag.out" 2>&1
    grep -E 'VmHWM|VmRSS' "/proc/$pid/status" > "$tag.rss"
    if [ "$4" -ge 100000 ]; then
        # What stays once the cleanup grace (60 s) has passed and the actors stopped.
        sleep 75
        grep VmRSS "/proc/$pid/status" | sed 's/VmRSS/Settled/' >> "$tag.rss"
    fi
    kill "$pid"
    wait "$pid"
    rm -rf "$data"
}

log start
for round in 1 2; do
    for side in base new; do
        log "in-process 10k $side $round"
        "$(bin_of $side)" loadtest --in-process --projects 10000 --messages 100 --batch 100 --sizes small \
            --quiet --report "ip10k-$side-$round.json" > "ip10k-$side-$round.out" 2>&1
        log "http 10k $side $round"
        http $side "h10k-$side-$round" "1797$round" 10000 100 100
    done
done
for side in base new; do
    log "sustained $side"
    "$(bin_of $side)" loadtest --in-process --projects 10000 --messages 1000 --batch 100 --sizes small \
        --quiet --report "sus-$side.json" > "sus-$side.out" 2>&1
    log "100k $side"
    http $side "m100k-$side" 17960 100000 10 100
done
log done
python3 "$here/summary.py" "$out"
