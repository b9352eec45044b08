"""The `voxflow.transcribe` task: one job's audio becomes its transcript."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Task

from transcription_worker.decode import shutdown_decoder, start_decoder
from transcription_worker.engine import WhisperEngine
from transcription_worker.memory import return_freed_memory
from transcription_worker.settings import TranscriptionWorkerSettings
from transcription_worker.transcription_stage import transcribe_job
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.queue.celery_app import make_celery
from voxflow.queue.names import TRANSCRIBE_TASK
from voxflow.worker.identity import worker_id
from voxflow.worker.lease import Heartbeat
from voxflow.worker.process import install_process_hooks, worker_runtime
from voxflow.worker.stage_runner import run_stage

log = logging.getLogger(__name__)

app = make_celery(name="transcription_worker")

# Jobs longer than this give the heap's free pages back when they end (memory.py). Short
# ones do not: trimming costs tens of milliseconds, 10 % of a voice note's time, and their
# buffers are small.
TRIM_AFTER_SECONDS = 60.0


@lru_cache(maxsize=1)
def settings() -> TranscriptionWorkerSettings:
    """This process's settings."""
    return TranscriptionWorkerSettings()


@lru_cache(maxsize=1)
def engine() -> WhisperEngine:
    """This process's Whisper engine (models stay loaded between tasks)."""
    return WhisperEngine(settings(), settings())


def preload() -> None:
    """Load the default model and start the decoder before the first task arrives."""
    start_decoder()
    engine().preload()


install_process_hooks(app, on_start=preload, on_stop=shutdown_decoder)


def _transcribe(job: Job, heartbeat: Heartbeat) -> None:
    try:
        transcribe_job(job, heartbeat, runtime=worker_runtime(), config=settings(), engine=engine())
    finally:
        if job.duration_seconds > TRIM_AFTER_SECONDS:
            return_freed_memory()  # so one long recording does not raise the next one's peak


@app.task(name=TRANSCRIBE_TASK, bind=True)
def transcribe(self: Task[Any, Any], job_id: str) -> str:
    """Transcribe one job; safe to deliver twice (the claim is conditional)."""
    owner = worker_id("transcription", self.request.id)
    return run_stage(job_id, JobStatus.QUEUED, owner, "transcription_failed", _transcribe)
