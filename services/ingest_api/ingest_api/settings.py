"""Settings of the ingestion API."""

from __future__ import annotations

from urllib.parse import urlsplit

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
)
from voxflow.webhooks.settings import WebhookSettings


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
    console_origins: list[str] | None = Field(
        default=None,
        description="Origins (scheme://host:port) whose pages may call this API from a browser "
        "(CORS): the web console's, served by the status API (JSON list). Unset: the origin of "
        "VOXFLOW_PUBLIC_STATUS_URL. `[]`: no browser origin.",
    )

    def cors_origins(self) -> list[str]:
        """The browser origins allowed to call this API (the console's, by default)."""
        if self.console_origins is not None:
            return [origin.rstrip("/") for origin in self.console_origins]
        parts = urlsplit(self.public_status_url)
        return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []
