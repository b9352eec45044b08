"""The sweeper's scrape-time gauges against the real PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, update
from sqlalchemy.orm import Session

from sweeper.platform_metrics import PRIORITY_SEPARATOR, UNACKED_KEY, PlatformCollector
from tests.support.jobs import LEASE, WORKER, new_job
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url
from voxflow.jobs import service
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.queue import names


@pytest.fixture
def broker(servers: Servers) -> Iterator[redis.Redis]:
    """A client of the suite's Redis."""
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    yield client
    client.close()


def gauges(collector: PlatformCollector) -> dict[tuple[str, str], float]:
    """Every sample the collector yields, keyed by name and its one label's value."""
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, next(iter(sample.labels.values()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_jobs_waiting_oldest_age_and_in_flight(db_session: Session, tenant: str) -> None:
    # Inside the test's transaction (rolled back): other tests' jobs are set aside as
    # finished, and now() stands still.
    db_session.execute(update(Job).values(status=JobStatus.COMPLETED.value))
    queued = [new_job(db_session, tenant) for _ in range(3)]
    running = new_job(db_session, tenant)
    assert service.claim(db_session, running, JobStatus.QUEUED, WORKER, LEASE) is not None
    db_session.execute(
        update(Job)
        .where(Job.id == queued[0])
        .values(updated_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 90))
    )
    db_session.flush()

    found = gauges(PlatformCollector(db_session.connection(), None))

    assert found[("voxflow_jobs_waiting", "queued")] == 3
    assert found[("voxflow_jobs_waiting", "transcribed")] == 0
    assert found[("voxflow_oldest_waiting_job_age_seconds", "queued")] == pytest.approx(90)
    assert found[("voxflow_oldest_waiting_job_age_seconds", "transcribed")] == 0
    assert found[("voxflow_jobs_in_flight", "transcribing")] == 1
    assert found[("voxflow_jobs_in_flight", "generating")] == 0
    assert found[("voxflow_collector_up", "database")] == 1
    assert ("voxflow_queue_depth", "transcription") not in found  # no broker given


def test_queue_depth_counts_every_priority_list_and_unacked_by_queue(
    db_session: Session, broker: redis.Redis
) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    other = f"test-{uuid.uuid4().hex[:8]}"
    tags = [f"tag-{uuid.uuid4().hex}" for _ in range(3)]
    broker.rpush(queue, "m1", "m2", "m3")
    broker.rpush(f"{queue}{PRIORITY_SEPARATOR}3", "m4")
    broker.hset(UNACKED_KEY, tags[0], json.dumps([{"body": "x"}, "", queue]))
    broker.hset(UNACKED_KEY, tags[1], json.dumps([{"body": "y"}, "", queue]))
    broker.hset(UNACKED_KEY, tags[2], json.dumps([{"body": "z"}, "", other]))
    try:
        found = gauges(PlatformCollector(db_session.connection(), broker, [queue, other]))
    finally:
        broker.delete(queue, f"{queue}{PRIORITY_SEPARATOR}3")
        broker.hdel(UNACKED_KEY, *tags)
    assert found[("voxflow_queue_depth", queue)] == 4
    assert found[("voxflow_queue_depth", other)] == 0
    assert found[("voxflow_queue_unacked", queue)] == 2
    assert found[("voxflow_queue_unacked", other)] == 1
    assert found[("voxflow_collector_up", "broker")] == 1


def test_a_source_that_does_not_answer_is_reported_not_zeroed(db_session: Session) -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    found = gauges(PlatformCollector(db_session.connection(), unreachable))
    assert found[("voxflow_collector_up", "broker")] == 0
    assert ("voxflow_queue_depth", "transcription") not in found
    assert found[("voxflow_collector_up", "database")] == 1


def test_the_sweeper_reports_every_queue_of_the_platform(
    db_session: Session, broker: redis.Redis
) -> None:
    platform = {value for key, value in vars(names).items() if key.endswith("_QUEUE")}
    collector = PlatformCollector(db_session.connection(), broker)  # the sweeper's queues
    before = gauges(collector)
    assert {q for (name, q) in before if name == "voxflow_queue_depth"} == platform
    assert {q for (name, q) in before if name == "voxflow_queue_unacked"} == platform
    # A webhook delivery waiting, and one a worker has taken (kombu's unacked hash).
    message, tag = f"m-{uuid.uuid4().hex}", f"tag-{uuid.uuid4().hex}"
    broker.rpush(names.WEBHOOK_QUEUE, message)
    broker.hset(UNACKED_KEY, tag, json.dumps([{"body": "x"}, "", names.WEBHOOK_QUEUE]))
    try:
        after = gauges(collector)
    finally:
        broker.lrem(names.WEBHOOK_QUEUE, 0, message)
        broker.hdel(UNACKED_KEY, tag)
    for gauge in ("voxflow_queue_depth", "voxflow_queue_unacked"):
        key = (gauge, names.WEBHOOK_QUEUE)
        assert after[key] == before[key] + 1, gauge
