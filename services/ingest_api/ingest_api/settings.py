"""Settings of the ingestion API."""

from __future__ import annotations

from pydantic import Field

from voxflow.queue.celery_app import QueueSettings
from voxflow.settings import (
    ApiSettings,
    AuthSettings,
    DatabaseSettings,
    JobSettings,
    ModelSettings,
    StorageSettings,
    UploadSettings,
    WebhookSettings,
)


class IngestSettings(
    DatabaseSettings,
    QueueSettings,
    StorageSettings,
    UploadSettings,
    ModelSettings,
    JobSettings,
    ApiSettings,
    AuthSettings,
    WebhookSettings,
):
    """Everything the ingestion API reads from the environment (prefix VOXFLOW_)."""

    uploads_per_minute: int | None = Field(
        default=300,
        gt=0,
        description="Uploads a tenant may start per minute (sliding window in Redis; a 429 "
        "with Retry-After beyond it). Unset: no limit.",
    )
    max_active_jobs: int | None = Field(
        default=1000,
        gt=0,
        description="Unfinished jobs a tenant may have at once (a 429 beyond it). Unset: no limit.",
    )
    idempotency_ttl_seconds: float = Field(
        default=24 * 3600, gt=0, description="How long an Idempotency-Key and its answer are kept."
    )
    idempotency_stale_seconds: float = Field(
        default=900,
        gt=0,
        description="A key held this long by a request that never finished is taken over.",
    )
    openai_wait_seconds: float = Field(
        default=600,
        gt=0,
        description="How long `POST /v1/audio/transcriptions` waits for its job. Past it the "
        "answer is a 504 naming the job, which goes on (docs/openai.md).",
    )
