"""Every dashboard panel and alert rule, run by a real Prometheus scraping a real stack.

`voxflow run` starts the platform; a Prometheus process scrapes it with infra's own
prometheus.yml (targets and intervals changed) and alerts.yml. The jobs below make every
series the infra uses exist, each through the code path that records it in production:

- A: notes (`summary`) from a priced OpenAI deployment (a loopback vendor server): LLM calls,
  tokens, cost, latency, a breaker that was consulted; its webhook is delivered (2xx).
- C: the same summary again (a cache hit) plus a `diary` (a second priced call).
- B: a `custom` note the vendor refuses with an auth error: the job fails (`llm_auth`); its
  webhook's receiver answers 410 Gone, so the delivery fails at once.
- D: a transcription-only job whose queue message is lost: the sweeper publishes it again
  (`message_lost`) and it completes.

Nothing is excepted: every panel must return at least one number, every metric name the
dashboards or rules mention must be in Prometheus, and every metric the stack exports must
be on a dashboard. Panels written `x or 0 * y` return 0 where 0 is the true answer (no 5xx,
no failed LLM call): that is the query's design, not a test allowance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.infra.promserver import (
    ALERT_RULES,
    DASHBOARDS,
    Prometheus,
    alert_queries,
    alert_rules,
    family,
    metric_names,
    panel_queries,
    require_tool,
    scrape_config,
)
from tests.support.llm_vendors import VendorServer, auth_error
from tests.support.servers import Servers, scratch_database
from tests.support.stackrun import VENDOR_KEY, RunningStack, stack_env
from tests.support.webhook_receiver import Receiver, Reply, receiving
from voxflow.embedded import redis_client_url

pytestmark = pytest.mark.e2e

SERVICES = (
    "ingest-api", "status-api", "transcription-worker", "llm-worker", "webhook-sender", "sweeper",
)  # fmt: skip


@dataclass
class Observed:
    """The stack's jobs as the status API reports them, and Prometheus after scraping them."""

    prometheus: Prometheus
    jobs: dict[str, dict[str, Any]]
    results: dict[str, dict[str, Any]]


