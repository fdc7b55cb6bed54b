#!/usr/bin/env bash
# A PUT tail with one storage node SIGSTOPped (a hung disk behind a live
# process), on a release `cairn dev` cluster: `cairn bench` 1 MiB PUTs at
# concurrency 16 healthy, then with node-05 stopped, then three 50 MiB
# `aws s3 cp` uploads (aws-cli from .venv, multipart at 8 MiB as it
# defaults) with the node still stopped, each timed, and the same three
# uploads healthy first for comparison. Release build required.
#
#   scripts/bench-stalled-node.sh
set -euo pipefail
BIN=target/release
DATA=$(mktemp -d)
OUT=target/bench-stalled-node; mkdir -p $OUT
$BIN/cairn dev --data-dir "$DATA" --port 19900 > $OUT/dev.log 2>&1 &
DEV=$!
trap 'kill -CONT $(cat $OUT/pid 2>/dev/null) 2>/dev/null; kill -INT $DEV; wait $DEV 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 600); do [[ -f "$DATA/cluster.json" ]] && break; sleep 0.1; done
C="--cluster-file $DATA/cluster.json"
summ() { python3 -c "
import json,sys
r=json.load(open('$1'))
for op,s in r['by_op']:
    l=s['latency_ms']; print(f'$2: {op} {s[\"ops_per_sec\"]:.1f} ops/s p50 {l[\"p50\"]:.1f} p99 {l[\"p99\"]:.1f} ms errors {s[\"errors\"]}')
"; }
head -c $((50*1024*1024)) /dev/urandom > $OUT/50m.bin
export AWS_ACCESS_KEY_ID=$(python3 -c "import json;print(json.load(open('$DATA/cluster.json'))['access_key'])")
export AWS_SECRET_ACCESS_KEY=$(python3 -c "import json;print(json.load(open('$DATA/cluster.json'))['secret_key'])")
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ENDPOINT=$(python3 -c "import json;print(json.load(open('$DATA/cluster.json'))['s3_endpoint'])")
awscp() { # $1: label
  for i in 1 2 3; do
    local t0=$(date +%s.%N)
    .venv/bin/aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors $OUT/50m.bin "s3://stall/50m-$i"
    echo "$1: aws s3 cp 50 MiB #$i: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')") s"
  done
}
# Blobs acknowledged with a chunk recorded missing: under load alone (healthy)
# this must stay 0, or write_stall_after is too short for the machine.
ADMIN=$(python3 -c "import json;print(json.load(open('$DATA/cluster.json'))['gateway_admin_endpoint'])")
degraded() { curl -s "$ADMIN/metrics" | awk '/^cairn_gateway_degraded_writes_total/ {print $2}'; }
$BIN/cairn $C bench --op put --size 1MiB --concurrency 16 --duration 20s --bucket stall --json > $OUT/healthy.json
summ $OUT/healthy.json healthy
echo "healthy: degraded writes so far: $(degraded)"
awscp healthy
PID=$(python3 -c "import json;print(next(n['pid'] for n in json.load(open('$DATA/cluster.json'))['nodes'] if n['id']=='node-05'))")
echo $PID > $OUT/pid
kill -STOP $PID
$BIN/cairn $C bench --op put --size 1MiB --concurrency 16 --duration 20s --bucket stall --json > $OUT/stopped.json
summ $OUT/stopped.json "node-05 SIGSTOPped"
echo "node-05 SIGSTOPped: degraded writes so far: $(degraded)"
awscp "node-05 SIGSTOPped"
kill -CONT $PID
