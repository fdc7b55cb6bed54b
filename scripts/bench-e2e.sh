#!/usr/bin/env bash
# End-to-end benchmarks on a release `cairn dev` cluster, everything on this
# machine (client, gateway, 12 nodes, metadata service, scrubber):
#
#   scripts/bench-e2e.sh [out-dir]      (./dev bench e2e runs it)
#
# Writes one JSON per case into out-dir (default target/bench-e2e) and
# prints a summary. Requires a release build (cargo build --release --bins)
# and .venv (./dev test creates it) for the gateway RSS probe.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
OUT="${1:-target/bench-e2e}"
mkdir -p "$OUT"
DATA=$(mktemp -d)
PORT=${CAIRN_BENCH_PORT:-19700}
trap 'kill $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$DATA"' EXIT

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "machine"
{ nproc; grep -m1 'model name' /proc/cpuinfo; } | tee "$OUT/machine.txt"

say "single-core MD5 (openssl speed -evp md5, 1 MiB blocks)"
openssl speed -evp md5 -bytes 1048576 -seconds 3 2>/dev/null | tail -1 | tee "$OUT/md5.txt"
say "single-core stage rates: MD5, encode+blake3, loopback copy (cairn bench stages)"
"$BIN/cairn" bench stages --json >"$OUT/stages.json"
python3 -c "import json; print(json.dumps(json.load(open('$OUT/stages.json')), indent=1))"

say "starting cairn dev (release) in $DATA"
"$BIN/cairn" dev --data-dir "$DATA" --port "$PORT" --repair-after 2s >"$OUT/cairn-dev.log" 2>&1 &
DEV=$!
for _ in $(seq 1 600); do [[ -f "$DATA/cluster.json" ]] && break; sleep 0.1; done
CLUSTER="--cluster-file $DATA/cluster.json"

bench() {
  local name=$1; shift
  say "bench $name: $*"
  "$BIN/cairn" $CLUSTER bench "$@" --json >"$OUT/$name.json"
  python3 - "$OUT/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for op, s in r["by_op"]:
    l = s["latency_ms"]
    print(f'  {op:6} {s["ops"]:7} ops  {s["errors"]} errors  {s["ops_per_sec"]:9.1f} ops/s  {s["mb_per_sec"]:8.1f} MB/s  '
          f'p50 {l["p50"]:.2f}  p90 {l["p90"]:.2f}  p99 {l["p99"]:.2f}  p99.9 {l["p999"]:.2f} ms')
PY
}

bench put-1g-single   --op put --size 1GiB --concurrency 1 --count 4 --duration 10m --bucket e2e-big
bench get-1g-single   --op get --size 1GiB --concurrency 1 --count 6 --objects 2 --duration 10m --bucket e2e-big
bench put-1m-c16      --op put --size 1MiB --concurrency 16 --duration 20s --bucket e2e-1m
bench get-1m-c16      --op get --size 1MiB --concurrency 16 --duration 20s --objects 64 --bucket e2e-1m
bench put-4k-c32      --op put --size 4KiB --concurrency 32 --duration 20s --bucket e2e-4k
bench get-4k-c32      --op get --size 4KiB --concurrency 32 --duration 20s --objects 256 --bucket e2e-4k
bench mixed-1m-c16    --op mixed --size 1MiB --concurrency 16 --duration 20s --objects 64 --bucket e2e-mixed
bench list-c8         --op list --size 4KiB --concurrency 8 --duration 10s --objects 1000 --bucket e2e-list

if [[ -x .venv/bin/python ]]; then
  say "gateway peak RSS over a 2 GiB PUT and GET"
  .venv/bin/python tests/s3/gateway_rss.py "$DATA/cluster.json" 2 | tee "$OUT/gateway-rss.txt"
fi

say "repair: fill 1 GiB in 4 MiB objects, SIGKILL node-05, time the rebuild"
"$BIN/cairn" $CLUSTER bench repair --fill 1GiB --object-size 4MiB --node node-05 --json >"$OUT/repair.json"
python3 -c "import json,sys; print(json.dumps(json.load(open('$OUT/repair.json')), indent=1))"
say "end-to-end single-stream throughput as a fraction of the slowest stage"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
md5_speed = float(open(f"{out}/md5.txt").read().split()[1].rstrip("k")) / 1000  # openssl prints kB/s
stages = json.load(open(f"{out}/stages.json"))
def mbs(name):
    return json.load(open(f"{out}/{name}.json"))["total"]["mb_per_sec"]
limits = {"md5 (openssl speed)": md5_speed, "md5 (cairn bench stages)": stages["md5_mb_per_sec"],
          "encode+blake3": stages["encode_blake3_mb_per_sec"], "loopback copy": stages["loopback_copy_mb_per_sec"]}
for case, target in (("put-1g-single", 0.5), ("get-1g-single", 0.8)):
    rate = mbs(case)
    print(f"  {case}: {rate:.1f} MB/s")
    for name, limit in limits.items():
        mark = f"  (target {target}x)" if name == "md5 (openssl speed)" else ""
        print(f"    / {name:26} {limit:8.1f} MB/s = {rate / limit:.2f}x{mark}")
PY
say "results in $OUT"
