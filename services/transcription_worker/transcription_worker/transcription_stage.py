"""The transcription stage of one job, or of a micro-batch of short jobs led by one job.

`run_stage` (voxflow.worker.stage_runner) claims the job and settles its failures; a batch
mate's failures are settled by the same `retry_or_fail`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from transcription_worker import microbatch, speakers
from transcription_worker.decode import DecodeError, decode_to_file
from transcription_worker.diarization.base import DiarizerUnavailableError, name_speakers
from transcription_worker.engine import ModelNotAllowedError, TranscriptionResult, WhisperEngine
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionWorkerSettings
from voxflow.db import session_scope
from voxflow.jobs import service, telemetry
from voxflow.jobs.errors import JobError, LeaseLostError, PermanentJobError
from voxflow.jobs.models import Job, Transcript
from voxflow.jobs.states import JobStatus
from voxflow.observability import metrics, tracing
from voxflow.worker.lease import Heartbeat
from voxflow.worker.process import WorkerRuntime
from voxflow.worker.stage_runner import retry_or_fail

log = logging.getLogger(__name__)

# Decoding runs hundreds of times faster than real time; these bounds only catch a hang.
DECODE_TIMEOUT_BASE = 30.0
DECODE_TIMEOUT_FACTOR = 0.1
REFERENCE_SECONDS = 30.0  # a known speaker's clip lasts at most this (checked at upload)
# The error code of a failure that names none (the task passes it to run_stage too).
FAILURE_CODE = "transcription_failed"


def transcribe_job(
    job: Job,
    heartbeat: Heartbeat,
    *,
    runtime: WorkerRuntime,
    config: TranscriptionWorkerSettings,
    engine: WhisperEngine,
) -> None:
    """Transcribe a claimed job (with short queued jobs alongside, when it qualifies)."""
    if job.duration_seconds > config.max_audio_seconds:
        # The limit may have been lowered since the upload was accepted.
        raise PermanentJobError(
            f"The recording lasts {job.duration_seconds:.0f} s, over this worker's limit "
            f"of {config.max_audio_seconds:.0f} s.",
            "audio_too_long",
        )
    model_name = str(job.options.get("model") or config.whisper_model)
    options = DecodeOptions.resolve(config, job.options, job.duration_seconds)
    key = microbatch.batch_key(job, model_name, options)
    if key is not None and microbatch.qualifies(job, config):
        lease = timedelta(seconds=config.lease_seconds)
        mates = microbatch.claim_mates(
            runtime.sessions, job, key, heartbeat.owner, lease, config, config
        )
        if mates:
            try:
                _run_batch(job, heartbeat, mates, runtime, config, engine, model_name, options)
            except SystemExit:
                # The worker is stopping (see run_stage): the mates go back with the leader.
                owner = heartbeat.owner
                for mate in mates:
                    with session_scope(runtime.sessions) as session:
                        service.release(session, mate.id, JobStatus.TRANSCRIBING, owner,
                                        "worker shutdown", refund=True)  # fmt: skip
                raise
            return
    _run_single(job, heartbeat, runtime, config, engine, model_name, options)


def _run_single(
    job: Job,
    heartbeat: Heartbeat,
    runtime: WorkerRuntime,
    config: TranscriptionWorkerSettings,
    engine: WhisperEngine,
    model_name: str,
    options: DecodeOptions,
) -> None:
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
        with _decoded(runtime, job) as audio:
            result = engine.transcribe(
                audio, model_name=model_name, options=options, on_segment=on_segment,
                on_decoded=lambda segment: heartbeat.publish(segment["id"], segment),
            )  # fmt: skip
            if job.options.get("diarize"):
                heartbeat.check()
                result = _with_speakers(runtime, config, job, audio, result)
    except ModelNotAllowedError as exc:
        raise PermanentJobError(str(exc), "model_not_allowed") from exc
    heartbeat.check()
    _finish(runtime, job, heartbeat.owner, result, options)


def _run_batch(
    leader: Job,
    heartbeat: Heartbeat,
    mates: list[Job],
    runtime: WorkerRuntime,
    config: TranscriptionWorkerSettings,
    engine: WhisperEngine,
    model_name: str,
    options: DecodeOptions,
) -> None:
    """One batched pass over the leader and its mates; each job keeps its own outcome."""
    owner = heartbeat.owner
    members = [leader, *mates]
    log.info("micro-batch of %d jobs led by %s", len(members), leader.id)
    with ExitStack() as stack:
        beats = {leader.id: heartbeat}
        for mate in mates:
            beats[mate.id] = stack.enter_context(
                Heartbeat(
                    runtime.sessions, mate.id, JobStatus.TRANSCRIBING, owner,
                    lease=timedelta(seconds=config.lease_seconds),
                    interval=config.heartbeat_seconds,
                    progress_interval=config.progress_interval_seconds,
                )
            )  # fmt: skip
        audio: dict[Any, Any] = {}
        errors: dict[Any, JobError] = {}
        for job in members:
            try:
                audio[job.id] = stack.enter_context(_decoded(runtime, job))
            except JobError as exc:
                errors[job.id] = exc
        ready = [job for job in members if job.id in audio]
        # One limit for the pass, as for a single job of all the members' audio together.
        limit = config.transcription_timeout_base_seconds + (
            config.transcription_timeout_factor * sum(job.duration_seconds for job in ready)
        )
        deadline = time.monotonic() + limit

        def on_segment(index: int, fraction: float) -> None:
            heartbeat.check()  # the leader's lease; mates' losses are handled at the end
            beats[ready[index].id].progress = min(99, int(fraction * 100))
            if time.monotonic() > deadline:
                # Not permanent: each member goes back to the queue under its attempt cap.
                raise JobError(
                    f"The micro-batch took longer than its limit of {limit:.0f} s.",
                    "transcription_timeout",
                )

        def on_decoded(index: int, segment: dict[str, Any]) -> None:
            beats[ready[index].id].publish(segment["id"], segment)

        try:
            results = engine.transcribe_batch(
                [audio[job.id] for job in ready], model_name=model_name, options=options,
                on_segment=on_segment, on_decoded=on_decoded,
            )  # fmt: skip
        except Exception as exc:
            for mate in ready:
                if mate is not leader:  # the leader's failure is settled by run_stage
                    retry_or_fail(runtime.sessions, mate, JobStatus.TRANSCRIBING, owner, exc,
                                  FAILURE_CODE)  # fmt: skip
            raise
        for job, result in zip(ready, results, strict=True):
            try:
                with _own_trace(job, leader):
                    _finish(runtime, job, owner, result, options)
            except LeaseLostError:
                log.warning("lost the lease on batched job %s", job.id)
        for mate in mates:
            if mate.id in errors:
                retry_or_fail(runtime.sessions, mate, JobStatus.TRANSCRIBING, owner,
                              errors[mate.id], FAILURE_CODE)  # fmt: skip
    if leader.id in errors:
        raise errors[leader.id]


@contextmanager
def _own_trace(job: Job, leader: Job) -> Iterator[None]:
    """Store a mate's transcript in its own trace (linked to the leader's stage span)."""
    if job is leader:
        yield
        return
    attributes = {**telemetry.job_attributes(job), "voxflow.stage": JobStatus.TRANSCRIBING.value,
                  "voxflow.batch_leader": str(leader.id)}  # fmt: skip
    with tracing.job_span("stage transcribing", job.trace_context, attributes):
        yield


def _with_speakers(
    runtime: WorkerRuntime,
    config: TranscriptionWorkerSettings,
    job: Job,
    audio: Any,
    result: TranscriptionResult,
) -> TranscriptionResult:
    """The transcript with its speakers: who spoke when (the job asked for `diarize`), laid
    over the segments, and the known speakers' names given to the voices that match."""
    asked = job.options
    started = time.perf_counter()
    try:
        backend = speakers.diarizer(config)
        found = backend.diarize(
            np.asarray(audio, dtype=np.float32), speakers=asked.get("speakers"),
            min_speakers=asked.get("min_speakers"), max_speakers=asked.get("max_speakers"),
        )  # fmt: skip
        known = {}
        for entry in asked.get("known_speakers") or []:
            with _decoded_key(runtime, str(entry["key"]), REFERENCE_SECONDS) as clip:
                known[str(entry["name"])] = backend.voice_print(np.asarray(clip, np.float32))
    except DiarizerUnavailableError as exc:
        raise PermanentJobError(
            f"Diarization is unavailable on this worker: {exc}", "diarization_unavailable"
        ) from exc
    names = name_speakers(found, known, config.known_speaker_threshold)
    attributed = speakers.attribute(result.segments, found.turns, names)
    elapsed = time.perf_counter() - started
    log.info("job %s diarized: %d speaker(s), %d named, in %.2fs",
             job.id, len(attributed.speakers), len(names), elapsed)  # fmt: skip
    return dataclasses.replace(
        result,
        segments=attributed.segments,
        speakers=attributed.speakers,
        processing_seconds=result.processing_seconds + elapsed,
    )


