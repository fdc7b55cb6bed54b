#!/usr/bin/env bash
# Repair of the same data set in several storage classes, on a release
# `cairn dev` cluster of 18 nodes in 6 racks (room for LRC(12,2,2)'s 16
# chunks at 3 per rack) per class, one run: a bucket of that class is
# filled, node-05 is SIGKILLed, and `cairn bench repair` reports bytes read,
# cross-rack bytes, time to full redundancy and client GET latency during
# the rebuild.
#
#   scripts/bench-repair-classes.sh [out-dir] [fill] [classes...]
#   (defaults: target/bench-repair-classes 512MiB "RS(8,4)" "RS(12,4)" "LRC(12,2,2)")
#
# Not run by CI (it is a benchmark); BENCHMARKS.md has its numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
OUT="${1:-target/bench-repair-classes}"
FILL="${2:-512MiB}"
shift $(( $# > 2 ? 2 : $# ))
CLASSES=("$@")
((${#CLASSES[@]})) || CLASSES=("RS(8,4)" "RS(12,4)" "LRC(12,2,2)")
mkdir -p "$OUT"
PORT=${CAIRN_BENCH_PORT:-19800}
DEV=
trap '[[ -n $DEV ]] && kill $DEV 2>/dev/null; wait 2>/dev/null' EXIT

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# A fresh cluster per class: each repair is alone, and its time to full
# redundancy is its own.
for class in "${CLASSES[@]}"; do
  slug=$(echo "$class" | tr 'A-Z' 'a-z' | tr -d '()' | tr ',' '-')
  DATA=$(mktemp -d)
  say "$class: cairn dev (release, ${NODES:-18} nodes in 6 racks, repair after 2 s) in $DATA"
  "$BIN/cairn" dev --data-dir "$DATA" --port "$PORT" --nodes "${NODES:-18}" --racks 6 \
    --repair-after 2s --replicated-max 0 >"$OUT/cairn-dev-$slug.log" 2>&1 &
  DEV=$!
  for _ in $(seq 1 900); do [[ -f "$DATA/cluster.json" ]] && break; sleep 0.1; done
  say "$class: fill $FILL in 4 MiB objects, SIGKILL node-05, time the rebuild"
  "$BIN/cairn" --cluster-file "$DATA/cluster.json" bench repair --class "$class" --fill "$FILL" \
    --object-size 4MiB --node node-05 --baseline 5s --json >"$OUT/repair-$slug.json"
  kill -INT $DEV; wait $DEV || true
  rm -rf "$DATA"
done

python3 - "$OUT" "${CLASSES[@]}" <<'PY'
import json, sys
out, classes = sys.argv[1], sys.argv[2:]
print("| class | node | chunks rebuilt | MiB read | MiB rebuilt | read amp. | cross-rack MiB | cross-rack ÷ rebuilt | detect + grace s | rebuild s | GET p99 before / during ms | GET errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in classes:
    slug = c.lower().replace("(", "").replace(")", "").replace(",", "-")
    r = json.load(open(f"{out}/repair-{slug}.json"))
    mib = lambda b: b / 1048576
    print(f'| {r["class"]} | {r["node"]} | {r["chunks_repaired"]} | {mib(r["bytes_read"]):.1f} | {mib(r["bytes_rebuilt"]):.1f} | '
          f'{r["read_amplification"]:.2f} | {mib(r["cross_rack_bytes"]):.1f} | {r["cross_rack_bytes"] / max(1, r["bytes_rebuilt"]):.2f} | '
          f'{r["detection_secs"]:.1f} | {r["repair_secs"]:.1f} | {r["get_latency_before_ms"]["p99"]:.1f} / {r["get_latency_during_ms"]["p99"]:.1f} | {r["get_errors"]} |')
PY
