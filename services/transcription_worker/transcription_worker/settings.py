"""Settings of the transcription worker."""

from __future__ import annotations

from voxflow.settings import ModelSettings, TranscriptionSettings, UploadSettings
from voxflow.worker.runtime import WorkerSettings


class TranscriptionWorkerSettings(
    WorkerSettings, ModelSettings, TranscriptionSettings, UploadSettings
):
    """Everything the transcription worker reads from the environment (prefix VOXFLOW_)."""
