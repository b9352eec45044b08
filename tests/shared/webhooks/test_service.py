"""Webhook deliveries are born with the job's terminal transition and follow it exactly.

Also: the retry schedule, the 24 h window, the exclusive claim, and the sweeper's publishing.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.servers import Servers
from tests.shared.job_helpers import LEASE, WORKER, new_job, published, transcript_for
from tests.shared.webhooks.helpers import Finish, delivery_settings, load
from voxflow.db import session_scope
from voxflow.jobs import control, repository, service
from voxflow.jobs.models import WebhookDelivery
from voxflow.jobs.states import JobStatus
from voxflow.queue.names import WEBHOOK_QUEUE
from voxflow.settings import JobSettings
from voxflow.storage.local import LocalStorage
from voxflow.sweeper import sweep_once
from voxflow.webhooks import repository as webhooks
from voxflow.webhooks import service as webhook_service
from voxflow.webhooks.delivery import backoff_seconds, record
from voxflow.webhooks.sender import Attempt

URL = "https://hooks.example.com/voxflow?token=abc"


def deliveries(session: Session, job_id: uuid.UUID) -> list[WebhookDelivery]:
    """The job's deliveries as the database has them now."""
    session.expire_all()
    return list(webhooks.list_for_job(session, job_id))


def test_completion_creates_the_delivery_in_its_own_transaction(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    db_session.commit()
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    assert deliveries(db_session, job_id) == []  # running is not an event
    service.finish_transcription(db_session, job_id, WORKER, transcript_for(job_id))
    [delivery] = deliveries(db_session, job_id)
    assert (delivery.event, delivery.url, delivery.status) == ("job.completed", URL, "pending")
    assert delivery.attempts == 0
    assert delivery.next_attempt_at is not None
    assert delivery.id not in published(servers, WEBHOOK_QUEUE)  # not before the commit
    db_session.commit()
    assert published(servers, WEBHOOK_QUEUE).count(delivery.id) == 1


def test_a_rolled_back_transition_leaves_no_delivery_and_sends_nothing(
    sessions: sessionmaker[Session], tenant: str, servers: Servers
) -> None:
    with session_scope(sessions) as session:
        job_id = new_job(session, tenant, webhook_url=URL)
    seen: list[uuid.UUID] = []

    def doomed_unit_of_work() -> None:
        with session_scope(sessions) as session:
            service.fail(session, job_id, JobStatus.QUEUED, "boom", "It broke.")
            seen.extend(d.id for d in deliveries(session, job_id))
            raise RuntimeError("crash before the commit")

    with pytest.raises(RuntimeError, match="crash"):
        doomed_unit_of_work()
    assert len(seen) == 1  # it existed inside the transaction
    with sessions() as session:
        assert deliveries(session, job_id) == []
        job = repository.get_job(session, job_id)
        assert job is not None
        assert job.status == "queued"
    assert seen[0] not in published(servers, WEBHOOK_QUEUE)
    with session_scope(sessions) as session:
        session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})


@pytest.mark.parametrize(
    ("status", "event"), [(JobStatus.FAILED, "job.failed"), (JobStatus.CANCELED, "job.canceled")]
)
def test_failed_and_canceled_jobs_notify_too(
    db_session: Session, tenant: str, status: JobStatus, event: str
) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    if status is JobStatus.FAILED:
        service.fail(db_session, job_id, JobStatus.QUEUED, "audio_too_long", "Too long.")
    else:
        service.cancel(db_session, job_id, actor="tenant:x")
    assert [d.event for d in deliveries(db_session, job_id)] == [event]


