"""Settings fragments shared by every service; each service composes the ones it needs.

Every field is read from the environment with the ``VOXFLOW_`` prefix (``database_url`` is
``VOXFLOW_DATABASE_URL``) or from a ``.env`` file in the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_CONFIG = SettingsConfigDict(env_prefix="VOXFLOW_", env_file=".env", extra="ignore")


class DatabaseSettings(BaseSettings):
    """Where the job database lives."""

    model_config = ENV_CONFIG

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql+psycopg://...). Unset: `voxflow run` starts "
        "an embedded PostgreSQL and passes its URL to every service.",
    )
    database_pool_size: int = Field(
        default=10,
        gt=0,
        description="Database connections each API process keeps open. A request holds one "
        "only while it runs; when all are busy, requests wait for one (none are opened beyond "
        "this: opening a connection costs more than waiting for one).",
    )


class RedisSettings(BaseSettings):
    """Where the Celery broker lives."""

    model_config = ENV_CONFIG

    redis_url: str | None = Field(
        default=None,
        description="Redis URL used as the Celery broker (redis://host:6379/0 or "
        "redis+socket:///path). Unset: `voxflow run` starts an embedded Redis.",
    )


class StorageSettings(BaseSettings):
    """Where uploaded audio is kept."""

    model_config = ENV_CONFIG

    data_dir: Path = Field(
        default=Path(".voxflow"),
        description="Directory for embedded servers' data and, by default, stored audio.",
    )
    storage_backend: str = Field(
        default="local",
        description="Storage backend: `local` (a directory every process can read) or `s3` "
        "(an S3-compatible bucket, for workers and APIs that share no disk).",
    )
    storage_root: Path | None = Field(
        default=None,
        description="Root directory of the local storage backend (default: DATA_DIR/storage).",
    )
    s3_bucket: str | None = Field(
        default=None, description="S3 backend: bucket holding the audio (required for `s3`)."
    )
    s3_prefix: str = Field(
        default="",
        description="S3 backend: key prefix inside the bucket (e.g. `voxflow/`), so that one "
        "bucket can serve several deployments.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 backend: endpoint of an S3-compatible server (MinIO: "
        "http://minio:9000). Unset: AWS S3.",
    )
    s3_region: str | None = Field(
        default=None,
        description="S3 backend: the bucket's region. Unset: boto3's default (AWS_REGION, "
        "AWS_DEFAULT_REGION, ~/.aws/config), else us-east-1.",
    )
    s3_access_key_id: SecretStr | None = Field(
        default=None,
        description="S3 backend: access key id. Unset (with the secret): boto3's default "
        "credential chain (environment, IAM role, IRSA or pod identity on Kubernetes).",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 backend: secret access key, set together with the key id."
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="S3 backend: `path` (endpoint/bucket/key; MinIO and most self-hosted "
        "servers), `virtual` (bucket.endpoint/key) or `auto` (boto3 decides).",
    )
    s3_multipart_threshold_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="S3 backend: files at least this large are uploaded in parts, several at "
        "a time.",
    )
    s3_multipart_chunk_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        le=5 * 1024 * 1024 * 1024,
        description="S3 backend: size of one part of a multipart upload (S3 allows 5 MiB to "
        "5 GiB); a streamed write buffers one part in memory.",
    )
    s3_server_side_encryption: Literal["AES256", "aws:kms", "aws:kms:dsse"] | None = Field(
        default=None,
        description="S3 backend: server-side encryption asked for on every upload. Unset: "
        "the bucket's default encryption.",
    )
    s3_sse_kms_key_id: str | None = Field(
        default=None,
        description="S3 backend: KMS key for `aws:kms` encryption. Unset: the account's "
        "default S3 key.",
    )

    def resolved_storage_root(self) -> Path:
        """Return the storage root, defaulting to a folder under the data directory."""
        return self.storage_root or self.data_dir / "storage"


class JobSettings(BaseSettings):
    """How the job lifecycle behaves: leases, retries, sweeping."""

    model_config = ENV_CONFIG

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
    progress_interval_seconds: float = Field(
        default=1.0, description="Minimum pause between two progress writes of one job."
    )


class UploadSettings(BaseSettings):
    """What the ingestion API accepts."""

    model_config = ENV_CONFIG

    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024, description="Largest accepted upload in bytes."
    )
    max_audio_seconds: float = Field(
        default=4 * 3600.0, description="Longest accepted recording in seconds."
    )
    probe_timeout_seconds: float = Field(
        default=120.0, description="Time allowed to probe and decode-check one upload."
    )
    upload_deadline_seconds: float = Field(
        default=900.0,
        gt=0,
        description="Whole-request deadline for an upload's body (a 408 `upload_too_slow` "
        "beyond it).",
    )
    max_options_bytes: int = Field(
        default=16 * 1024, description="Largest accepted `options` form field in bytes."
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Where uploads are spooled while checked (default: system temp); "
        "created at start when missing.",
    )


class ModelSettings(BaseSettings):
    """Which Whisper models jobs may use (read by the ingestion API and the worker)."""

    model_config = ENV_CONFIG

    whisper_model: str = Field(
        default="tiny.en",
        description="Default Whisper model: a name (`tiny.en` uses the bundled offline copy; "
        "others such as `large-v3`, `distil-large-v3` or `turbo` are downloaded by "
        "faster-whisper) or a local CTranslate2 directory.",
    )
    allowed_models: list[str] = Field(
        default=[],
        description="Other models a job may ask for (JSON list); the default is always allowed.",
    )

    def models_allowed(self) -> list[str]:
        """The default model first, then the other allowed ones."""
        return [self.whisper_model, *(m for m in self.allowed_models if m != self.whisper_model)]


class ApiSettings(BaseSettings):
    """How the HTTP services present themselves."""

    model_config = ENV_CONFIG

    public_status_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL of the status API, used in `Location` headers and links.",
    )
    public_ingest_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the ingestion API as a browser reaches it: the web console "
        "(served by the status API) uploads there.",
    )


class AuthSettings(BaseSettings):
    """How the HTTP services check API keys."""

    model_config = ENV_CONFIG

    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long an API process trusts a key it has checked without asking the "
        "database again: a revoked key stops working everywhere within this many seconds. "
        "0: every request looks its key up.",
    )


class MetricsSettings(BaseSettings):
    """Where a process group's Prometheus metrics are kept and served (docs/observability.md)."""

    model_config = ENV_CONFIG

    metrics_dir: Path | None = Field(
        default=None,
        description="Directory the processes of one group (an API's uvicorn workers, a Celery "
        "worker's main and pool processes) share for their metric files. PROMETHEUS_MULTIPROC_DIR, "
        "when set, wins. Unset: DATA_DIR/metrics/<host>-<process group id>. Never share one "
        "directory between two groups or two hosts.",
    )
    metrics_port: int = Field(
        default=0,
        description="Port of the /metrics endpoint of a Celery worker's main process or the "
        "sweeper (0: no endpoint). The APIs serve /metrics on their own port instead.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the worker and sweeper /metrics endpoint listens on (0.0.0.0 in "
        "containers, so that Prometheus can reach it).",
    )
