#!/usr/bin/env bash
# A PUT tail with one storage node SIGSTOPped (a hung disk behind a live
# process), on a release `cairn dev` cluster: `cairn bench` 1 MiB PUTs at
# concurrency 16 healthy, then with node-05 stopped, then three 50 MiB
# uploads through boto3's upload_file (s3transfer, what `aws s3 cp` uses)
# with the node still stopped. Release build required.
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
$BIN/cairn $C bench --op put --size 1MiB --concurrency 16 --duration 20s --bucket stall --json > $OUT/healthy.json
summ $OUT/healthy.json healthy
PID=$(python3 -c "import json;print(next(n['pid'] for n in json.load(open('$DATA/cluster.json'))['nodes'] if n['id']=='node-05'))")
echo $PID > $OUT/pid
kill -STOP $PID
$BIN/cairn $C bench --op put --size 1MiB --concurrency 16 --duration 20s --bucket stall --json > $OUT/stopped.json
summ $OUT/stopped.json "node-05 SIGSTOPped"
# 50 MiB single upload with the node still stopped, timed.
head -c $((50*1024*1024)) /dev/urandom > $OUT/50m.bin
.venv/bin/python - "$DATA/cluster.json" "$OUT/50m.bin" <<'PY'
import json, sys, time, boto3
from botocore.config import Config
info = json.load(open(sys.argv[1]))
s3 = boto3.client("s3", endpoint_url=info["s3_endpoint"], aws_access_key_id=info["access_key"],
                  aws_secret_access_key=info["secret_key"], region_name=info["region"],
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
for i in range(3):
    t = time.monotonic()
    s3.upload_file(sys.argv[2], "stall", f"50m-{i}")
    print(f"node-05 SIGSTOPped: 50 MiB upload_file {i}: {time.monotonic() - t:.2f} s")
PY
kill -CONT $PID
