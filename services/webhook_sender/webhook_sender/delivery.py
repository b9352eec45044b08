"""Delivering one webhook: claim it, POST it signed, record the outcome.

Both database steps are conditional updates, so a duplicate message, a second worker or a
late answer after the claim lapsed changes nothing. The HTTP call runs outside any
transaction. A failed attempt sets `next_attempt_at` (exponential backoff with jitter, at
least the receiver's Retry-After up to the cap) and the sweeper publishes the delivery
again once it is due; after the retry window the delivery is marked failed.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from opentelemetry.util.types import AttributeValue
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import session_scope
from voxflow.jobs.models import Job
from voxflow.jobs.urls import job_url
from voxflow.logs import job_context
from voxflow.observability import metrics, tracing
from voxflow.webhooks import repository
from voxflow.webhooks.models import WebhookDelivery
from voxflow.webhooks.settings import WebhookSettings
from voxflow.webhooks.signing import signed_headers
from webhook_sender.sender import Attempt, post
from webhook_sender.settings import DeliverySettings

log = logging.getLogger(__name__)

JITTER = 0.25  # a retry comes up to this share earlier than the plain doubling says


def backoff_seconds(
    attempt: int, *, base: float, maximum: float, rng: Callable[[], float] = random.random
) -> float:
    """Pause after the `attempt`-th failed attempt: base x 2^(attempt-1), capped, jittered."""
    delay: float = min(maximum, base * 2.0 ** max(0, attempt - 1))
    return delay * (1 - JITTER * rng())


def retry_delay(attempt: int, answer: Attempt, settings: WebhookSettings) -> float:
    """The backoff, or the receiver's Retry-After when longer (up to the maximum pause)."""
    delay = backoff_seconds(
        attempt, base=settings.webhook_retry_base_seconds,
        maximum=settings.webhook_retry_max_seconds,
    )  # fmt: skip
    if answer.retry_after is not None:
        delay = max(delay, min(answer.retry_after, settings.webhook_retry_max_seconds))
    return delay


def claim_lease(settings: WebhookSettings) -> timedelta:
    """How long one attempt holds its delivery (beyond it, another attempt may start)."""
    # Connect, write and read may each take the timeout, and DNS some more.
    return timedelta(seconds=4 * settings.webhook_timeout_seconds + 60)


def payload(delivery: WebhookDelivery, job: Job, base_url: str) -> bytes:
    """The JSON body: the same bytes on every attempt of a delivery."""
    own = job_url(base_url, job.id)
    error = None
    if job.error_code is not None:
        error = {"code": job.error_code, "message": job.error_message or ""}
    body = {
        "type": delivery.event,
        "timestamp": _iso(delivery.created_at),
        "data": {
            "id": str(job.id),
            "status": job.status,
            "created_at": _iso(job.created_at),
            "finished_at": _iso(job.finished_at) if job.finished_at else None,
            "error": error,
            "links": {
                "self": own, "events": f"{own}/events", "transcript": f"{own}/transcript",
                "results": f"{own}/results", "webhooks": f"{own}/webhooks",
            },
        },
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def attempt_once(delivery: WebhookDelivery, body: bytes, settings: WebhookSettings) -> Attempt:
    """Sign and POST the body (no database work)."""
    if settings.webhook_secret is None:
        return Attempt(
            "no_secret", error="VOXFLOW_WEBHOOK_SECRET is not set where webhooks are delivered"
        )
    secret = settings.webhook_secret.get_secret_value()
    return post(
        delivery.url, body, signed_headers(secret, str(delivery.id), body),
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private_networks,
    )  # fmt: skip


def record(
    session: Session, delivery: WebhookDelivery, answer: Attempt, settings: WebhookSettings
) -> str | None:
    """Store the attempt's outcome; the delivery's new status, None if no longer ours."""
    if answer.delivered:
        assert answer.status_code is not None
        return repository.mark_delivered(
            session, delivery.id, delivery.attempts, answer.status_code
        )
    error = answer.error or answer.result
    if answer.result == "gone":
        return repository.mark_failed(
            session, delivery.id, delivery.attempts, answer.status_code, error
        )
    delay = retry_delay(delivery.attempts, answer, settings)
    return repository.schedule_retry(
        session, delivery.id, delivery.attempts, status_code=answer.status_code, error=error,
        delay=timedelta(seconds=delay),
        window=timedelta(seconds=settings.webhook_retry_window_seconds),
    )  # fmt: skip


def deliver(sessions: sessionmaker[Session], raw_id: str, settings: DeliverySettings) -> str:
    """Make one attempt at a due delivery: `delivered`, `retry`, `failed`, `skipped` or `lost`."""
    try:
        delivery_id = uuid.UUID(raw_id)
    except ValueError:
        log.warning("ignoring a webhook message with an invalid delivery id %r", raw_id)
        return "skipped"
    with session_scope(sessions) as session:
        delivery = repository.claim(session, delivery_id, claim_lease(settings))
        if delivery is None:
            return "skipped"  # not due: done, deleted, or another worker has it
        job = session.get(Job, delivery.job_id)
        assert job is not None  # the delivery would have gone with its job
        body = payload(delivery, job, settings.public_status_url)
    attributes: dict[str, AttributeValue] = {
        "voxflow.job_id": str(job.id),
        "voxflow.webhook.event": delivery.event,
        "voxflow.webhook.attempt": delivery.attempts,
    }
    with (
        job_context(job.id),
        tracing.job_span("webhook delivery", job.trace_context, attributes) as span,
    ):
        answer = attempt_once(delivery, body, settings)
        with session_scope(sessions) as session:
            status = record(session, delivery, answer, settings)
        outcome = _outcome(status)
        span.set_attribute("voxflow.outcome", outcome)
        _log(delivery, answer, outcome)
    metrics.WEBHOOK_ATTEMPTS.labels(result=answer.result).inc()
    if status in (repository.DELIVERED, repository.FAILED):
        metrics.WEBHOOK_DELIVERIES.labels(event=delivery.event, outcome=status).inc()
    return outcome


def _outcome(status: str | None) -> str:
    if status is None:
        return "lost"
    return "retry" if status == repository.PENDING else status


def _log(delivery: WebhookDelivery, answer: Attempt, outcome: str) -> None:
    what = f"webhook {delivery.event} {delivery.id} attempt {delivery.attempts}"
    if outcome == "delivered":
        log.info("%s delivered (HTTP %s)", what, answer.status_code)
    elif outcome == "lost":
        log.warning("%s: outcome dropped, the delivery was taken over or deleted", what)
    else:
        log.warning("%s: %s (%s)", what, answer.error or answer.result, outcome)
