#!/usr/bin/env bash
# Metadata replication cost, as an interleaved A/B on this machine:
# `cairn dev --meta-replicas 1` against `--meta-replicas 3`, each round a
# fresh release cluster, 4 KiB PUTs at concurrency 32 (the case the
# catalogue bounds), then the metadata commit latency (p50/p99 from the
# replicas' cairn_meta_commit_seconds histograms, interpolated in their
# buckets).
#
#   scripts/bench-meta-replicas.sh [rounds] [seconds]   (defaults 4, 20)
#   OP=get SIZE=1MiB CONC=16 scripts/bench-meta-replicas.sh   (another case:
#   a GET's manifest lookup passes the shard leader's read barrier)
#
# Prints one line per run and the ratio of the medians. Release build
# required (cargo build --release --bins).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
ROUNDS=${1:-4}
SECONDS_PER_RUN=${2:-20}
OUT=target/bench-meta-replicas
mkdir -p "$OUT"
PORT=${CAIRN_BENCH_PORT:-19800}
OP=${OP:-put}
SIZE=${SIZE:-4KiB}
CONC=${CONC:-32}
CASE="$OP-$SIZE-$CONC"

run() {
  local replicas=$1 round=$2
  local data
  data=$(mktemp -d)
  "$BIN/cairn" dev --data-dir "$data" --port "$PORT" --meta-replicas "$replicas" >"$OUT/dev-$replicas-$round.log" 2>&1 &
  local dev=$!
  for _ in $(seq 1 600); do [[ -f "$data/cluster.json" ]] && break; sleep 0.1; done
  "$BIN/cairn" --cluster-file "$data/cluster.json" bench --op "$OP" --size "$SIZE" --concurrency "$CONC" \
    --duration "${SECONDS_PER_RUN}s" --bucket meta-ab --json >"$OUT/$CASE-$replicas-$round.json"
  python3 - "$data/cluster.json" "$OUT/$CASE-$replicas-$round.json" "$replicas" "$round" "$OP" "$SIZE" "$CONC" <<'PY'
import json, sys, urllib.request
info = json.load(open(sys.argv[1]))
bench = json.load(open(sys.argv[2]))
buckets = {}
for replica in info["metadata"]:
    req = urllib.request.Request(replica["address"] + "/metrics",
                                 headers={"x-cairn-secret": info["cluster_secret"]})
    for line in urllib.request.urlopen(req, timeout=10).read().decode().splitlines():
        if line.startswith("cairn_meta_commit_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
bounds = sorted(((float("inf") if le == "+Inf" else float(le)), n) for le, n in buckets.items())
total = bounds[-1][1]
def quantile(q):
    prev_bound, prev_n = 0.0, 0.0
    for bound, n in bounds:
        if n >= q * total:
            if bound == float("inf"):
                return prev_bound
            frac = (q * total - prev_n) / max(n - prev_n, 1)
            return prev_bound + frac * (bound - prev_bound)
        prev_bound, prev_n = bound, n
    return prev_bound
op, size, conc = sys.argv[5], sys.argv[6], sys.argv[7]
stats = dict(bench["by_op"])[op]
commits = (f"; commit p50 {quantile(0.5)*1000:.2f} ms, p99 {quantile(0.99)*1000:.2f} ms over {int(total)} commits"
           if op == "put" else "")
print(f"replicas={sys.argv[3]} round={sys.argv[4]}: {size} x{conc} {op.upper()} {stats['ops_per_sec']:.1f} ops/s "
      f"(p50 {stats['latency_ms']['p50']:.1f} ms, p99 {stats['latency_ms']['p99']:.1f} ms, {stats['errors']} errors)"
      f"{commits}")
PY
  kill -INT "$dev"; wait "$dev" 2>/dev/null || true
  rm -rf "$data"
}

# ABBA order: the first cluster of a session runs faster (a cold machine),
# so neither configuration always goes first.
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then
    run 1 "$round"; run 3 "$round"
  else
    run 3 "$round"; run 1 "$round"
  fi
done | tee "$OUT/summary-$CASE.txt"
python3 - "$OUT/summary-$CASE.txt" <<'PY'
import re, statistics, sys
ops = {"1": [], "3": []}
for line in open(sys.argv[1]):
    m = re.match(r"replicas=(\d) round=\d+: (\S+ x\d+ \w+) ([\d.]+) ops/s", line)
    if m:
        ops[m.group(1)].append(float(m.group(3)))
        label = m.group(2)
one, three = statistics.median(ops["1"]), statistics.median(ops["3"])
print(f"median {label} ops/s: 1 replica {one:.1f}, 3 replicas {three:.1f}: 3 replicas keep {three / one:.0%}")
PY
