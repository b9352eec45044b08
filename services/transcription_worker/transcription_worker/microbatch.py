"""Micro-batching: short jobs with the same settings transcribed together in one batched pass.

A 15 s voice note fills one slot of the batched pipeline's batch, so one note at a time
leaves most of the batch empty. A worker that takes a short job therefore claims a few more
queued short jobs (SKIP LOCKED, conditional claims), lays their audio end to end with small
gaps, passes each job's span as `clip_timestamps`, and maps the segments back. Each job
keeps its own result and its own failure; the claimed jobs' own messages find them taken.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from transcription_worker.decode import SAMPLE_RATE
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionSettings
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.settings import ModelSettings

GAP_SECONDS = 0.5
WINDOW_SECONDS = 30.0  # one Whisper window: a longer clip would be cut


def batch_key(job: Job, model: str, options: DecodeOptions) -> tuple[Any, ...] | None:
    """What jobs must share to be decoded together, or None if this one cannot join."""
    # Batched decoding detects the language once for the whole batch: mixing recordings
    # is only safe when the language is forced or the model knows a single language.
    if options.language is None and not model.endswith(".en"):
        return None
    if job.options.get("mode") == "sequential" or job.options.get("diarize"):
        return None  # a diarized job is transcribed on its own, then diarized
    return (
        model,
        options.language,
        options.beam_size,
        options.word_timestamps,
        options.initial_prompt,
        options.hotwords,
    )


def qualifies(job: Job, settings: TranscriptionSettings) -> bool:
    """Tell whether a job is short enough and micro-batching is on (and batching allowed)."""
    longest = min(settings.microbatch_max_seconds, WINDOW_SECONDS)
    return (
        settings.microbatch_max_jobs > 1
        and settings.whisper_mode != "sequential"  # a deployment that forbids batched passes
        and job.duration_seconds <= longest
    )


def claim_mates(
    sessions: sessionmaker[Session],
    leader: Job,
    key: tuple[Any, ...],
    owner: str,
    lease: timedelta,
    settings: TranscriptionSettings,
    models: ModelSettings,
) -> list[Job]:
    """Claim up to `microbatch_max_jobs - 1` queued short jobs that share the leader's key.

    Mates closest to the leader's length come first: the batch is encoded over its longest
    member (trimmed windows), so a 5 s note batched with a 28 s one pays for 29 s. Every job
    still has its own queue message, so one that is never picked as a mate is transcribed
    when its message comes up.
    """
    wanted = settings.microbatch_max_jobs - 1
    longest = min(settings.microbatch_max_seconds, WINDOW_SECONDS)
    deadline = time.monotonic() + settings.microbatch_wait_seconds
    mates: list[Job] = []
    while True:
        with session_scope(sessions) as session:
            candidates = repository.lock_short_queued(
                session,
                exclude=leader.id,
                max_seconds=longest,
                near_seconds=leader.duration_seconds,
                limit=4 * wanted,
            )
            for candidate in candidates:
                if len(mates) >= wanted:
                    break
                model = str(candidate.options.get("model") or models.whisper_model)
                options = DecodeOptions.resolve(settings, candidate.options, 0.0)
                if batch_key(candidate, model, options) != key:
                    continue
                claimed = service.claim(session, candidate.id, JobStatus.QUEUED, owner, lease)
                if claimed is not None:
                    mates.append(claimed)
        if len(mates) >= wanted or time.monotonic() >= deadline:
            return mates
        time.sleep(0.05)


@dataclass(frozen=True)
class Span:
    """Where one job's audio sits in the concatenated batch, in seconds."""

    start: float
    duration: float


def concatenate(parts: list[np.ndarray[Any, Any]]) -> tuple[np.ndarray[Any, Any], list[Span]]:
    """Lay the recordings end to end with silent gaps; return the audio and each one's span."""
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray[Any, Any]] = []
    spans: list[Span] = []
    position = 0
    for audio in parts:
        if pieces:
            pieces.append(gap)
            position += len(gap)
        spans.append(Span(start=position / SAMPLE_RATE, duration=len(audio) / SAMPLE_RATE))
        pieces.append(audio.astype(np.float32, copy=False))
        position += len(audio)
    return np.concatenate(pieces), spans


def assign(segment_start: float, spans: list[Span]) -> int:
    """Index of the span a segment (by its start time) belongs to."""
    for index, span in enumerate(spans):
        if segment_start < span.start + span.duration + GAP_SECONDS / 2:
            return index
    return len(spans) - 1


def shift(segment: dict[str, Any], span: Span) -> dict[str, Any]:
    """Move a segment (and its words) from batch time to its own recording's time."""

    last = math.floor(span.duration * 1000) / 1000  # rounding must not pass the end

    def local(t: float) -> float:
        return min(round(max(t - span.start, 0.0), 3), last)

    moved = {**segment, "start": local(segment["start"]), "end": local(segment["end"])}
    if "words" in segment:
        moved["words"] = [
            {**w, "start": local(w["start"]), "end": local(w["end"])} for w in segment["words"]
        ]
    return moved
