"""Fixtures of the status API tests: a running app and a maker of jobs in any state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from status_api.app import create_app
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.models import LlmCall, LlmResult, Transcript
from voxflow.jobs.states import JobStatus

WORKER = "test-worker"
LEASE = timedelta(minutes=5)
DURATION = 3663.5
SEGMENTS: list[dict[str, Any]] = [
    {"id": 0, "start": 0.0, "end": 2.5, "text": " Hello there."},
    {"id": 1, "start": 61.04, "end": 65.5, "text": " Fish & <chips>."},
    {"id": 2, "start": 3661.25, "end": 3663.0, "text": " General Kenobi."},
]
TEXT = "Hello there. Fish & <chips>. General Kenobi."


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The status API with its lifespan running, configured from the test environment."""
    with TestClient(create_app()) as running:
        yield running


@dataclass
class JobMaker:
    """Creates committed jobs for one tenant and moves them through the real lifecycle."""

    sessions: sessionmaker[Session]
    tenant: str

    def queued(self, count: int = 1, tasks: Sequence[str] = ()) -> list[uuid.UUID]:
        """Create `count` queued jobs in one transaction (so they share `created_at`)."""
        ids = [uuid.uuid4() for _ in range(count)]
        with session_scope(self.sessions) as session:
            for job_id in ids:
                service.create_job(
                    session,
                    job_id=job_id,
                    tenant=self.tenant,
                    options={"tasks": list(tasks)} if tasks else {},
                    source_key=f"{self.tenant}/{job_id}",
                    source_filename="meeting.wav",
                    size_bytes=123_456,
                    duration_seconds=DURATION,
                    content_sha256="ab" * 32,
                    max_attempts=3,
                )
        return ids

    def claim(self, job_id: uuid.UUID, waiting: JobStatus = JobStatus.QUEUED) -> None:
        """Start the stage after `waiting`, as a worker would."""
        with session_scope(self.sessions) as session:
            assert service.claim(session, job_id, waiting, WORKER, LEASE) is not None

    def transcribe(self, job_id: uuid.UUID, *, diarized: bool = False) -> None:
        """Claim a queued job and store its transcript (with two speakers if `diarized`)."""
        self.claim(job_id)
        self.finish_transcription(job_id, diarized=diarized)

    def publish(self, job_id: uuid.UUID, position: int) -> None:
        """Publish one of SEGMENTS while transcribing, as the worker's heartbeat does."""
        with session_scope(self.sessions) as session:
            service.heartbeat(session, job_id, JobStatus.TRANSCRIBING, WORKER, LEASE,
                              segments=[(position, SEGMENTS[position])])  # fmt: skip

    def finish_transcription(self, job_id: uuid.UUID, *, diarized: bool = False) -> None:
        """Store the transcript of a job this worker transcribes."""
        segments, speakers = SEGMENTS, None
        if diarized:
            segments = [{**s, "speaker": "AB"[i % 2]} for i, s in enumerate(SEGMENTS)]
            speakers = [{"label": "A", "name": None, "talk_seconds": 4.25},
                        {"label": "B", "name": None, "talk_seconds": 4.46}]  # fmt: skip
        transcript = Transcript(
            job_id=job_id,
            language="en",
            language_probability=0.97,
            duration_seconds=DURATION,
            text=TEXT,
            segments=segments,
            speakers=speakers,
            model="tiny.en",
            processing_seconds=1.5,
        )
        with session_scope(self.sessions) as session:
            service.finish_transcription(session, job_id, WORKER, transcript)

    def add_result(
        self, job_id: uuid.UUID, task: str, tokens_in: int, tokens_out: int, cost: str
    ) -> None:
        """Store one LLM output for a generating job."""
        result = LlmResult(
            job_id=job_id,
            task=task,
            provider="local",
            model="echo-1",
            output=f"{task} output",
            output_json={"items": [task]} if task == "action_items" else None,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=Decimal(cost),
            latency_ms=42,
            cached=task == "diary",
        )
        with session_scope(self.sessions) as session:
            service.add_llm_result(session, job_id, WORKER, result, LEASE)

    def add_call(self, job_id: uuid.UUID, task: str, outcome: str, cost: str = "0") -> None:
        """Record one LLM call (as the router's attempts are recorded)."""
        call = LlmCall(
            job_id=job_id, tenant=self.tenant, task=task, deployment="gpt", provider="openai",
            model="gpt-test", outcome=outcome, error=None if outcome == "ok" else "it broke",
            tokens_in=10, tokens_out=5, cost_usd=Decimal(cost), latency_ms=7,
        )  # fmt: skip
        with session_scope(self.sessions) as session:
            repository.add_llm_calls(session, [call])

    def finish_generation(self, job_id: uuid.UUID) -> None:
        """Complete a generating job."""
        with session_scope(self.sessions) as session:
            service.finish_generation(session, job_id, WORKER)

    def fail(self, job_id: uuid.UUID, source: JobStatus, code: str, message: str) -> None:
        """Fail a job that is in `source`."""
        with session_scope(self.sessions) as session:
            assert service.fail(session, job_id, source, code, message, actor=WORKER)


@pytest.fixture
def jobs(sessions: sessionmaker[Session], tenant: str) -> JobMaker:
    """Job maker for the test's tenant."""
    return JobMaker(sessions, tenant)
