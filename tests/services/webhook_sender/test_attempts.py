"""The webhook sender's attempts: the retry schedule, the 24 h window, the exclusive claim."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.support.webhooks import Finish, claim, delivery_settings, load
from voxflow.db import session_scope
from voxflow.webhooks.models import WebhookDelivery
from webhook_sender.delivery import backoff_seconds, record
from webhook_sender.sender import Attempt

URL = "https://hooks.example.com/voxflow?token=abc"


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


def test_two_concurrent_claims_get_one_winner(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    barrier = threading.Barrier(2)
    results: list[WebhookDelivery | None] = []

    def contender() -> None:
        barrier.wait()
        results.append(claim(sessions, delivery_id))

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
    assert claim(sessions, delivery_id) is None  # held until its claim lapses


def test_a_late_outcome_after_the_claim_lapsed_is_dropped(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    _, delivery_id = finished(URL)
    first = claim(sessions, delivery_id)
    assert first is not None
    with session_scope(sessions) as session:  # the first attempt hangs past its claim
        session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = :id"),
            {"id": delivery_id},
        )
    second = claim(sessions, delivery_id)
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
    claimed = claim(sessions, delivery_id)
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
    claimed = claim(sessions, delivery_id)
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
        claimed = claim(sessions, delivery_id)
        assert claimed is not None
        answer = Attempt("http_4xx", 429, "HTTP 429", retry_after=retry_after)
        with session_scope(sessions) as session:
            assert record(session, claimed, answer, settings) == "pending"
            now = session.scalar(select(func.now()))
        due = load(sessions, delivery_id).next_attempt_at
        assert due is not None
        assert now is not None
        assert timedelta(seconds=low) <= due - now <= timedelta(seconds=high)
