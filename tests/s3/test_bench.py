"""`cairn bench` against a `cairn dev` cluster: every workload runs, reads
are verified (no errors, no bad data), and the JSON report is complete.
These are smoke runs of the tool, not measurements (see BENCHMARKS.md)."""

import pytest


@pytest.mark.parametrize("op", ["put", "get", "mixed", "list", "delete"])
def test_every_workload_runs_clean(cluster, op):
    report = cluster.cairn("bench", "--op", op, "--size", "64KiB", "--concurrency", "4",
                           "--duration", "1s", "--objects", "8", "--bucket", f"bench-{op}", "--json")
    total = report["total"]
    assert total["ops"] > 0 and total["errors"] == 0 and total["verify_failures"] == 0, report
    latency = total["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p999"] <= latency["max"]
    if op in ("put", "get"):
        assert total["mb_per_sec"] > 0


def test_repair_benchmark_reports_read_amplification_k(make_cluster):
    cluster = make_cluster("--repair-after", "1s")
    report = cluster.cairn("bench", "repair", "--fill", "16MiB", "--object-size", "2MiB",
                           "--baseline", "1s", "--node", "node-06", "--json")
    assert report["chunks_repaired"] == 8 and report["get_errors"] == 0, report
    assert abs(report["read_amplification"] - 8.0) < 0.01, report
    assert report["rebuild_mb_per_sec"] > 0
