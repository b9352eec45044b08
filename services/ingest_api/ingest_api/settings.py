"""Settings of the ingestion API."""

from __future__ import annotations

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
