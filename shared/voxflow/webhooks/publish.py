"""Publishing webhook deliveries to the `webhooks` queue, after the transaction commits."""

from __future__ import annotations

import uuid
from functools import partial

from sqlalchemy.orm import Session

from voxflow.db import after_commit
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE


def publish_now(delivery_id: uuid.UUID) -> None:
    """Send the delivery's task (outside any transaction)."""
    publisher_app().send_task(DELIVER_WEBHOOK_TASK, args=[str(delivery_id)], queue=WEBHOOK_QUEUE)


def publish_after_commit(session: Session, delivery_id: uuid.UUID) -> None:
    """Send the delivery's task once the session's transaction commits (never on rollback)."""
    after_commit(session, partial(publish_now, delivery_id))
