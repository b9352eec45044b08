"""Settings of the status API."""

from __future__ import annotations

from voxflow.settings import (
    ApiSettings,
    AuthSettings,
    DatabaseSettings,
    RedisSettings,
    StorageSettings,
)


class StatusSettings(DatabaseSettings, RedisSettings, StorageSettings, ApiSettings, AuthSettings):
    """Everything the status API reads from the environment (prefix VOXFLOW_)."""
