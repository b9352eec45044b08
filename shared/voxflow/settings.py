"""Settings fragments shared by every service; each service composes the ones it needs.

Every field is read from the environment with the ``VOXFLOW_`` prefix (``database_url`` is
``VOXFLOW_DATABASE_URL``) or from a ``.env`` file in the working directory.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(env_prefix="VOXFLOW_", env_file=".env", extra="ignore")


class DatabaseSettings(BaseSettings):
    """Where the job database lives."""

    model_config = _CONFIG

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql+psycopg://...). Unset: `voxflow run` starts "
        "an embedded PostgreSQL and passes its URL to every service.",
    )
    database_pool_size: int = Field(default=5, description="Connections kept per process.")


class RedisSettings(BaseSettings):
    """Where the Celery broker lives."""

    model_config = _CONFIG

    redis_url: str | None = Field(
        default=None,
        description="Redis URL used as the Celery broker (redis://host:6379/0 or "
        "redis+socket:///path). Unset: `voxflow run` starts an embedded Redis.",
    )


class StorageSettings(BaseSettings):
    """Where uploaded audio is kept."""

    model_config = _CONFIG

    data_dir: Path = Field(
        default=Path(".voxflow"),
        description="Directory for embedded servers' data and, by default, stored audio.",
    )
    storage_backend: str = Field(default="local", description="Storage backend: `local`.")
    storage_root: Path | None = Field(
        default=None,
        description="Root directory of the local storage backend (default: DATA_DIR/storage).",
    )

    def resolved_storage_root(self) -> Path:
        """Return the storage root, defaulting to a folder under the data directory."""
        return self.storage_root or self.data_dir / "storage"


class JobSettings(BaseSettings):
    """How the job lifecycle behaves: leases, retries, sweeping."""

    model_config = _CONFIG

    max_attempts: int = Field(default=3, description="Claims of one stage before it fails.")
    lease_seconds: float = Field(
        default=60.0, description="How long a worker owns a running stage without a heartbeat."
    )
    heartbeat_seconds: float = Field(
        default=15.0, description="How often a running stage renews its lease."
    )
    requeue_after_seconds: float = Field(
        default=600.0,
        description="A waiting job whose message was published longer ago than this is "
        "published again by the sweeper (its message may have been lost).",
    )
    sweep_interval_seconds: float = Field(default=10.0, description="Pause between sweeps.")


class UploadSettings(BaseSettings):
    """What the ingestion API accepts."""

    model_config = _CONFIG

    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024, description="Largest accepted upload in bytes."
    )
    max_audio_seconds: float = Field(
        default=4 * 3600.0, description="Longest accepted recording in seconds."
    )
    probe_timeout_seconds: float = Field(
        default=120.0, description="Time allowed to probe and decode-check one upload."
    )
    max_options_bytes: int = Field(
        default=16 * 1024, description="Largest accepted `options` form field in bytes."
    )
    allowed_models: list[str] = Field(
        default=["tiny.en"],
        description="Whisper models a job may ask for (JSON list); the first is the default.",
    )
    spool_dir: Path | None = Field(
        default=None, description="Where uploads are spooled while checked (default: system temp)."
    )


class TranscriptionSettings(BaseSettings):
    """How the transcription worker runs Whisper."""

    model_config = _CONFIG

    whisper_model: str = Field(
        default="tiny.en",
        description="Whisper model: a name (`tiny.en` uses the bundled offline copy; others "
        "such as `large-v3` are downloaded by faster-whisper) or a local CTranslate2 path.",
    )
    whisper_device: str = Field(default="auto", description="`auto`, `cpu` or `cuda`.")
    whisper_compute_type: str = Field(
        default="auto", description="CTranslate2 compute type (`auto`, `int8`, `float16`...)."
    )
    whisper_cpu_threads: int = Field(default=0, description="CPU threads (0: library default).")
    whisper_beam_size: int = Field(default=5, description="Beam size for decoding.")
    progress_interval_seconds: float = Field(
        default=1.0, description="Minimum pause between two progress writes of one job."
    )


class ApiSettings(BaseSettings):
    """How the HTTP services present themselves."""

    model_config = _CONFIG

    public_status_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL of the status API, used in `Location` headers and links.",
    )
