"""The Celery application every process shares, configured for at-least-once delivery.

Messages carry only a job id: Postgres is the truth and the broker is a doorbell. Each
setting below is there for a reason recorded in the handbook's field notes.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from pydantic import Field

from voxflow.queue.names import GENERATE_TASK, LLM_QUEUE, TRANSCRIBE_TASK, TRANSCRIPTION_QUEUE
from voxflow.settings import RedisSettings


class QueueSettings(RedisSettings):
    """Broker behaviour."""

    visibility_timeout_seconds: int = Field(
        default=4 * 3600,
        description="Seconds before Redis hands an unacknowledged message to another worker; "
        "keep it well above the longest task.",
    )
    unacked_restore_seconds: int = Field(
        default=60,
        description="Seconds between the broker's scans for unacknowledged messages older "
        "than the visibility timeout (which it hands out again).",
    )
    task_soft_time_limit_seconds: int = Field(
        default=3 * 3600, description="Soft time limit of one task (raises in the task)."
    )
    task_time_limit_seconds: int = Field(
        default=3 * 3600 + 300, description="Hard time limit of one task (kills the child)."
    )
    soft_shutdown_seconds: float = Field(
        default=20.0,
        description="On SIGTERM (with REMAP_SIGTERM=SIGQUIT in the worker's environment), how "
        "long running jobs may finish before they are handed back to the queue. Keep it below "
        "the platform's stop grace period (Kubernetes terminationGracePeriodSeconds).",
    )


def make_celery(settings: QueueSettings | None = None, name: str = "voxflow") -> Celery:
    """Build a Celery app on the configured Redis broker."""
    settings = settings or QueueSettings()
    if not settings.redis_url:
        raise RuntimeError("VOXFLOW_REDIS_URL is not set (use `voxflow run` for an embedded one)")
    app = Celery(name, broker=settings.redis_url)
    transport_options = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        # Scan every `unacked_restore_seconds` (kombu's default scans every 10th 10 s tick).
        "unacked_restore_interval": settings.unacked_restore_seconds,
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_acks_late=True,  # at least once: a task that dies is redelivered
        task_reject_on_worker_lost=True,  # safe only because jobs cap their attempts
        worker_prefetch_multiplier=1,  # one reserved message per process
        task_ignore_result=True,  # the job row is the result
        result_backend=None,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # retry forever while the broker is away
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        # SIGTERM (remapped to SIGQUIT): finish within this, then hand running jobs back.
        worker_soft_shutdown_timeout=settings.soft_shutdown_seconds,
        task_serializer="json",
        accept_content=["json"],
        task_routes={
            TRANSCRIBE_TASK: {"queue": TRANSCRIPTION_QUEUE},
            GENERATE_TASK: {"queue": LLM_QUEUE},
        },
        task_default_queue=TRANSCRIPTION_QUEUE,
        # A new pool child preloads its model before it counts as alive; a large model
        # takes longer than the 4 s default, and Celery would kill the child in a loop.
        worker_proc_alive_timeout=600,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


@lru_cache(maxsize=1)
def publisher_app() -> Celery:
    """The process-wide Celery app used only to publish tasks by name."""
    return make_celery()
