"""The alerting rules (configs/prometheus/alerts.yml) and the Grafana
dashboard (configs/grafana/cairn-dashboard.json) name only metrics that the
services really export: every `cairn_*` name in them is found on the
/metrics of a running cluster's gateway, nodes, metadata replicas and
scrubber."""

import json
import re
import urllib.request

from conftest import REPO

CONFIGS = REPO / "configs"
SUFFIXES = ("_bucket", "_sum", "_count")


def exported(cluster):
    secret = cluster.info["cluster_secret"]
    urls = [cluster.info["gateway_admin_endpoint"], cluster.info["scrubber_endpoint"],
            cluster.info["nodes"][0]["address"], *cluster.info["admin_endpoint"].split(",")]
    names = set()
    for url in urls:
        request = urllib.request.Request(f"{url}/metrics", headers={"x-cairn-secret": secret})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
                names.add(name)
                for suffix in SUFFIXES:
                    if name.endswith(suffix):
                        names.add(name[: -len(suffix)])
    return names


def used(text):
    return set(re.findall(r"\bcairn_[a-z0-9_]+", text))


def test_alerts_and_dashboard_use_only_exported_metrics(cluster, s3, bucket):
    # Some traffic, so that labelled series exist.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 300_000)
    s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    names = exported(cluster)
    alerts = (CONFIGS / "prometheus" / "alerts.yml").read_text()
    dashboard = json.loads((CONFIGS / "grafana" / "cairn-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    in_alerts, in_dashboard = used(alerts), used(exprs)
    assert len(in_alerts) >= 8 and len(in_dashboard) >= 15
    missing = {n for n in in_alerts | in_dashboard if n not in names and n.rstrip("_") not in names}
    assert not missing, f"not exported by any service: {sorted(missing)}"
    # The rules file has the shape Prometheus loads: one group, each rule an
    # alert with an expression.
    assert alerts.count("- alert: ") == alerts.count("expr: ") >= 8
    for required in ("CairnNodeDown", "CairnBlobsAtRisk", "CairnRepairBacklogGrowing",
                     "CairnScrubFoundCorruption", "CairnDiskNearlyFull"):
        assert f"- alert: {required}" in alerts
