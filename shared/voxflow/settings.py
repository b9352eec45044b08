"""Settings fragments shared by every service; each service composes the ones it needs.

Every field is read from the environment with the ``VOXFLOW_`` prefix (``database_url`` is
``VOXFLOW_DATABASE_URL``) or from a ``.env`` file in the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voxflow.webhooks.signing import decode_secret

_CONFIG = SettingsConfigDict(env_prefix="VOXFLOW_", env_file=".env", extra="ignore")


class DatabaseSettings(BaseSettings):
    """Where the job database lives."""

    model_config = _CONFIG

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
    progress_interval_seconds: float = Field(
        default=1.0, description="Minimum pause between two progress writes of one job."
    )


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

    model_config = _CONFIG

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


class TranscriptionSettings(BaseSettings):
    """How the transcription worker runs Whisper (jobs may override the decoding options)."""

    model_config = _CONFIG

    whisper_device: str = Field(
        default="auto", description="`auto` (CUDA when present), `cpu` or `cuda`."
    )
    whisper_device_index: list[int] = Field(
        default=[0], description="GPU indexes to use (JSON list; one worker process per GPU)."
    )
    whisper_compute_type: str = Field(
        default="auto",
        description="CTranslate2 compute type; `auto` is float16 on GPU and int8 on CPU.",
    )
    whisper_cpu_threads: int = Field(default=0, description="CPU threads (0: library default).")
    whisper_mode: Literal["auto", "batched", "sequential"] = Field(
        default="auto",
        description="`batched` (BatchedInferencePipeline), `sequential`, or `auto` (the "
        "default): batched from WHISPER_BATCHED_MIN_SECONDS of audio, sequential below.",
    )
    whisper_batched_min_seconds: float = Field(
        default=0.0,
        ge=0.0,
        description="In `auto` mode, shortest audio decoded in batched mode (0: all). With "
        "WHISPER_TRIM_WINDOWS off, 30 keeps the punctuation of short notes, which batched "
        "decoding of a padded window often drops.",
    )
    whisper_batch_size: int = Field(
        default=16,
        ge=1,
        description="Clips (30 s chunks) decoded together in batched mode. 16 decodes a "
        "5-minute recording in one generation loop: 1.06x faster than faster-whisper's 8 "
        "on a CPU, same transcript (scripts/benchmarks/batches.py).",
    )
    whisper_first_batch_size: int = Field(
        default=1,
        ge=1,
        description="Clips in the first batch of a long recording whose job asked for live "
        "words (`live`), so that they reach the job's stream after that many clips rather "
        "than with the whole batch. Same transcript; on a CPU it costs such a 5-minute "
        "recording about 8% (scripts/benchmarks/ramp.py). Other jobs are not affected.",
    )
    whisper_encode_batch_size: int = Field(
        default=8,
        ge=0,
        description="Clips run through the encoder at once (0: the whole batch). The "
        "encoder's memory grows with it: 8 keeps a batch of 16 at the peak memory of "
        "faster-whisper's batch of 8 (whole, +480 MiB on a 1-hour recording).",
    )
    whisper_trim_windows: bool = Field(
        default=True,
        description="Batched decoding of audio within one 30 s window, and of micro-batches, "
        "encodes each batch over its longest clip (plus the margin, at least the minimum "
        "window) instead of a padded 30 s window: faster, same or lower WER "
        "(docs/transcription.md). Off: faster-whisper's way.",
    )
    whisper_min_window_seconds: float = Field(
        default=15.0,
        ge=1.0,
        le=30.0,
        description="Shortest window a trimmed batch is encoded over (shorter windows make "
        "tiny.en repeat the end of short notes).",
    )
    whisper_window_margin_seconds: float = Field(
        default=1.0,
        ge=0.0,
        le=30.0,
        description="Padding kept after a trimmed batch's longest clip.",
    )
    whisper_beam_size: int = Field(default=5, description="Beam size for decoding.")
    whisper_language: str | None = Field(
        default=None, description="Force this language code (default: detect per job)."
    )
    whisper_vad_filter: bool = Field(
        default=False,
        description="Skip non-speech with Silero VAD. Batched mode uses VAD anyway on audio "
        "longer than one 30 s window, to cut it into chunks.",
    )
    whisper_vad_min_silence_ms: int | None = Field(
        default=None,
        description="Shortest silence VAD cuts at (default: the library's, 2000 ms sequential, "
        "160 ms batched).",
    )
    whisper_vad_threshold: float = Field(default=0.5, description="VAD speech probability.")
    whisper_word_timestamps: bool = Field(
        default=False, description="Word-level timestamps by default (jobs may ask for them)."
    )
    whisper_initial_prompt: str | None = Field(
        default=None, description="Default initial prompt (vocabulary, style) for every job."
    )
    whisper_hotwords: str | None = Field(default=None, description="Default hotwords.")
    whisper_temperatures: list[float] = Field(
        default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        description="Temperature fallback sequence (batched mode uses the first only).",
    )
    whisper_max_loaded_models: int = Field(
        default=1, description="Models kept loaded at once; the least recently used goes."
    )
    whisper_idle_unload_seconds: float = Field(
        default=900.0,
        description="Unload a non-default model unused for this long (checked per task).",
    )
    transcription_timeout_base_seconds: float = Field(
        default=120.0, description="Fixed part of a job's transcription time limit."
    )
    transcription_timeout_factor: float = Field(
        default=3.0,
        description="Seconds allowed per second of audio on top of the fixed part; a job "
        "over its limit fails with `transcription_timeout`.",
    )
    microbatch_max_jobs: int = Field(
        default=8,
        description="Short jobs transcribed together in one batched pass (1 turns "
        "micro-batching off).",
    )
    microbatch_max_seconds: float = Field(
        default=30.0,
        description="Longest audio that joins a micro-batch (at most 30 s, one Whisper window).",
    )
    microbatch_wait_seconds: float = Field(
        default=0.0,
        description="How long a worker waits for more short jobs to fill a micro-batch.",
    )


class ApiSettings(BaseSettings):
    """How the HTTP services present themselves."""

    model_config = _CONFIG

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

    model_config = _CONFIG

    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long an API process trusts a key it has checked without asking the "
        "database again: a revoked key stops working everywhere within this many seconds. "
        "0: every request looks its key up.",
    )


class MetricsSettings(BaseSettings):
    """Where a process group's Prometheus metrics are kept and served (docs/observability.md)."""

    model_config = _CONFIG

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


class WebhookSettings(BaseSettings):
    """Job webhooks: the signing secret, allowed destinations and retries (docs/webhooks.md)."""

    model_config = _CONFIG

    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret that signs webhook deliveries (Standard Webhooks: `whsec_` and the "
        "base64 of 24 to 64 random bytes). The ingestion API refuses a `webhook_url` (422 "
        "`webhooks_disabled`) while it is unset; the worker delivering webhooks needs it too.",
    )
    webhook_allow_private_networks: bool = Field(
        default=False,
        description="Let webhooks go to loopback, private, link-local and other non-public "
        "addresses (checked at upload and before every delivery). Keep false unless every "
        "tenant is trusted.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time allowed to connect, send and read each delivery."
    )
    webhook_retry_base_seconds: float = Field(
        default=30.0, gt=0, description="Pause before the first retry; it doubles per attempt."
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Longest pause between two attempts (a receiver's Retry-After included).",
    )
    webhook_retry_window_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="A delivery is retried until this long after the event, then marked failed.",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_secret(value.get_secret_value())  # raises ValueError with the reason
        return value
