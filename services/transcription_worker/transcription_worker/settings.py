"""Settings of the transcription worker."""

from __future__ import annotations

from voxflow.settings import ModelSettings, TranscriptionSettings
from voxflow.worker.runtime import WorkerSettings


class TranscriptionWorkerSettings(WorkerSettings, ModelSettings, TranscriptionSettings):
    """Everything the transcription worker reads from the environment (prefix VOXFLOW_)."""
