"""All SQL about webhook deliveries. Functions here flush but never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from voxflow.webhooks.models import WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def add_delivery(session: Session, job_id: uuid.UUID, event: str, url: str) -> uuid.UUID | None:
    """Insert the job's delivery for `event`, due now; None if it already has one."""
    inserted = session.execute(
        insert(WebhookDelivery)
        .values(
            id=uuid.uuid4(),
            job_id=job_id,
            event=event,
            url=url,
            status=PENDING,
            attempts=0,
            next_attempt_at=func.now(),
            enqueued_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["job_id", "event"])
        .returning(WebhookDelivery.id)
    ).first()
    return None if inserted is None else inserted[0]


def claim(session: Session, delivery_id: uuid.UUID, lease: timedelta) -> WebhookDelivery | None:
    """Take a due pending delivery for one attempt: it is not due again until `lease` is over.

    Zero rows updated means it is not due (another worker holds it, it is done, or it was
    deleted with its job): the caller just stops.
    """
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= func.now(),
        )
        .values(
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=func.now() + lease,
            last_attempt_at=func.now(),
        )
        .returning(WebhookDelivery)
        .execution_options(synchronize_session=False)
    )
    delivery = session.scalars(statement).one_or_none()
    if delivery is not None:
        session.refresh(delivery)
    return delivery


def _settle(
    session: Session, delivery_id: uuid.UUID, attempt: int, values: dict[str, Any]
) -> str | None:
    """Record an attempt's outcome if this attempt still holds the delivery; its new status."""
    # The attempt number fences the update: a later claim (after our lease lapsed) has
    # already incremented it, and then this late outcome is dropped.
    row = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.attempts == attempt,
        )
        .values(**values)
        .returning(WebhookDelivery.status)
    ).first()
    return None if row is None else str(row[0])


def mark_delivered(
    session: Session, delivery_id: uuid.UUID, attempt: int, status_code: int
) -> str | None:
    """The receiver answered 2xx."""
    return _settle(session, delivery_id, attempt, {
        "status": DELIVERED, "delivered_at": func.now(), "next_attempt_at": None,
        "last_status_code": status_code, "last_error": None,
    })  # fmt: skip


def mark_failed(
    session: Session, delivery_id: uuid.UUID, attempt: int, status_code: int | None, error: str
) -> str | None:
    """Give up now (the receiver answered 410 Gone)."""
    return _settle(session, delivery_id, attempt, {
        "status": FAILED, "next_attempt_at": None,
        "last_status_code": status_code, "last_error": error,
    })  # fmt: skip


def schedule_retry(
    session: Session,
    delivery_id: uuid.UUID,
    attempt: int,
    *,
    status_code: int | None,
    error: str,
    delay: timedelta,
    window: timedelta,
) -> str | None:
    """Retry after `delay`, or fail if that would be past `window` after the event."""
    # The database's clock decides, as it does for leases.
    too_late: ColumnElement[bool] = func.now() + delay > WebhookDelivery.created_at + window
    return _settle(session, delivery_id, attempt, {
        "status": case((too_late, FAILED), else_=PENDING),
        "next_attempt_at": case((too_late, None), else_=func.now() + delay),
        "last_status_code": status_code, "last_error": error,
    })  # fmt: skip


def lock_due(session: Session, older_than: timedelta, limit: int) -> Sequence[WebhookDelivery]:
    """Lock due pending deliveries with no message since they fell due (or a stale one)."""
    query = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= func.now(),
            or_(
                WebhookDelivery.enqueued_at.is_(None),
                WebhookDelivery.enqueued_at < WebhookDelivery.next_attempt_at,
                WebhookDelivery.enqueued_at < func.now() - older_than,
            ),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def mark_enqueued(session: Session, delivery_ids: Sequence[uuid.UUID]) -> None:
    """Record that a message for these deliveries was (about to be) published."""
    if delivery_ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .values(enqueued_at=func.now())
        )


def list_for_job(session: Session, job_id: uuid.UUID) -> Sequence[WebhookDelivery]:
    """A job's deliveries, oldest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    )
    return session.scalars(query).all()
