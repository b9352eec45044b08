"""The sweeper's settings: the shared fragments it reads, and retention."""

from __future__ import annotations

from pydantic import Field

from voxflow.settings import (
    DatabaseSettings,
    JobSettings,
    MetricsSettings,
    RedisSettings,
    StorageSettings,
)


class SweeperSettings(
    DatabaseSettings, JobSettings, RedisSettings, MetricsSettings, StorageSettings
):
    """Everything the sweeper reads from the environment (prefix VOXFLOW_)."""

    audio_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Delete the stored audio of finished jobs this many days after they "
        "finished (transcripts and notes are kept). Unset: keep audio.",
    )
