"""Settings of the transcription worker."""

from __future__ import annotations

from voxflow.settings import TranscriptionSettings
from voxflow.worker.runtime import WorkerSettings


class TranscriptionWorkerSettings(WorkerSettings, TranscriptionSettings):
    """Everything the transcription worker reads from the environment (prefix VOXFLOW_)."""
