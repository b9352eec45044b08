"""The workers' autoscaling: KEDA counts waiting *and* running jobs.

A Redis list holds only the messages no worker has taken (kombu moves a delivered message
to its `unacked` hash), so a ScaledObject on the list length alone scales workers down
while they are in the middle of a job (kedacore/keda #157). Voxflow's ScaledObjects ask
PostgreSQL, the source of truth, instead: jobs waiting for the stage plus the workers busy
with it, and for the webhook sender, the deliveries that are due. These tests run each
overlay's queries against the test database with jobs and deliveries in every state, and
check the triggers' wiring (docs/deployment.md, "Autoscaling the workers").
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, text, update
from sqlalchemy.orm import Session

from tests.deploy import kube
from tests.deploy.dockerfile import option
from tests.support.jobs import LEASE, new_job, transcript_for
from voxflow.jobs import service
from voxflow.jobs.states import JobStatus
from voxflow.jobs.webhook_events import EVENTS
from voxflow.webhooks import repository as deliveries
from voxflow.webhooks.models import WebhookDelivery

WORKERS = ("transcription-worker", "llm-worker", "webhook-sender")
# Trigger metadata and authentication parameters KEDA's postgresql scaler reads
# (pkg/scalers/postgresql_scaler.go: `keda:"name=..."` tags, plus the *FromEnv forms).
POSTGRESQL_METADATA = {
    "query", "targetQueryValue", "activationTargetQueryValue", "host", "port", "userName",
    "dbName", "sslmode", "connectionFromEnv", "passwordFromEnv",
}  # fmt: skip
POSTGRESQL_AUTH = {"connection", "password", "host", "port", "userName", "dbName", "sslmode"}
HOOK_URL = "https://hooks.example.test/voxflow"  # never called: nothing delivers here


@pytest.fixture(params=kube.overlays(), name="manifests")
def _manifests(request: pytest.FixtureRequest) -> list[kube.Manifest]:
    return kube.render(str(request.param))


def triggers(manifests: list[kube.Manifest], worker: str) -> list[dict[str, Any]]:
    """The triggers of a worker's ScaledObject."""
    scaled = kube.of_kind(manifests, "ScaledObject")[worker]
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker
    found = scaled["spec"]["triggers"]
    assert isinstance(found, list)
    return found


def query(manifests: list[kube.Manifest], worker: str) -> str:
    """The SQL a worker's ScaledObject polls."""
    (trigger,) = [t for t in triggers(manifests, worker) if t["type"] == "postgresql"]
    return str(trigger["metadata"]["query"])


def test_workers_scale_on_the_job_table_not_the_list_length(
    manifests: list[kube.Manifest],
) -> None:
    for worker in WORKERS:
        found = triggers(manifests, worker)
        assert [t["type"] for t in found] == ["postgresql"], worker
        (trigger,) = found
        assert set(trigger["metadata"]) <= POSTGRESQL_METADATA
        assert float(trigger["metadata"]["targetQueryValue"]) > 0
        assert float(trigger["metadata"]["activationTargetQueryValue"]) == 0, "wake on one job"
        assert trigger.get("metricType", "AverageValue") == "AverageValue", "per-pod target"


def test_one_pod_per_worker_process(manifests: list[kube.Manifest]) -> None:
    # AverageValue target = jobs one pod runs at once = its Celery concurrency.
    deployments = kube.of_kind(manifests, "Deployment")
    for worker in WORKERS:
        (trigger,) = triggers(manifests, worker)
        (container,) = kube.containers(deployments[worker])
        concurrency = option(container["command"], "-c", "--concurrency")
        assert float(trigger["metadata"]["targetQueryValue"]) == float(concurrency), worker


def test_keda_authenticates_with_the_services_database_url(manifests: list[kube.Manifest]) -> None:
    auths = kube.of_kind(manifests, "TriggerAuthentication")
    for worker in WORKERS:
        (trigger,) = triggers(manifests, worker)
        auth = auths[trigger["authenticationRef"]["name"]]
        refs = auth["spec"]["secretTargetRef"]
        assert {r["parameter"] for r in refs} <= POSTGRESQL_AUTH
        (connection,) = [r for r in refs if r["parameter"] == "connection"]
        deployment = kube.of_kind(manifests, "Deployment")[worker]
        secrets = {s["secretRef"]["name"] for c in kube.containers(deployment)
                   for s in c["envFrom"] if "secretRef" in s}  # fmt: skip
        assert connection["name"] in secrets, "the same Secret the worker reads"
        assert connection["key"] == "VOXFLOW_DATABASE_URL"
    for secret in kube.of_kind(manifests, "Secret").values():
        encoded = (secret.get("data") or {}).get("VOXFLOW_DATABASE_URL")
        if encoded:
            url = base64.b64decode(encoded).decode()
            assert url.startswith("postgresql://"), "pgx (KEDA) reads only postgresql:// URLs"


def test_fallback_holds_workers_when_the_query_fails(manifests: list[kube.Manifest]) -> None:
    for worker in WORKERS:
        spec = kube.of_kind(manifests, "ScaledObject")[worker]["spec"]
        assert spec["fallback"]["replicas"] >= 1
        assert spec["fallback"]["failureThreshold"] >= 3
        policies = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert policies["stabilizationWindowSeconds"] >= 300, "no flapping between jobs"


def count(session: Session, sql: str) -> float:
    """What KEDA would read: the query's single value."""
    return float(session.execute(text(sql)).scalar_one())


