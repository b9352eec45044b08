"""Settings of the status API."""

from __future__ import annotations

from pydantic import Field

from voxflow.settings import (
    ApiSettings,
    AuthSettings,
    DatabaseSettings,
    RedisSettings,
    StorageSettings,
)


class StatusSettings(DatabaseSettings, RedisSettings, StorageSettings, ApiSettings, AuthSettings):
    """Everything the status API reads from the environment (prefix VOXFLOW_)."""

    audio_url_seconds: int = Field(
        default=300,
        ge=1,
        le=7 * 24 * 3600,  # SigV4's limit (voxflow.storage.s3 loads boto3: not imported here)
        description="S3 storage: how long the presigned URL that `GET /v1/jobs/{id}/audio` "
        "redirects to stays valid, in seconds (local storage serves the file itself).",
    )
