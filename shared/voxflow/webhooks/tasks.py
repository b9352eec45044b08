"""The `voxflow.deliver_webhook` task: one attempt at one webhook delivery.

The task is registered on the app of whichever worker consumes the `webhooks` queue: the
LLM worker in `voxflow run` (`-Q llm,webhooks`), or a worker of its own
(`celery -A voxflow.webhooks.worker worker -Q webhooks`).
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from voxflow.queue.names import DELIVER_WEBHOOK_TASK
from voxflow.webhooks.delivery import DeliverySettings, deliver
from voxflow.worker.runtime import get_runtime


@lru_cache(maxsize=1)
def settings() -> DeliverySettings:
    """This process's webhook settings."""
    return DeliverySettings()


def deliver_webhook(delivery_id: str) -> str:
    """Attempt one due delivery; safe to run twice (the claim is conditional)."""
    return deliver(get_runtime().sessions, delivery_id, settings())


def register(app: Celery) -> None:
    """Let `app`'s workers run the task (they must also consume the `webhooks` queue)."""
    settings()  # a malformed secret stops the worker now, not at its first delivery
    app.task(name=DELIVER_WEBHOOK_TASK)(deliver_webhook)
