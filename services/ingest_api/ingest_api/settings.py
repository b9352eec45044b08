"""Settings of the ingestion API."""

from __future__ import annotations

from pydantic import Field

from voxflow.queue.celery_app import QueueSettings
from voxflow.settings import (
    ApiSettings,
    DatabaseSettings,
    JobSettings,
    ModelSettings,
    StorageSettings,
    UploadSettings,
)


class IngestSettings(
    DatabaseSettings,
    QueueSettings,
    StorageSettings,
    UploadSettings,
    ModelSettings,
    JobSettings,
    ApiSettings,
):
    """Everything the ingestion API reads from the environment (prefix VOXFLOW_)."""

    idempotency_ttl_seconds: float = Field(
        default=24 * 3600, gt=0, description="How long an Idempotency-Key and its answer are kept."
    )
    idempotency_stale_seconds: float = Field(
        default=900,
        gt=0,
        description="A key held this long by a request that never finished is taken over.",
    )
