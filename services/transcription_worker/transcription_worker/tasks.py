"""The `voxflow.transcribe` task: one job's audio becomes its transcript."""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import lru_cache
from typing import Any

from celery import Task

from transcription_worker.engine import ModelNotAllowedError, TranscriptionResult, WhisperEngine
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionWorkerSettings
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.errors import PermanentJobError
from voxflow.jobs.models import Job, Transcript
from voxflow.jobs.states import JobStatus
from voxflow.queue.celery_app import make_celery
from voxflow.queue.names import TRANSCRIBE_TASK
from voxflow.worker.identity import worker_id
from voxflow.worker.lease import Heartbeat
from voxflow.worker.runtime import get_runtime, install_process_hooks, run_stage

log = logging.getLogger(__name__)

app = make_celery(name="transcription_worker")


@lru_cache(maxsize=1)
def settings() -> TranscriptionWorkerSettings:
    """This process's settings."""
    return TranscriptionWorkerSettings()


@lru_cache(maxsize=1)
def engine() -> WhisperEngine:
    """This process's Whisper engine (models stay loaded between tasks)."""
    return WhisperEngine(settings(), settings())


def preload() -> None:
    """Load the default model before the first task arrives."""
    engine().preload()


install_process_hooks(app, on_start=preload)


def _transcribe(job: Job, heartbeat: Heartbeat) -> None:
    runtime = get_runtime()
    config = settings()
    model_name = str(job.options.get("model") or config.whisper_model)
    options = DecodeOptions.resolve(config, job.options, job.duration_seconds)
    limit = (
        config.transcription_timeout_base_seconds
        + config.transcription_timeout_factor * job.duration_seconds
    )
    deadline = time.monotonic() + limit

    def on_segment(fraction: float) -> None:
        heartbeat.check()  # stop early if the job was taken from us
        heartbeat.progress = min(99, int(fraction * 100))
        if time.monotonic() > deadline:
            raise PermanentJobError(
                f"Transcription took longer than its limit of {limit:.0f} s.",
                "transcription_timeout",
            )

    try:
        with runtime.storage.local_copy(job.source_key) as path:
            result = engine().transcribe(
                path, model_name=model_name, options=options, on_segment=on_segment
            )
    except FileNotFoundError as exc:
        raise PermanentJobError(
            "The uploaded audio is missing from storage.", "source_missing"
        ) from exc
    except ModelNotAllowedError as exc:
        raise PermanentJobError(str(exc), "model_not_allowed") from exc
    heartbeat.check()
    with session_scope(runtime.sessions) as session:
        service.finish_transcription(session, job.id, heartbeat.owner, _row(job, result, options))
    log.info(
        "job %s transcribed: %.1fs of audio in %.2fs",
        job.id, result.duration_seconds, result.processing_seconds,
    )  # fmt: skip


def _row(job: Job, result: TranscriptionResult, options: DecodeOptions) -> Transcript:
    return Transcript(
        job_id=job.id,
        language=result.language,
        language_probability=result.language_probability,
        duration_seconds=result.duration_seconds,
        text=result.text,
        segments=result.segments,
        model=result.model,
        decode_options=dataclasses.asdict(options),
        processing_seconds=result.processing_seconds,
    )


@app.task(name=TRANSCRIBE_TASK, bind=True)
def transcribe(self: Task[Any, Any], job_id: str) -> str:
    """Transcribe one job; safe to deliver twice (the claim is conditional)."""
    owner = worker_id("transcription", self.request.id)
    return run_stage(job_id, JobStatus.QUEUED, owner, "transcription_failed", _transcribe)
