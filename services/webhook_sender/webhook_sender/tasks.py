"""The webhook sender's Celery app and its one task, `voxflow.deliver_webhook`.

`celery -A webhook_sender.tasks worker -Q webhooks` runs it (`voxflow run` starts one). Each
message carries a delivery id; one task is one attempt. A failed attempt records when the
next may start, and the sweeper publishes the delivery again then (`sweeper.webhook_retries`).
"""

from __future__ import annotations

from functools import lru_cache

from voxflow.queue.celery_app import make_celery
from voxflow.queue.names import DELIVER_WEBHOOK_TASK
from voxflow.worker.process import install_process_hooks, worker_runtime
from webhook_sender.delivery import deliver
from webhook_sender.settings import DeliverySettings, WebhookSenderSettings

app = make_celery(name="webhook_sender")
install_process_hooks(app)


@lru_cache(maxsize=1)
def settings() -> DeliverySettings:
    """This process's settings (all of them read and checked once, at start)."""
    return WebhookSenderSettings()


settings()  # a malformed secret stops the worker now, not at its first delivery


@app.task(name=DELIVER_WEBHOOK_TASK)
def deliver_webhook(delivery_id: str) -> str:
    """Attempt one due delivery; safe to run twice (the claim is conditional)."""
    return deliver(worker_runtime().sessions, delivery_id, settings())
