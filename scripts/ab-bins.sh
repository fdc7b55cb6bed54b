#!/usr/bin/env bash
# Interleaved A/B of two builds of the whole cluster: single-stream 1 GiB
# PUT and GET (4 each), alternating the builds so the VM's drift cancels.
#
#   scripts/ab-bins.sh BEFORE_BIN_DIR AFTER_BIN_DIR [rounds]
#
# Each bin dir holds cairn, cairn-meta, cairn-node, cairn-gateway and
# cairn-scrubber (e.g. a copy of target/release before a change).
set -u
BEFORE=$1 AFTER=$2 ROUNDS=${3:-2}
run() { # bin-dir label port
  local dir; dir=$(mktemp -d)
  "$1/cairn" dev --data-dir "$dir" --port "$3" --bin-dir "$1" >"$dir.log" 2>&1 &
  local dev=$!
  for _ in $(seq 1 300); do [[ -f $dir/cluster.json ]] && break; sleep 0.1; done
  local mbs="import json,sys; print(round(json.load(sys.stdin)['total']['mb_per_sec'],1))"
  local put get
  put=$("$1/cairn" --cluster-file "$dir/cluster.json" bench --op put --size 1GiB --concurrency 1 --count 4 --duration 10m --bucket ab-put --json | python3 -c "$mbs")
  get=$("$1/cairn" --cluster-file "$dir/cluster.json" bench --op get --size 1GiB --concurrency 1 --count 4 --objects 1 --duration 10m --bucket ab-get --json | python3 -c "$mbs")
  echo "$2 put $put MB/s get $get MB/s"
  kill $dev; wait $dev 2>/dev/null; rm -rf "$dir" "$dir.log"
}
for _ in $(seq 1 "$ROUNDS"); do
  run "$BEFORE" before 19900
  run "$AFTER" after 19910
done