def test_transcription_query_counts_waiting_jobs_and_busy_workers(
    manifests: list[kube.Manifest], db_session: Session, tenant: str
) -> None:
    sql = query(manifests, "transcription-worker")
    before = count(db_session, sql)
    jobs = [new_job(db_session, tenant) for _ in range(5)]
    db_session.flush()
    assert count(db_session, sql) == before + 5, "five jobs wait"
    # Worker A takes two short jobs in one micro-batch (one lease owner), worker B one.
    # Owner names of this test alone: committed rows of other tests may hold any other.
    worker_a, worker_b = (f"worker-{name}-{uuid.uuid4().hex[:8]}" for name in "ab")
    for job_id, owner in zip(jobs[:3], [worker_a, worker_a, worker_b], strict=True):
        assert service.claim(db_session, job_id, JobStatus.QUEUED, owner, LEASE) is not None
    db_session.flush()
    # Two wait and two workers are busy: four pods wanted, not two (the list's length).
    assert count(db_session, sql) == before + 4
    service.finish_transcription(db_session, jobs[2], worker_b, transcript_for(jobs[2]))
    db_session.flush()
    assert count(db_session, sql) == before + 3, "worker B is free again"


def test_llm_query_counts_waiting_and_running_notes(
    manifests: list[kube.Manifest], db_session: Session, tenant: str
) -> None:
    sql = query(manifests, "llm-worker")
    before = count(db_session, sql)
    jobs: list[uuid.UUID] = []
    for index in range(3):
        job_id = new_job(db_session, tenant, tasks=["summary"])
        owner = f"transcriber-{index}"
        assert service.claim(db_session, job_id, JobStatus.QUEUED, owner, LEASE) is not None
        service.finish_transcription(db_session, job_id, owner, transcript_for(job_id))
        jobs.append(job_id)
    db_session.flush()
    assert count(db_session, sql) == before + 3, "three jobs wait for notes"
    assert service.claim(db_session, jobs[0], JobStatus.TRANSCRIBED, "llm-a", LEASE) is not None
    db_session.flush()
    assert count(db_session, sql) == before + 3, "a note being written still needs its worker"


def set_aside_pending_deliveries(session: Session) -> None:
    """Mark the deliveries other tests left pending as delivered, in this test's transaction.

    It is rolled back after the test; meanwhile now() stands still, so "due" is stable.
    """
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == deliveries.PENDING)
        .values(status=deliveries.DELIVERED, next_attempt_at=None)
    )


def due_deliveries(session: Session, tenant: str, count: int) -> list[uuid.UUID]:
    """`count` new pending deliveries, due now (on queued jobs, which the LLM query ignores)."""
    found: list[uuid.UUID] = []
    while len(found) < count:
        job_id = new_job(session, tenant, webhook_url=HOOK_URL)
        for event in EVENTS[: count - len(found)]:
            delivery_id = deliveries.add_delivery(session, job_id, event, HOOK_URL)
            assert delivery_id is not None
            found.append(delivery_id)
    session.flush()
    return found


def test_webhook_sender_query_counts_deliveries_that_are_due(
    manifests: list[kube.Manifest], db_session: Session, tenant: str
) -> None:
    sql = query(manifests, "webhook-sender")
    llm_sql = query(manifests, "llm-worker")
    set_aside_pending_deliveries(db_session)
    before, llm_before = count(db_session, sql), count(db_session, llm_sql)
    found = due_deliveries(db_session, tenant, 5)
    assert count(db_session, sql) == before + 5, "five deliveries wait for a worker"
    assert count(db_session, llm_sql) == llm_before, "the LLM worker sends no webhooks"
    claimed = [deliveries.claim(db_session, d, LEASE) for d in found[:4]]
    assert all(claimed)
    db_session.flush()
    # Being attempted: the claim moved next_attempt_at a lease ahead, so it no longer waits
    # for a worker (if its worker dies, it falls due again when the lease ends).
    assert count(db_session, sql) == before + 1
    retry, delivered, failed, _attempting = found[:4]
    deliveries.schedule_retry(db_session, retry, 1, status_code=503, error="HTTP 503",
                              delay=timedelta(minutes=1), window=timedelta(days=1))  # fmt: skip
    deliveries.mark_delivered(db_session, delivered, 1, 200)
    deliveries.mark_failed(db_session, failed, 1, 410, "HTTP 410")
    db_session.flush()
    assert count(db_session, sql) == before + 1, "a retry not yet due, settled ones: none"
    db_session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == retry)
        .values(next_attempt_at=func.now() - timedelta(seconds=1))
    )
    db_session.flush()
    assert count(db_session, sql) == before + 2, "the retry has fallen due"


def test_webhook_sender_query_stops_counting_where_more_would_not_add_a_pod(
    manifests: list[kube.Manifest], db_session: Session, tenant: str
) -> None:
    sql = query(manifests, "webhook-sender")
    spec = kube.of_kind(manifests, "ScaledObject")["webhook-sender"]["spec"]
    (trigger,) = triggers(manifests, "webhook-sender")
    wanted = spec["maxReplicaCount"] * float(trigger["metadata"]["targetQueryValue"])
    limit = re.search(r"\bLIMIT (\d+)\b", sql)
    assert limit, "a backlog of deliveries is counted up to a cap, not scanned whole"
    cap = int(limit.group(1))
    assert cap >= wanted, f"deliveries counted up to {cap}: too few to reach {wanted:g} jobs"
    set_aside_pending_deliveries(db_session)
    before = count(db_session, sql)
    due_deliveries(db_session, tenant, cap + 5)
    assert count(db_session, sql) == before + cap
