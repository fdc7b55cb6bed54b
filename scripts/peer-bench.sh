#!/usr/bin/env bash
# Cairn against a 3-way replicated peer, same client, same run: Garage 2.5.0
# (3 nodes on this machine, replication factor 3, metadata and data fsync
# on, one zone per node) and a release `cairn dev` cluster (12 nodes, 8+4,
# 3 metadata replicas). `cairn bench` (every GET verified) runs each case
# against both, alternating which goes first, and prints a Markdown table.
# Outside CI: Garage is built once by scripts/install-garage.sh (11-18 min).
#
#   scripts/peer-bench.sh [seconds per case]      (default 20)
#   LARGE=256MiB scripts/peer-bench.sh            (the large case's size)
#   BENCH_DIR=/mnt/x scripts/peer-bench.sh        (both stores' data there)
#
# BENCH_DIR puts both stores' data on another file system (default: a
# directory under /tmp). This VM's root is ext4 *without a journal*, which
# on every inode allocation skips the inodes freed in the last seconds to
# minutes: a case that runs after the other store's (or its own) cleanup
# deleted thousands of files pays for it. The README advises XFS or
# journaled ext4 for data disks; a journaled ext4 image on a loop device
# (`losetup --direct-io=on`) gives both stores that.
#
# The large case is 1 GiB, 2 PUTs (--count) and 1 object to GET: about 14 GB
# of disk for both stores' copies; LARGE=256MiB needs a quarter. Nothing
# is deleted until the end (--keep, below): the 1 MiB PUTs and GETs add
# about 14 GB more (Cairn's 3 copies of ~3500 objects, Garage's of ~1000).
# After the table, `cairn bench stages` (single-core rate of MD5, encode +
# blake3 and a loopback copy) runs in the same session, for the large GET's
# ratio to each stage.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
SECS=${1:-20}
LARGE=${LARGE:-1GiB}
GARAGE=$(scripts/install-garage.sh)
OUT=target/peer-bench
mkdir -p "$OUT"
WORK=$(mktemp -d -p "${BENCH_DIR:-${TMPDIR:-/tmp}}")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -n "${DEV:-}" ]] && kill -INT "$DEV" 2>/dev/null && wait "$DEV" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- Garage: three nodes ----
# Ports below the ephemeral range (32768+), where an outgoing connection of
# a running process cannot have taken them.
RPC_SECRET=$(python3 -c "import secrets;print(secrets.token_hex(32))")
ADMIN_TOKEN=$(python3 -c "import secrets;print(secrets.token_hex(16))")
for i in 1 2 3; do
  mkdir -p "$WORK/g$i/meta" "$WORK/g$i/data"
  cat >"$WORK/g$i.toml" <<TOML
metadata_dir = "$WORK/g$i/meta"
data_dir = "$WORK/g$i/data"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = 3
rpc_bind_addr = "127.0.0.1:2${i}901"
rpc_public_addr = "127.0.0.1:2${i}901"
rpc_secret = "$RPC_SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:2${i}900"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:2${i}903"
admin_token = "$ADMIN_TOKEN"
TOML
  "$GARAGE" -c "$WORK/g$i.toml" server >"$OUT/garage-$i.log" 2>&1 &
  PIDS+=($!)
done
g() { "$GARAGE" -c "$WORK/g1.toml" "$@"; }
for _ in $(seq 1 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
IDS=()
for i in 1 2 3; do
  IDS+=("$("$GARAGE" -c "$WORK/g$i.toml" node id -q 2>/dev/null)")
done
for id in "${IDS[@]:1}"; do g node connect "$id" >/dev/null; done
for i in 1 2 3; do
  g layout assign -z "zone$i" -c 20G "${IDS[$((i - 1))]%%@*}" >/dev/null
done
g layout apply --version 1 >/dev/null
KEY_INFO=$(g key create peer-bench)
G_ACCESS=$(echo "$KEY_INFO" | awk '/Key ID/ {print $NF}')
G_SECRET=$(echo "$KEY_INFO" | awk '/Secret key/ {print $NF}')
g bucket create peer-bench >/dev/null
g bucket allow --read --write --owner peer-bench --key peer-bench >/dev/null
G_ARGS=(--endpoint http://127.0.0.1:21900 --access-key "$G_ACCESS" --secret-key "$G_SECRET" --region garage)

# ---- Cairn ----
"$BIN/cairn" dev --data-dir "$WORK/cairn" --port 19700 >"$OUT/cairn-dev.log" 2>&1 &
DEV=$!
for _ in $(seq 1 600); do [[ -f "$WORK/cairn/cluster.json" ]] && break; sleep 0.1; done
C_ARGS=(--cluster-file "$WORK/cairn/cluster.json")

bench() { # $1 store, $2 op, $3 size, $4 concurrency, $5 extra args
  local args
  if [[ $1 == cairn ]]; then args=("${C_ARGS[@]}"); else args=("${G_ARGS[@]}"); fi
  local file="$OUT/$1-$2-$3-$4.json"
  # --keep: no case deletes what it wrote. A cleanup's thousands of
  # deletes would land (directly, or later through either store's garbage
  # collection) inside the next cases, and on a journal-less ext4 (this
  # VM's root) every file created in the next minutes then pays for them
  # (see BENCH_DIR above): which store ran after whose cleanup would decide
  # the result. Everything goes with the work directory at the end.
  # shellcheck disable=SC2086
  "$BIN/cairn" bench "${args[@]}" --op "$2" --size "$3" --concurrency "$4" --duration "${SECS}s" \
    --bucket peer-bench --keep $5 --json >"$file"
  echo "$file"
}

CASES=(
  "put $LARGE 1 --count=2"
  "get $LARGE 1 --objects=1"
  "put 1MiB 16"
  "get 1MiB 16 --objects=200"
  "put 4KiB 32"
  "get 4KiB 32 --objects=1000"
)
: >"$OUT/results.txt"
n=0
for case in "${CASES[@]}"; do
  read -r op size conc extra <<<"$case"
  if (( n % 2 )); then order=(garage cairn); else order=(cairn garage); fi
  for store in "${order[@]}"; do
    file=$(bench "$store" "$op" "$size" "$conc" "${extra:-}")
    echo "$store $op $size $conc $file" >>"$OUT/results.txt"
  done
  n=$((n + 1))
done

python3 - "$OUT/results.txt" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    store, op, size, conc, path = line.split()
    stats = dict(json.load(open(path))["by_op"])[op]
    rows.setdefault((op, size, conc), {})[store] = stats
print("| case | Cairn | Garage | Cairn ÷ Garage |")
print("| --- | ---: | ---: | ---: |")
def fmt(s, size):
    mbps = s.get("mb_per_sec") or s.get("bytes_per_sec", 0) / 1e6
    lat = s["latency_ms"]
    if size.endswith("KiB"):
        return f"{s['ops_per_sec']:.0f} ops/s (p99 {lat['p99']:.0f} ms)", s["ops_per_sec"]
    return f"{mbps:.0f} MB/s (p99 {lat['p99']:.0f} ms)", mbps
for (op, size, conc), by in rows.items():
    c, cv = fmt(by["cairn"], size)
    g, gv = fmt(by["garage"], size)
    errors = by["cairn"]["errors"] + by["garage"]["errors"]
    note = f" ({errors} errors)" if errors else ""
    print(f"| {size} {op.upper()}, {conc} in flight | {c} | {g} | {cv / gv if gv else float('nan'):.2f}×{note} |")
PY

echo
echo "Single-core stage rates, same session (cairn bench stages):"
"$BIN/cairn" bench "${C_ARGS[@]}" stages --bytes 1GiB