@contextmanager
def _decoded(runtime: WorkerRuntime, job: Job) -> Iterator[Any]:
    """The job's audio as 16 kHz float32 samples, decoded in a child process.

    A decoder crash or hang fails this job with a code instead of killing the worker (which
    Celery would redeliver until the attempt cap), and the samples are a read-only memory
    map of a scratch file rather than another copy in the worker's memory.
    """
    with _decoded_key(runtime, job.source_key, job.duration_seconds) as samples:
        yield samples


@contextmanager
def _decoded_key(runtime: WorkerRuntime, key: str, duration: float) -> Iterator[Any]:
    """A stored recording (about `duration` seconds) decoded as `_decoded` does."""
    with tempfile.TemporaryDirectory(prefix="voxflow-pcm-") as scratch:
        try:
            with runtime.storage.local_copy(key) as path:
                decoded = decode_to_file(
                    path, Path(scratch) / "audio.f32",
                    timeout=DECODE_TIMEOUT_BASE + duration * DECODE_TIMEOUT_FACTOR,
                )  # fmt: skip
        except FileNotFoundError as exc:
            raise PermanentJobError(
                "The uploaded audio is missing from storage.", "source_missing"
            ) from exc
        except DecodeError as exc:
            raise PermanentJobError(exc.message, exc.code) from exc
        yield decoded.array()


def _finish(
    runtime: WorkerRuntime,
    job: Job,
    owner: str,
    result: TranscriptionResult,
    options: DecodeOptions,
) -> None:
    # The work is done whether or not the commit below still finds the job ours.
    metrics.record_transcription(
        result.model, result.mode, result.duration_seconds, result.processing_seconds
    )
    row = Transcript(
        job_id=job.id,
        language=result.language,
        language_probability=result.language_probability,
        duration_seconds=result.duration_seconds,
        text=result.text,
        segments=result.segments,
        speakers=result.speakers,
        model=result.model,
        decode_options={**dataclasses.asdict(options), "mode": result.mode},
        processing_seconds=result.processing_seconds,
    )
    with session_scope(runtime.sessions) as session:
        service.finish_transcription(session, job.id, owner, row)
    log.info(
        "job %s transcribed (%s): %.1fs of audio in %.2fs",
        job.id, result.mode, result.duration_seconds, result.processing_seconds,
    )  # fmt: skip