def run_jobs(
    stack: RunningStack, vendors: VendorServer, hooks: Receiver, gone: Receiver, prom: Prometheus
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Jobs A, C, B and D of the module docstring, one after the other; final states, results.

    Prometheus scrapes the stack between jobs, so a job's counters move between two scrapes
    and `rate()` sees them (a series born between scrapes shows no increase until it moves).
    """
    jobs: dict[str, Any] = {}
    jobs["A"] = stack.wait(stack.submit(["summary"], webhook_url=hooks.url()))
    prom.wait_for_scrape()
    jobs["C"] = stack.wait(stack.submit(["summary", "diary"]))
    prom.wait_for_scrape()
    vendors.enqueue("openai", auth_error())
    jobs["B"] = stack.wait(
        stack.submit(["custom"], webhook_url=gone.url(), instruction="List the names.")
    )
    prom.wait_for_scrape()
    jobs["D"] = stack.wait(stack.submit_with_lost_message())
    results = {name: stack.get(f"/v1/jobs/{job['id']}/results") for name, job in jobs.items()
               if job["status"] == "completed"}  # fmt: skip
    return jobs, results


@pytest.fixture(scope="module")
def observed(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """The stack after its jobs, and a Prometheus that has scraped it several times since."""
    require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("infra")
    with (
        closing(redis.Redis.from_url(redis_client_url(servers.redis_url))) as broker,
        scratch_database(servers.postgres_admin_url) as database,
        VendorServer(api_key=VENDOR_KEY) as vendors,
        receiving() as hooks,
        receiving(then=Reply(410)) as gone,
        RunningStack(workdir, stack_env(database, vendors.url("openai"), workdir), broker) as stack,
        Prometheus(scrape_config(stack.stack.metrics_urls, [ALERT_RULES]), workdir) as prom,
    ):
        prom.wait_for(
            lambda: set(prom.targets_up().values()) == {"up"}, "every target up", timeout=120
        )
        started = time.monotonic()
        jobs, results = run_jobs(stack, vendors, hooks, gone, prom)
        # Prometheus has seen the last job's counters and both webhooks settled, then a few
        # more scrapes and evaluations.
        counted = (
            "sum(voxflow_jobs_completed_total) == 3 and sum(voxflow_jobs_failed_total) == 1"
            " and sum(voxflow_webhook_deliveries_total) == 2"
        )
        prom.wait_for(lambda: bool(prom.query(counted)), "Prometheus to count the jobs")
        time.sleep(3)
        print(f"jobs and scrapes took {time.monotonic() - started:.0f}s")
        yield Observed(prom, jobs, results)


def test_the_jobs_went_through_the_paths_the_metrics_record(observed: Observed) -> None:
    jobs, results = observed.jobs, observed.results
    assert {name: job["status"] for name, job in jobs.items()} == {
        "A": "completed", "C": "completed", "B": "failed", "D": "completed"
    }  # fmt: skip
    assert jobs["B"]["error"]["code"] == "llm_auth"
    calls = {(c["task"], c["outcome"]) for c in results["C"]["calls"]}
    assert calls == {("summary", "cached"), ("diary", "ok")}
    assert results["A"]["totals"]["cost_usd"] > 0
    assert all(r["provider"] == "openai" for r in results["A"]["results"])


def test_prometheus_scrapes_every_service_with_the_infra_config(observed: Observed) -> None:
    health = observed.prometheus.targets_up()
    assert health == dict.fromkeys(SERVICES, "up")
    # What the stack did, as Prometheus counted it.
    prom = observed.prometheus
    assert prom.scalar("sum(voxflow_jobs_created_total)") == 4
    assert prom.scalar('sum(voxflow_jobs_failed_total{reason="llm_auth"})') == 1
    assert prom.scalar("sum(voxflow_llm_cache_hits_total)") == 1
    assert prom.scalar('sum(voxflow_sweeper_requeued_total{reason="message_lost"})') >= 1
    deliveries = 'sum(voxflow_webhook_deliveries_total{{event="{}", outcome="{}"}})'
    assert prom.scalar(deliveries.format("job.completed", "delivered")) == 1
    assert prom.scalar(deliveries.format("job.failed", "failed")) == 1
    assert prom.scalar('sum(voxflow_webhook_attempts_total{result="ok"})') == 1
    assert prom.scalar('sum(voxflow_webhook_attempts_total{result="gone"})') == 1


def test_every_alert_rule_is_valid_and_prometheus_evaluates_it(observed: Observed) -> None:
    prom = observed.prometheus
    for query in alert_queries():
        prom.query(query.promql)  # asserts a valid instant vector query
    expected = {rule["alert"] for rule in alert_rules()}

    def evaluated() -> bool:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        return {r["name"] for r in rules} == expected and all(
            r["health"] == "ok" and not r["lastEvaluation"].startswith("0001") for r in rules
        )

    prom.wait_for(evaluated, "every rule of alerts.yml evaluated without error", timeout=20)


def test_every_dashboard_panel_returns_data(observed: Observed) -> None:
    empty = []
    queries = panel_queries()
    assert len(queries) >= 30
    for query in queries:
        result = observed.prometheus.query(query.promql)
        numbers = [float(sample["value"][1]) for sample in result]
        if not any(math.isfinite(number) for number in numbers):
            empty.append(f"{query.where}: {numbers or 'no series'}\n    {query.promql}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def _referenced_names() -> set[str]:
    texts = [path.read_text() for path in [*DASHBOARDS, ALERT_RULES]]
    return set().union(*(metric_names(text) for text in texts))


def test_no_dashboard_or_rule_references_a_metric_nobody_exports(observed: Observed) -> None:
    exported = observed.prometheus.names()
    missing = sorted(_referenced_names() - exported)
    assert not missing, f"named by the infra but not exported by any service: {missing}"


def test_every_exported_metric_is_on_a_dashboard(observed: Observed) -> None:
    exported = {name for name in observed.prometheus.names() if name.startswith("voxflow_")}
    on_dashboards = set().union(*(metric_names(Path(p).read_text()) for p in DASHBOARDS))
    shown = {family(name, exported) for name in on_dashboards}
    unshown = sorted({family(name, exported) for name in exported} - shown)
    assert not unshown, f"exported but on no dashboard: {unshown}"
