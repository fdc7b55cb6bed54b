#!/usr/bin/env bash
# Interleaved A/B of two builds of the whole cluster on small GETs (the
# #14 cases): 4 KiB x32 and 1 MiB x16, every GET verified, a fresh release
# `cairn dev` cluster per run, ABBA order so the VM's drift cancels.
#
#   scripts/ab-small-gets.sh BEFORE_BIN_DIR AFTER_BIN_DIR [rounds] [seconds]
set -u
BEFORE=$1 AFTER=$2 ROUNDS=${3:-2} SECS=${4:-15}
run() { # bin-dir label port
  local dir; dir=$(mktemp -d)
  "$1/cairn" dev --data-dir "$dir" --port "$3" --bin-dir "$1" >"$dir.log" 2>&1 &
  local dev=$!
  for _ in $(seq 1 300); do [[ -f $dir/cluster.json ]] && break; sleep 0.1; done
  local fmt="import json,sys; s=dict(json.load(sys.stdin)['by_op'])['get']; print(f\"{s['ops_per_sec']:.1f} ops/s p99 {s['latency_ms']['p99']:.1f} ms errors {s['errors']}\")"
  local small big
  small=$("$1/cairn" --cluster-file "$dir/cluster.json" bench --op get --size 4KiB --concurrency 32 --objects 1000 --duration "${SECS}s" --bucket ab-4k --json | python3 -c "$fmt")
  big=$("$1/cairn" --cluster-file "$dir/cluster.json" bench --op get --size 1MiB --concurrency 16 --objects 200 --duration "${SECS}s" --bucket ab-1m --json | python3 -c "$fmt")
  echo "$2: 4KiB x32 GET $small | 1MiB x16 GET $big"
  kill -INT $dev; wait $dev 2>/dev/null; rm -rf "$dir" "$dir.log"
}
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then
    run "$BEFORE" before 19900; run "$AFTER" after 19910
  else
    run "$AFTER" after 19910; run "$BEFORE" before 19900
  fi
done
