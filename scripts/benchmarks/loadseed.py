"""Data for the load benchmark: a tenant's finished jobs, a 1-hour transcript, a 15 s note."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import av
import redis
from sqlalchemy import delete

from scripts.benchmarks.harness import SAMPLES
from voxflow.apikeys import issue_key
from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.embedded import redis_client_url
from voxflow.jobs.models import Job, JobEvent, LlmCall, LlmResult, Transcript
from voxflow.queue.names import TRANSCRIPTION_QUEUE

SAMPLE = SAMPLES / "meeting.ogg"
READ_TENANT = "bench"
UPLOAD_TENANT = "bench-uploads"
JOBS = 300  # the read tenant's finished jobs (list pages show the newest 20)
HOUR_SEGMENTS = 900  # about what Whisper makes of an hour of speech: one segment per 4 s

_SCRIPT = (
    "we should ship the release on friday after the review and the team agreed to move the "
    "budget meeting so that everyone can look at the numbers before we decide what to cut"
)
_WORDS = _SCRIPT.split()


@dataclass
class Seeded:
    """What the scenarios request, and the keys to request it with."""

    database_url: str
    redis_url: str
    key: str
    upload_key: str
    job_id: uuid.UUID
    hour_id: uuid.UUID

    def clear_uploads(self) -> None:
        """Forget the jobs an upload phase made (and their messages): phases start alike."""
        engine = make_engine(self.database_url, pool_size=1)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                session.execute(delete(Job).where(Job.tenant == UPLOAD_TENANT))
        finally:
            engine.dispose()
        client = redis.Redis.from_url(redis_client_url(self.redis_url))
        client.delete(TRANSCRIPTION_QUEUE)
        client.close()


def _segments(count: int, seconds: float, rng: random.Random) -> list[dict[str, object]]:
    step = seconds / count
    segments: list[dict[str, object]] = []
    for index in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
        segments.append({
            "id": index, "seek": int(index * step * 100), "start": round(index * step, 3),
            "end": round((index + 1) * step - 0.2, 3), "text": " ".join(words).capitalize() + ".",
            "tokens": [rng.randint(200, 50000) for _ in range(len(words) + 2)],
            "temperature": 0.0, "avg_logprob": -0.25, "compression_ratio": 1.4,
            "no_speech_prob": 0.01,
        })  # fmt: skip
    return segments


def _finished_job(tenant: str, created: datetime, seconds: float, segments: int,
                  rng: random.Random) -> list[object]:  # fmt: skip
    """A completed job with its timeline, transcript and a summary, as the workers leave it."""
    job_id = uuid.uuid4()
    job = Job(
        id=job_id, tenant=tenant, status="completed", progress=100,
        options={"tasks": ["summary"], "model": "tiny.en"}, trace_context={},
        source_key=f"{tenant}/{job_id}/source", source_filename="standup.m4a",
        size_bytes=int(seconds * 4000), duration_seconds=seconds, content_sha256="0" * 64,
        attempts=0, max_attempts=3, created_at=created, updated_at=created,
        transcription_started_at=created, transcribed_at=created, generation_started_at=created,
        finished_at=created,
    )  # fmt: skip
    parts = _segments(segments, seconds, rng)
    rows: list[object] = [job]
    for source, target in ((None, "queued"), ("queued", "transcribing"),
                           ("transcribing", "transcribed"), ("transcribed", "generating"),
                           ("generating", "completed")):  # fmt: skip
        rows.append(JobEvent(job_id=job_id, at=created, from_status=source, to_status=target,
                             actor="bench", detail={}))  # fmt: skip
    rows.append(Transcript(
        job_id=job_id, language="en", language_probability=1.0, duration_seconds=seconds,
        text=" ".join(str(s["text"]) for s in parts), segments=parts, model="tiny.en",
        decode_options={}, processing_seconds=seconds / 50,
    ))  # fmt: skip
    rows.append(LlmResult(job_id=job_id, task="summary", provider="local", model="local",
                          output="The team agreed to ship on Friday.", tokens_in=900,
                          tokens_out=40, cost_usd=Decimal("0.0012"), latency_ms=800))  # fmt: skip
    rows.append(LlmCall(job_id=job_id, tenant=tenant, task="summary", deployment="local",
                        provider="local", model="local", outcome="ok", tokens_in=900,
                        tokens_out=40, cost_usd=Decimal("0.0012"), latency_ms=800))  # fmt: skip
    return rows


def seed(database_url: str, redis_url: str) -> Seeded:
    """Keys for both tenants, `JOBS` finished jobs and one 1-hour job of the read tenant."""
    rng = random.Random(15)
    engine = make_engine(database_url, pool_size=1)
    now = datetime.now(UTC)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            key = issue_key(session, READ_TENANT, "load").secret
            upload_key = issue_key(session, UPLOAD_TENANT, "load").secret
            hour = _finished_job(READ_TENANT, now - timedelta(days=2), 3600.0, HOUR_SEGMENTS, rng)
            session.add_all(hour)
            last: list[object] = []
            for index in range(JOBS):
                last = _finished_job(READ_TENANT, now - timedelta(minutes=JOBS - index), 45.0,
                                     12, rng)  # fmt: skip
                session.add_all(last)
            hour_job, job = hour[0], last[0]
            assert isinstance(hour_job, Job)
            assert isinstance(job, Job)
            return Seeded(database_url, redis_url, key, upload_key, job.id, hour_job.id)
    finally:
        engine.dispose()


def multipart_note(directory: Path, seconds: float) -> tuple[Path, str]:
    """A multipart body with a `seconds`-long Ogg/Vorbis note; returns (file, content type)."""
    note = directory / "note.ogg"
    # The first `seconds` of the meeting sample, its packets copied (no re-encoding).
    with av.open(str(SAMPLE)) as source, av.open(str(note), "w", format="ogg") as target:
        audio = source.streams.audio[0]
        stream = target.add_stream_from_template(audio)
        for packet in source.demux(audio):
            if packet.dts is None or packet.pts is None:
                continue
            if packet.pts * packet.time_base >= seconds:
                break
            packet.stream = stream
            target.mux(packet)
    boundary = f"voxflow-load-{uuid.uuid4().hex}"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"note.ogg\"\r\nContent-Type: audio/ogg\r\n\r\n").encode()  # fmt: skip
    tail = (f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n"
            f'{{"tasks": ["summary"]}}\r\n--{boundary}--\r\n').encode()  # fmt: skip
    body = directory / "upload.body"
    body.write_bytes(head + note.read_bytes() + tail)
    return body, f"multipart/form-data; boundary={boundary}"
