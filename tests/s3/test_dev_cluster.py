"""`cairn dev` as a user starts it: the ports it owns, and how the CLI shows
durations."""

import socket
import subprocess

from conftest import BIN_DIR, Cluster


def ephemeral_range():
    low, high = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
    return int(low), int(high)


def free_run(start, length=4):
    """The first P >= start with P..P+length-1 all free right now."""
    port = start
    while True:
        sockets = []
        try:
            for p in range(port, port + length):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                sockets.append(s)
            return port
        except OSError:
            port += length
        finally:
            for s in sockets:
                s.close()


def test_several_clusters_start_at_once_on_ports_in_the_ephemeral_range(tmp_path):
    """Storage nodes take OS-chosen ports from the ephemeral range; before
    `cairn dev` bound its fixed ports first, a node of this or another
    cluster could take --port + 1..5 and the service meant for it died at
    start-up. Three clusters start together, every fixed port inside the
    ephemeral range: every start succeeds, on exactly the ports asked for."""
    low, high = ephemeral_range()
    ports, start = [], low + (high - low) // 3
    for _ in range(3):
        port = free_run(start, 6)
        ports.append(port)
        start = port + 6
    clusters = [Cluster(tmp_path / f"data{i}", port=p, wait=False) for i, p in enumerate(ports)]
    try:
        for cluster, port in zip(clusters, ports):
            cluster.wait_started()
            assert cluster.info["s3_endpoint"] == f"http://127.0.0.1:{port}"
            assert cluster.info["gateway_admin_endpoint"] == f"http://127.0.0.1:{port + 1}"
            # Three metadata replicas: port + 2, port + 4, port + 5.
            assert cluster.info["admin_endpoint"] == ",".join(
                f"http://127.0.0.1:{port + offset}" for offset in (2, 4, 5)
            )
            assert cluster.info["scrubber_endpoint"] == f"http://127.0.0.1:{port + 3}"
        for i, cluster in enumerate(clusters):
            s3 = cluster.client()
            s3.create_bucket(Bucket=f"ports-{i}")
            s3.put_object(Bucket=f"ports-{i}", Key="k", Body=b"cluster %d" % i)
            assert s3.get_object(Bucket=f"ports-{i}", Key="k")["Body"].read() == b"cluster %d" % i
    finally:
        codes = [c.stop() for c in clusters]
    assert codes == [0, 0, 0], [c.output() for c in clusters]


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    port = free_run(20000)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port + 3))
    squatter.listen()
    try:
        data = tmp_path / "data"
        result = subprocess.run(
            [str(BIN_DIR / "cairn"), "dev", "--data-dir", str(data), "--port", str(port),
             "--bin-dir", str(BIN_DIR)],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        squatter.close()
    assert result.returncode != 0
    assert f"127.0.0.1:{port + 3}" in result.stderr, result.stderr
    assert "the scrubber" in result.stderr and "--port" in result.stderr, result.stderr
    # Nothing was started: no process logged, no cluster file.
    assert not any((data / "logs").glob("*.log")), list((data / "logs").iterdir())
    assert not (data / "cluster.json").exists()


def test_durations_are_shown_the_way_they_are_typed(cluster):
    for typed, shown in [("6h", "6h"), ("1d 2h", "1d 2h"), ("90m", "1h 30m")]:
        out = cluster.cairn("scrub", "schedule", "--every", typed, "--bucket", "no-such-bucket")
        assert f"every {shown} " in out, out
        job = int(out.split()[2])
        jobs = cluster.cairn("scrub", "jobs")
        row = next(line for line in jobs.splitlines() if line.split()[:1] == [str(job)])
        assert f" {shown} " in f" {row} ", jobs
        shown_job = cluster.cairn("scrub", "show", str(job))
        assert f"every {shown}" in shown_job, shown_job
        cluster.cairn("scrub", "cancel", str(job))
    bad = subprocess.run(
        [str(BIN_DIR / "cairn"), "--cluster-file", str(cluster.data_dir / "cluster.json"),
         "scrub", "schedule", "--every", "6 parsecs"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode != 0 and "invalid duration" in bad.stderr, bad.stderr
