"""A worker that only delivers webhooks: `celery -A voxflow.webhooks.worker worker -Q webhooks`."""

from __future__ import annotations

from voxflow.queue.celery_app import make_celery
from voxflow.webhooks.tasks import register
from voxflow.worker.runtime import install_process_hooks

app = make_celery(name="webhook_worker")
install_process_hooks(app)
register(app)
