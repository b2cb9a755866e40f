#!/usr/bin/env bash
# Issue 18's comparison in one sitting: one node alone, one node in cluster mode, three nodes, each under
# the same `agent-store loadtest --target` load, with one JetStream nats-server (NATS_SERVER, or on PATH).
#
#   benches/cluster/run.sh [AGENT_STORE_BINARY] [OUT_DIR]
#
# CLUSTER_EXTRA adds lines to each node's [cluster] table, e.g. CLUSTER_EXTRA='apply_batch = 64'.
# Besides the load generator's line (accepted msg/s: until JetStream stored the last batch), each cluster run
# prints when its owners had applied everything (applied.py): reads wait for that.
set -euo pipefail
BIN=$(realpath "${1:-target/release/agent-store}"); OUT="${2:-$(mktemp -d /tmp/cluster-bench.XXXXXX)}"
HERE=$(dirname "$(realpath "$0")")
NATS_SERVER="${NATS_SERVER:-$(command -v nats-server)}"
mkdir -p "$OUT"; cd "$OUT"
rm -rf nats a b c alone *.toml *.json *.log
mkdir nats
"$NATS_SERVER" -a 127.0.0.1 -p -1 -js -sd nats/js --ports_file_dir nats > nats/log 2>&1 & NATS=$!
trap 'kill $NATS $(cat $OUT/pids 2>/dev/null) 2>/dev/null || true' EXIT
for i in $(seq 50); do ls nats/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
URL=$(python3 -c 'import json,glob; print(json.load(open(glob.glob("nats/*.ports")[0]))["nats"][0])')
node() { # id port cluster
  cat > $1.toml <<T
[server]
bind = "127.0.0.1:$2"
[storage]
data_dir = "$OUT/$1"
[providers.synthetic]
kind = "synthetic"
[cluster]
enabled = $3
nats_url = "$URL"
node_id = "$1"
lease_ttl = "5s"
${CLUSTER_EXTRA:-}
T
  $BIN serve --config $1.toml > $1.log 2>&1 & echo $! >> $OUT/pids
  for i in $(seq 100); do curl -sf http://127.0.0.1:$2/readyz >/dev/null && break; sleep 0.1; done
}
LOAD="--projects ${PROJECTS:-600} --messages 200 --batch 100 --per-event 10 --concurrency 32 --no-live --quiet"
run() { # name targets
  PORTS=$(echo "$2" | tr ',' '\n' | sed 's/.*://' | paste -sd,)
  python3 "$HERE/applied.py" "$PORTS" "$1" > $1.applied & SAMPLER=$!
  $BIN loadtest --target $2 $LOAD --report $1.json || true
  kill $SAMPLER; wait $SAMPLER || true; cat $1.applied
  python3 -c "import json; r=json.load(open('$1.json')); print('$1', 'acked', r['acked'], 'stored', r['stored'], 'msg/s %.0f' % r['messages_per_s'], 'p50 %.1f p99 %.1f ms' % (r['latency_ms']['p50'], r['latency_ms']['p99']), 'loss_ok', r['loss_check']['passed'])"
}
node alone 17900 false
run alone http://127.0.0.1:17900
kill $(cat $OUT/pids); rm $OUT/pids; sleep 1
node a 17901 true
sleep 3
run one-node-cluster http://127.0.0.1:17901
kill $(cat $OUT/pids); rm $OUT/pids; kill $NATS; sleep 1
rm -rf nats a; mkdir nats
"$NATS_SERVER" -a 127.0.0.1 -p -1 -js -sd nats/js --ports_file_dir nats > nats/log 2>&1 & NATS=$!
for i in $(seq 50); do ls nats/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
URL=$(python3 -c 'import json,glob; print(json.load(open(glob.glob("nats/*.ports")[0]))["nats"][0])')
node a 17901 true; node b 17902 true; node c 17903 true
# wait for a rebalance to settle: every node holds some partitions
for i in $(seq 100); do
  n=$(for p in 17901 17902 17903; do curl -s http://127.0.0.1:$p/v1/cluster | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["partitions"]))'; done | grep -vc '^0$' || true)
  [ "$n" = 3 ] && break; sleep 0.5
done
for p in 17901 17902 17903; do curl -s http://127.0.0.1:$p/v1/cluster | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["nodeId"], len(d["partitions"]))'; done
run three-nodes http://127.0.0.1:17901,http://127.0.0.1:17902,http://127.0.0.1:17903
