"""Settings of the transcription worker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from voxflow.settings import ModelSettings, TranscriptionSettings, UploadSettings
from voxflow.worker.runtime import WorkerSettings


class DiarizationSettings(BaseSettings):
    """Who spoke when: the backend of jobs that ask for `diarize` (docs/diarization.md)."""

    model_config = SettingsConfigDict(env_prefix="VOXFLOW_", env_file=".env", extra="ignore")

    diarization_backend: Literal["offline", "pyannote"] = Field(
        default="offline",
        description="`offline`: GE2E speaker embeddings and spectral clustering on the CPU, "
        "no download, no token. `pyannote`: pyannote.audio's pipeline (GPU image; needs "
        "VOXFLOW_PYANNOTE_MODEL_DIR).",
    )
    pyannote_model_dir: Path | None = Field(
        default=None,
        description="A local copy of pyannote's speaker-diarization-community-1 (the "
        "pyannote backend loads it from there, offline).",
    )
    diarization_max_speakers: int = Field(
        default=8,
        ge=1,
        le=32,
        description="The most speakers the offline backend estimates when a job gives no bound.",
    )
    known_speaker_threshold: float = Field(
        default=0.75,
        gt=0,
        lt=1,
        description="Cosine similarity a speaker's voice needs with a known speaker's reference "
        "clip to take its name.",
    )


class TranscriptionWorkerSettings(
    WorkerSettings, ModelSettings, TranscriptionSettings, UploadSettings, DiarizationSettings
):
    """Everything the transcription worker reads from the environment (prefix VOXFLOW_)."""
