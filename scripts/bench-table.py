#!/usr/bin/env python3
"""Print criterion results (target/criterion) as a Markdown table.

For each coding case, Cairn's throughput is shown next to the raw crate's and
their ratio, which must stay at or above 0.9. Usage: scripts/bench-table.py
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def throughput(group, *parts):
    path = root.joinpath(group, *parts, "new")
    try:
        bench = json.loads((path / "benchmark.json").read_text())
        est = json.loads((path / "estimates.json").read_text())
    except FileNotFoundError:
        return None
    nanos = est["median"]["point_estimate"]
    tp = bench.get("throughput") or {}
    if "Bytes" in tp:
        return tp["Bytes"] / nanos  # bytes per ns == GB/s
    if "Elements" in tp:
        return tp["Elements"] / nanos * 1e3  # millions of leaves per second
    return None


print("| stage | case | Cairn GB/s | crate GB/s | Cairn / crate |")
print("| --- | --- | ---: | ---: | ---: |")
for group in ["encode", "rebuild1", "rebuild2"]:
    cases = sorted(p.name for p in (root / group / "cairn").glob("*") if p.is_dir() and p.name != "report")
    for case in sorted(cases, key=lambda c: (c.split("_")[0], int(c.split("_")[1].rstrip("KiB")))):
        ours = throughput(group, "cairn", case)
        theirs = throughput(group, "crate", case)
        if ours and theirs:
            name = case.replace("_", "/", 1)
            print(f"| {group} | {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |")

print()
print("| stage | case | throughput |")
print("| --- | --- | ---: |")
for group, unit in [("blake3", "GB/s"), ("md5", "GB/s"), ("memcpy", "GB/s"), ("merkle", "M leaves/s")]:
    for case in sorted(p.name for p in (root / group).glob("*") if p.is_dir() and p.name != "report"):
        value = throughput(group, case)
        if value:
            print(f"| {group} | {case} | {value:.2f} {unit} |")
