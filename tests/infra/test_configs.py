"""The infra files are valid for the tools that load them and agree with each other.

Prometheus's own `promtool` checks the scrape config and the rules and runs the alerts' unit
tests (alerts_test.yml). The OpenTelemetry Collector and Grafana are not run here: their
files are checked for the structure those tools require and for consistency (the pipeline
names what is defined, dashboards use the provisioned datasource uids, the provider loads
the directory the dashboards are mounted at).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.infra.promserver import (
    ALERT_RULES,
    DASHBOARDS,
    INFRA,
    PROMETHEUS_CONFIG,
    alert_rules,
    load_dashboard,
    panel_queries,
    panels,
    require_tool,
)
from voxflow_cli.stack import Stack

GRAFANA = INFRA / "grafana"
# Where a compose file or a Kubernetes manifest mounts the Grafana files (docs/observability.md).
GRAFANA_MOUNTS = {
    "infra/grafana/provisioning": "/etc/grafana/provisioning",
    "infra/grafana/dashboards": "/var/lib/grafana/dashboards",
}
SERVICES = (
    "ingest-api", "status-api", "transcription-worker", "llm-worker", "webhook-sender", "sweeper",
)  # fmt: skip
PANEL_TYPES = {"timeseries", "stat", "table", "row"}
UP_JOBS = r'\bup\{job=~"([^"]+)"\}'  # `up` of the listed scrape jobs


def load(path: Path) -> Any:
    """A YAML file."""
    return yaml.safe_load(path.read_text())


def promtool(*args: str) -> None:
    """Run promtool; fail with its output when it does not succeed."""
    result = subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True,
                            timeout=60, check=False, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    promtool("check", "config", str(PROMETHEUS_CONFIG))
    promtool("check", "rules", str(ALERT_RULES))


def test_alerts_fire_as_their_unit_tests_describe() -> None:
    tests = Path(__file__).with_name("alerts_test.yml")
    covered = {case["alertname"] for test in load(tests)["tests"]
               for case in test["alert_rule_test"]}  # fmt: skip
    assert {rule["alert"] for rule in alert_rules()} <= covered
    promtool("test", "rules", str(tests))


def test_every_alert_says_how_bad_and_what_happened() -> None:
    for rule in alert_rules():
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = load(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == [ALERT_RULES.name]
    defaults = Stack(data_dir=Path())  # the APIs' ports; the images' metrics port is 9100
    ports = {"ingest-api": defaults.ingest_port, "status-api": defaults.status_port}
    found = {}
    for job in config["scrape_configs"]:
        [sd] = job["dns_sd_configs"]
        assert sd["names"] == [job["job_name"]]
        assert sd["type"] == "A"
        assert job.get("metrics_path", "/metrics") == "/metrics"
        found[job["job_name"]] = sd["port"]
    assert found == {name: ports.get(name, 9100) for name in SERVICES}
    for dockerfile in ROOT.glob("services/*/Dockerfile*"):
        if "VOXFLOW_METRICS_PORT" in (text := dockerfile.read_text()):
            assert "VOXFLOW_METRICS_PORT=9100" in text, dockerfile


def test_the_target_down_alert_covers_every_scrape_job() -> None:
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == "VoxflowTargetDown"]
    alerted = re.fullmatch(UP_JOBS + " == 0", rule["expr"].strip())
    assert alerted, rule["expr"]
    scraped = {job["job_name"] for job in load(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert set(alerted.group(1).split("|")) == scraped == set(SERVICES)
    shown = [set(jobs.split("|")) for query in panel_queries()
             for jobs in re.findall(UP_JOBS, query.expr)]  # fmt: skip
    assert shown, "a dashboard shows the targets that are up"
    assert all(jobs == scraped for jobs in shown), shown


def test_the_collector_takes_otlp_and_sends_it_to_jaeger() -> None:
    config = load(INFRA / "otel-collector" / "config.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    assert "check_interval" in config["processors"]["memory_limiter"]
    [(name, exporter)] = config["exporters"].items()
    assert name.split("/")[0] == "otlp"
    assert exporter == {"endpoint": "jaeger:4317", "tls": {"insecure": True}}
    service = config["service"]
    assert service["extensions"] == ["health_check"]
    assert "health_check" in config["extensions"]
    pipeline = service["pipelines"]["traces"]
    assert pipeline == {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"],
                        "exporters": [name]}  # fmt: skip
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind]), kind


def datasources() -> dict[str, dict[str, Any]]:
    """Provisioned datasources by uid."""
    found = load(GRAFANA / "provisioning" / "datasources" / "datasources.yml")
    assert found["apiVersion"] == 1
    return {source["uid"]: source for source in found["datasources"]}


def test_grafana_has_the_prometheus_and_jaeger_datasources() -> None:
    by_type = {source["type"]: source for source in datasources().values()}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["prometheus"]["isDefault"] is True
    # Grafana's $__rate_interval is computed from the scrape interval it is told.
    interval = load(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    assert by_type["prometheus"]["jsonData"]["timeInterval"] == interval
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"


def test_the_dashboard_provider_loads_where_the_dashboards_are_mounted() -> None:
    providers = load(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"] == GRAFANA_MOUNTS["infra/grafana/dashboards"]
    assert {path.parent for path in DASHBOARDS} == {GRAFANA / "dashboards"}
    docs = (ROOT / "docs" / "observability.md").read_text()
    for source, target in GRAFANA_MOUNTS.items():
        assert f"./{source}:{target}" in docs, "docs/observability.md must show the mounts"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboards_are_grafana_dashboards_on_the_provisioned_datasources(path: Path) -> None:
    board = load_dashboard(path)
    assert board["schemaVersion"] >= 36
    assert board["uid"]
    assert board["title"]
    sources = datasources()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(pos["x"] + x, pos["y"] + y) for x in range(pos["w"]) for y in range(pos["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in panels(board):
        assert panel["datasource"]["uid"] in sources, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            source = sources[target["datasource"]["uid"]]
            assert source["type"] == target["datasource"]["type"] == "prometheus"
            assert target["expr"].strip(), panel["title"]
