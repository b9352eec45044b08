"""Webhook retries: the sweeper publishes deliveries that fell due again.

Retries are not scheduled on the broker (a countdown longer than the visibility timeout would
be redelivered early): the webhook sender records when the next attempt may start, and each
sweep publishes what is due then: a retry after its backoff, an attempt whose sender vanished
(its claim lapsed), or a delivery whose message was lost.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from voxflow.webhooks import repository
from voxflow.webhooks.publish import publish_after_commit


def republish_due(session: Session, *, older_than: timedelta, limit: int = 100) -> list[uuid.UUID]:
    """Publish pending deliveries that fell due (a retry, a lapsed claim, a lost message)."""
    due = [delivery.id for delivery in repository.lock_due(session, older_than, limit)]
    repository.mark_enqueued(session, due)
    for delivery_id in due:
        publish_after_commit(session, delivery_id)
    return due
