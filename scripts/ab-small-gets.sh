#!/usr/bin/env bash
# Interleaved A/B of two builds (or two settings) of the whole cluster on the
# #14 cases, every GET verified, a fresh release `cairn dev` cluster per run,
# ABBA order so the VM's drift cancels. Besides ops/s and p99 it reports the
# CPU each process group spent per operation (utime + stime from
# /proc/<pid>/stat around each case): gateway, the 12 nodes together, the
# metadata replicas together, and what the block device under the cluster saw
# per operation (cache flushes and MiB written, from /sys/class/block/<dev>/stat:
# every fsync that reaches the disk is a flush).
#
#   scripts/ab-small-gets.sh BEFORE_BIN_DIR AFTER_BIN_DIR [rounds] [seconds]
#
# Environment:
#   CASES        space-separated op:size:concurrency (default
#                "get:4KiB:32 get:1MiB:16"; ops: get, put)
#   BEFORE_ARGS  extra `cairn dev` flags for the before side (e.g.
#   AFTER_ARGS   "--inline-max 0"), to compare settings of one build
#   OBJECTS      distinct objects per case (default 500; GET cases store
#                them all first: use 2-4 for 1 GiB objects). For 1 GiB
#                objects the CPU-ms per operation is the CPU-ms per GiB.
#   FRESH_FS     a size (e.g. 16G): each run's cluster gets a new journal-less
#                ext4 file system of that size on a loop device (root only).
#                Why: on journal-less ext4 (this VM's root) every file created
#                in the minutes after a big delete pays for the freed inodes,
#                so without it each run pays for the one before's cleanup and
#                the nodes' CPU drifts up run after run (2.9 -> 5.7 ms per
#                1 MiB PUT in one A/B). Removing the image frees one inode.
set -u
BEFORE=$1 AFTER=$2 ROUNDS=${3:-2} SECS=${4:-15}
CASES=${CASES:-"get:4KiB:32 get:1MiB:16"}
BEFORE_ARGS=${BEFORE_ARGS:-} AFTER_ARGS=${AFTER_ARGS:-}

cpu_ticks() { # cluster.json -> "gateway nodes meta" clock ticks so far
  python3 - "$1" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
def ticks(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0
print(ticks(info["gateway"]["pid"]),
      sum(ticks(n["pid"]) for n in info["nodes"]),
      sum(ticks(m["pid"]) for m in info["metadata"]))
EOF
}

disk_stat() { # dir -> "flushes sectors_written" of the block device under dir
  local src
  src=$(findmnt -no SOURCE --target "$1" 2>/dev/null)
  src=${src#/dev/}
  src=/sys/class/block/${src%%[[]*}/stat
  if [[ -r $src ]]; then awk '{print $16, $7}' "$src"; else echo "0 0"; fi
}

if [[ -n ${FRESH_FS:-} && $(id -u) != 0 ]]; then
  echo "FRESH_FS needs root (losetup, mount)" >&2
  exit 2
fi
FS_STATE= DEV_PID=
# An interrupted run stops its cluster and leaves no mounted image behind.
on_exit() {
  [[ -n $DEV_PID ]] && kill -INT "$DEV_PID" 2>/dev/null && wait "$DEV_PID" 2>/dev/null
  [[ -n $FS_STATE ]] && unmount_fs
}
trap on_exit EXIT

fresh_fs() { # sets FS_DIR on a new file system; unmount_fs undoes it
  local image mnt dev
  image=$(mktemp -p "${TMPDIR:-/tmp}" ab-fs.XXXXXX) mnt=$(mktemp -d)
  truncate -s "$FRESH_FS" "$image"
  mkfs.ext4 -q -F -O ^has_journal "$image"
  dev=$(losetup --direct-io=on -f --show "$image")
  mount "$dev" "$mnt"
  FS_STATE="$image $mnt $dev" FS_DIR="$mnt/cluster"
  mkdir -p "$FS_DIR"
}
unmount_fs() {
  local image mnt dev
  read -r image mnt dev <<<"$FS_STATE"
  umount "$mnt" && losetup -d "$dev" && rm -f "$image" && rmdir "$mnt"
  FS_STATE=
}

run() { # bin-dir label port extra-args
  local dir
  if [[ -n ${FRESH_FS:-} ]]; then fresh_fs; dir=$FS_DIR; else dir=$(mktemp -d); fi
  # shellcheck disable=SC2086
  "$1/cairn" dev --data-dir "$dir" --port "$3" --bin-dir "$1" $4 >"$dir.log" 2>&1 &
  local dev=$!; DEV_PID=$dev
  for _ in $(seq 1 300); do [[ -f $dir/cluster.json ]] && break; sleep 0.1; done
  local line="$2:"
  for case in $CASES; do
    IFS=: read -r op size conc <<<"$case"
    local before after result disk_before disk_after
    before=$(cpu_ticks "$dir/cluster.json") disk_before=$(disk_stat "$dir")
    result=$("$1/cairn" --cluster-file "$dir/cluster.json" bench --op "$op" --size "$size" \
      --concurrency "$conc" --objects "${OBJECTS:-500}" --duration "${SECS}s" --bucket "ab-$op-${size,,}" --json)
    after=$(cpu_ticks "$dir/cluster.json") disk_after=$(disk_stat "$dir")
    line+=$(python3 - "$op" "$before" "$after" "$result" "$disk_before" "$disk_after" <<'EOF'
import json, os, sys
op, before, after, result = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), json.loads(sys.argv[4])
disk = [int(a) - int(b) for a, b in zip(sys.argv[6].split(), sys.argv[5].split())]
s = dict(result["by_op"])[op]
tick = os.sysconf("SC_CLK_TCK")
ops = max(s["ops"], 1)
cpu = [(int(a) - int(b)) / tick * 1000 / ops for a, b in zip(after, before)]
print(f" | {op} {s['ops_per_sec']:.1f} ops/s p99 {s['latency_ms']['p99']:.1f} ms err {s['errors']}"
      f" cpu-ms/op gw {cpu[0]:.2f} nodes {cpu[1]:.2f} meta {cpu[2]:.2f}"
      f" disk/op flushes {disk[0] / ops:.1f} MiB {disk[1] * 512 / 2**20 / ops:.2f}")
EOF
)
    line+=" [$case]"
  done
  echo "$line"
  kill -INT $dev; wait $dev 2>/dev/null; DEV_PID=
  if [[ -n ${FRESH_FS:-} ]]; then rm -f "$dir.log"; unmount_fs; else rm -rf "$dir" "$dir.log"; fi
}
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then
    run "$BEFORE" before 19900 "$BEFORE_ARGS"; run "$AFTER" after 19910 "$AFTER_ARGS"
  else
    run "$AFTER" after 19910 "$AFTER_ARGS"; run "$BEFORE" before 19900 "$BEFORE_ARGS"
  fi
done