def test_a_job_without_a_webhook_creates_no_delivery(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    service.fail(db_session, job_id, JobStatus.QUEUED, "boom", "It broke.")
    assert deliveries(db_session, job_id) == []


def test_one_event_makes_one_delivery(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    job = service.fail(db_session, job_id, JobStatus.QUEUED, "boom", "It broke.")
    assert job is not None
    # A second recording of the same event (a replayed transition) is absorbed.
    assert webhook_service.on_terminal(db_session, job, JobStatus.FAILED) is None
    assert len(deliveries(db_session, job_id)) == 1


def test_deleting_the_job_deletes_its_deliveries(
    db_session: Session, tenant: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    job = service.fail(db_session, job_id, JobStatus.QUEUED, "boom", "It broke.")
    assert job is not None
    assert len(deliveries(db_session, job_id)) == 1
    control.delete_job(db_session, LocalStorage(tmp_path_factory.mktemp("s")), job)
    count = select(func.count()).select_from(WebhookDelivery)
    assert db_session.scalar(count.where(WebhookDelivery.job_id == job_id)) == 0


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    plain = [backoff_seconds(n, base=30, maximum=3600, rng=lambda: 0.0) for n in range(1, 11)]
    assert plain == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    earliest = [backoff_seconds(n, base=30, maximum=3600, rng=lambda: 1.0) for n in (1, 8)]
    assert earliest == [22.5, 2700]  # jitter takes up to a quarter off, never adds
    for n in range(1, 12):
        assert 0.75 * min(3600, 30 * 2 ** (n - 1)) <= backoff_seconds(
            n, base=30, maximum=3600
        ) <= min(3600, 30 * 2 ** (n - 1))  # fmt: skip


def test_the_default_schedule_keeps_trying_for_a_day() -> None:
    settings = delivery_settings(
        webhook_retry_base_seconds=30, webhook_retry_max_seconds=3600,
        webhook_retry_window_seconds=24 * 3600,
    )  # fmt: skip
    elapsed, attempts = 0.0, 1
    while elapsed + backoff_seconds(attempts, base=30, maximum=3600, rng=lambda: 0.0) <= 86400:
        elapsed += backoff_seconds(attempts, base=30, maximum=3600, rng=lambda: 0.0)
        attempts += 1
    assert attempts == 30  # 8 quick ones in the first hour, then hourly
    assert settings.webhook_retry_window_seconds == 86400


def _claim(sessions: sessionmaker[Session], delivery_id: uuid.UUID) -> WebhookDelivery | None:
    with session_scope(sessions) as session:
        return webhooks.claim(session, delivery_id, timedelta(minutes=2))


def test_two_concurrent_claims_get_one_winner(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    barrier = threading.Barrier(2)
    results: list[WebhookDelivery | None] = []

    def contender() -> None:
        barrier.wait()
        results.append(_claim(sessions, delivery_id))

    threads = [threading.Thread(target=contender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [r for r in results if r is not None]
    assert len(results) == 2
    assert len(winners) == 1
    assert winners[0].attempts == 1
    assert load(sessions, delivery_id).attempts == 1
    assert _claim(sessions, delivery_id) is None  # held until its claim lapses


def test_a_late_outcome_after_the_claim_lapsed_is_dropped(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    first = _claim(sessions, delivery_id)
    assert first is not None
    with session_scope(sessions) as session:  # the first attempt hangs past its claim
        session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = :id"),
            {"id": delivery_id},
        )
    second = _claim(sessions, delivery_id)
    assert second is not None
    assert second.attempts == 2
    settings = delivery_settings()
    with session_scope(sessions) as session:
        assert record(session, first, Attempt("ok", 200), settings) is None  # fenced out
    with session_scope(sessions) as session:
        assert record(session, second, Attempt("http_5xx", 503, "HTTP 503"), settings) == "pending"
    assert load(sessions, delivery_id).last_status_code == 503


def _age(sessions: sessionmaker[Session], delivery_id: uuid.UUID, age: timedelta) -> None:
    with session_scope(sessions) as session:
        session.execute(
            text("UPDATE webhook_deliveries SET created_at = now() - :age WHERE id = :id"),
            {"age": age, "id": delivery_id},
        )


def test_a_failure_inside_the_window_is_retried_later(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    _age(sessions, delivery_id, timedelta(hours=1))
    claimed = _claim(sessions, delivery_id)
    assert claimed is not None
    settings = delivery_settings(webhook_retry_base_seconds=30, webhook_retry_max_seconds=3600)
    with session_scope(sessions) as session:
        status = record(session, claimed, Attempt("http_5xx", 500, "HTTP 500: oops"), settings)
        now = session.scalar(select(func.now()))
    assert status == "pending"
    delivery = load(sessions, delivery_id)
    assert (delivery.last_status_code, delivery.last_error) == (500, "HTTP 500: oops")
    assert delivery.next_attempt_at is not None
    assert now is not None
    assert timedelta(seconds=22) <= delivery.next_attempt_at - now <= timedelta(seconds=30)


def test_a_failure_past_the_window_gives_up(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    _age(sessions, delivery_id, timedelta(hours=23, minutes=59, seconds=50))
    claimed = _claim(sessions, delivery_id)
    assert claimed is not None
    settings = delivery_settings(webhook_retry_base_seconds=30, webhook_retry_max_seconds=3600)
    with session_scope(sessions) as session:
        assert record(session, claimed, Attempt("timeout", None, "no answer"), settings) == "failed"
    delivery = load(sessions, delivery_id)
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    assert (delivery.attempts, delivery.last_error) == (1, "no answer")


def test_a_receivers_retry_after_is_honoured_up_to_the_cap(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    settings = delivery_settings(webhook_retry_base_seconds=1, webhook_retry_max_seconds=600)
    for retry_after, low, high in ((120, 120, 121), (86400, 600, 601)):
        with session_scope(sessions) as session:
            session.execute(
                text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = :id"),
                {"id": delivery_id},
            )
        claimed = _claim(sessions, delivery_id)
        assert claimed is not None
        answer = Attempt("http_4xx", 429, "HTTP 429", retry_after=retry_after)
        with session_scope(sessions) as session:
            assert record(session, claimed, answer, settings) == "pending"
            now = session.scalar(select(func.now()))
        due = load(sessions, delivery_id).next_attempt_at
        assert due is not None
        assert now is not None
        assert timedelta(seconds=low) <= due - now <= timedelta(seconds=high)


def test_the_sweeper_publishes_due_deliveries_once_per_due_time(
    sessions: sessionmaker[Session], finished: Finish, servers: Servers
) -> None:
    _, delivery_id = finished(URL)
    assert published(servers, WEBHOOK_QUEUE).count(delivery_id) == 1  # after the commit
    settings = JobSettings(requeue_after_seconds=3600)
    assert delivery_id not in sweep_once(sessions, settings).webhooks  # its message is out
    claimed = _claim(sessions, delivery_id)
    assert claimed is not None
    with session_scope(sessions) as session:
        record(session, claimed, Attempt("http_5xx", 502, "HTTP 502"), delivery_settings())
    assert delivery_id not in sweep_once(sessions, settings).webhooks  # not due yet
    due = load(sessions, delivery_id).next_attempt_at
    assert due is not None
    while datetime.now(UTC) < due + timedelta(milliseconds=50):
        threading.Event().wait(0.02)
    assert delivery_id in sweep_once(sessions, settings).webhooks
    assert published(servers, WEBHOOK_QUEUE).count(delivery_id) == 2
    assert delivery_id not in sweep_once(sessions, settings).webhooks  # published already
    # A message lost on the way is published again after requeue_after_seconds.
    assert delivery_id in sweep_once(sessions, JobSettings(requeue_after_seconds=0)).webhooks


def test_the_sweeper_republishes_an_attempt_whose_worker_vanished(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    with session_scope(sessions) as session:
        claimed = webhooks.claim(session, delivery_id, timedelta(milliseconds=200))
    assert claimed is not None
    settings = JobSettings(requeue_after_seconds=3600)
    assert delivery_id not in sweep_once(sessions, settings).webhooks  # the attempt holds it
    threading.Event().wait(0.3)  # ... and never reports back
    assert delivery_id in sweep_once(sessions, settings).webhooks
    claimed_again = _claim(sessions, delivery_id)
    assert claimed_again is not None
    assert claimed_again.attempts == 2


def test_finished_deliveries_are_never_published_again(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    claimed = _claim(sessions, delivery_id)
    assert claimed is not None
    gone = Attempt("gone", 410, "the receiver answered 410 Gone")
    with session_scope(sessions) as session:
        assert record(session, claimed, gone, delivery_settings()) == "failed"
    with session_scope(sessions) as session:
        session.execute(
            text("UPDATE webhook_deliveries SET enqueued_at = NULL WHERE id = :id"),
            {"id": delivery_id},
        )
    assert delivery_id not in sweep_once(sessions, JobSettings(requeue_after_seconds=0)).webhooks
    assert _claim(sessions, delivery_id) is None
