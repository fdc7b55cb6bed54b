#!/usr/bin/env bash
# profile-gateway-gets.sh BIN_DIR OUT: `perf record` of the gateway of a fresh
# release `cairn dev` cluster under 4 KiB GETs (32 in flight, 6 s sampled);
# read with `perf report -i OUT.data --no-children --sort symbol`. Not in CI.
set -u
BIN=$1 OUT=$2
dir=$(mktemp -d)
"$BIN/cairn" dev --data-dir "$dir" --port 19920 --bin-dir "$BIN" >"$dir.log" 2>&1 &
dev=$!
for _ in $(seq 1 300); do [[ -f $dir/cluster.json ]] && break; sleep 0.1; done
gw=$(python3 -c "import json; print(json.load(open('$dir/cluster.json'))['gateway']['pid'])")
"$BIN/cairn" --cluster-file "$dir/cluster.json" bench --op get --size 4KiB --concurrency 32 --objects 500 --duration 3s --bucket warm --json >/dev/null
"$BIN/cairn" --cluster-file "$dir/cluster.json" bench --op get --size 4KiB --concurrency 32 --objects 500 --duration 12s --bucket prof --json > "$OUT.bench.json" &
b=$!
sleep 4
perf record -F 999 -g -p "$gw" -o "$OUT.data" -- sleep 6 2>/dev/null
wait $b
kill -INT $dev; wait $dev 2>/dev/null; rm -rf "$dir" "$dir.log"
