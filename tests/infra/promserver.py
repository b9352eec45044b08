"""The infra files as Prometheus sees them: their queries, and a real Prometheus to run them.

`Prometheus` runs Debian's `prometheus` binary on loopback with a scrape configuration made
from infra/prometheus/prometheus.yml itself (same jobs, paths and rule files; only the targets
and intervals changed), so what is checked is what an operator deploys.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.support.served import free_port
from tests.support.servers import IN_CI

INFRA = ROOT / "infra"
PROMETHEUS_CONFIG = INFRA / "prometheus" / "prometheus.yml"
ALERT_RULES = INFRA / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((INFRA / "grafana" / "dashboards").glob("*.json"))
# What Grafana puts in place of its variables, for a dashboard showing the last hour or so.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
METRIC_NAME = re.compile(r"\bvoxflow_[a-z0-9_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")


def require_tool(name: str) -> str:
    """The tool's path; a failure under CI (the Makefile installs it), else a skip."""
    found = shutil.which(name)
    if found is None:
        message = f"`{name}` is not installed (`make test` installs Debian's prometheus package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard panel or an alert rule, and where it is."""

    where: str
    expr: str

    @property
    def promql(self) -> str:
        """The expression with Grafana's variables replaced, as Grafana would send it."""
        expr = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        return expr


def load_dashboard(path: Path) -> dict[str, Any]:
    """A dashboard's JSON."""
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries something (rows excluded, nested rows' panels included)."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def panel_queries() -> list[Query]:
    """Every target expression of every dashboard panel."""
    return [
        Query(f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"])
        for path in DASHBOARDS
        for panel in panels(load_dashboard(path))
        for target in panel["targets"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_queries() -> list[Query]:
    """Every alert rule's expression."""
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def metric_names(text: str) -> set[str]:
    """Every voxflow_* name mentioned in a text."""
    return set(METRIC_NAME.findall(text))


def family(name: str, known: set[str]) -> str:
    """The metric family of a series name (`x_bucket`, `x_count`, `x_sum` of a histogram: `x`)."""
    base = HISTOGRAM_SERIES.sub("", name)
    return base if f"{base}_bucket" in known else name


def scrape_config(metrics_urls: dict[str, str], rule_files: list[Path]) -> dict[str, Any]:
    """infra's prometheus.yml pointed at a running stack: 1 s scrapes, static targets."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    intervals = ("scrape_interval", "scrape_timeout", "evaluation_interval")
    config["global"] |= dict.fromkeys(intervals, "1s")
    config["rule_files"] = [str(path) for path in rule_files]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = {name.replace("-", "_"): name for name in jobs}
    assert set(services) == set(metrics_urls), "prometheus.yml must scrape every service"
    for service, url in metrics_urls.items():
        job = jobs[services[service]]
        parts = urlsplit(url)
        assert job.get("metrics_path", "/metrics") == parts.path, (job, url)
        job.pop("dns_sd_configs")
        job["static_configs"] = [{"targets": [parts.netloc]}]
    return config


class Prometheus:
    """A prometheus process on loopback, with its own storage, and its HTTP API."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = [
            require_tool("prometheus"), f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out)
        self.wait_for(self._ready, "Prometheus to be ready", timeout=30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_for(self, check: Any, what: str, timeout: float = 60) -> None:
        """Poll `check()` until it is true."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer (fails on an error)."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (asserts the query is valid and returns a vector)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        assert response.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", (expr, body["data"]["resultType"])
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float:
        """The value of a query returning one sample (NaN when it returns none)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else math.nan

    def names(self) -> set[str]:
        """Every metric name Prometheus holds."""
        return set(self.api("label/__name__/values"))

    def wait_for_scrape(self) -> None:
        """Wait until every target has been scraped again, by a scrape begun after this call.

        A counter that is created and incremented between two scrapes first appears with its
        final value, and `rate()` sees no increase. Waiting between jobs makes each job's
        counter changes straddle a scrape, as they do in a steady production stream.
        """
        called = time.time()

        def scraped() -> bool:
            active = self.api("targets", state="active")["activeTargets"]
            return all(
                datetime.fromisoformat(target["lastScrape"]).timestamp() > called
                for target in active
            )

        self.wait_for(scraped, "a scrape of every target", timeout=30)

    def targets_up(self) -> dict[str, str]:
        """Health of every active target, by job."""
        active = self.api("targets", state="active")["activeTargets"]
        return {target["labels"]["job"]: target["health"] for target in active}
