"""The sweeper publishes webhook deliveries that fell due, once per due time, and no others."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sweeper.main import sweep_once
from tests.support.jobs import published
from tests.support.servers import Servers
from tests.support.webhooks import Finish, claim, delivery_settings, load
from voxflow.db import session_scope
from voxflow.queue.names import WEBHOOK_QUEUE
from voxflow.settings import JobSettings
from voxflow.webhooks import repository as webhooks
from webhook_sender.delivery import record
from webhook_sender.sender import Attempt

URL = "https://hooks.example.com/voxflow?token=abc"


def test_the_sweeper_publishes_due_deliveries_once_per_due_time(
    sessions: sessionmaker[Session], finished: Finish, servers: Servers
) -> None:
    _, delivery_id = finished(URL)
    assert published(servers, WEBHOOK_QUEUE).count(delivery_id) == 1  # after the commit
    settings = JobSettings(requeue_after_seconds=3600)
    assert delivery_id not in sweep_once(sessions, settings).webhooks  # its message is out
    claimed = claim(sessions, delivery_id)
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
    claimed_again = claim(sessions, delivery_id)
    assert claimed_again is not None
    assert claimed_again.attempts == 2


def test_finished_deliveries_are_never_published_again(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    claimed = claim(sessions, delivery_id)
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
    assert claim(sessions, delivery_id) is None
