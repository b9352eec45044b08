"""Which queued jobs a micro-batch leader claims as mates, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.servers import Servers, scratch_database
from transcription_worker import microbatch
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionWorkerSettings
from voxflow.db import make_engine, session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.migrate import upgrade
from voxflow.storage import source_key

OWNER = "worker-mates"
LEASE = timedelta(minutes=5)


@pytest.fixture
def sessions(servers: Servers) -> Iterator[sessionmaker[Session]]:
    """A database of its own: every queued job in it is a candidate mate."""
    with scratch_database(servers.postgres_admin_url) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            yield sessionmaker(engine, expire_on_commit=False)
        finally:
            engine.dispose()


def queue(sessions: sessionmaker[Session], *durations: float) -> list[uuid.UUID]:
    """Queued jobs of these lengths, created in this order."""
    ids = []
    for duration in durations:
        with session_scope(sessions) as session:
            job_id = uuid.uuid4()
            service.create_job(
                session, job_id=job_id, tenant="mates", options={},
                source_key=source_key("mates", job_id), source_filename="note.ogg",
                size_bytes=1000, duration_seconds=duration, content_sha256="ab" * 32,
                max_attempts=3,
            )  # fmt: skip
        ids.append(job_id)
    return ids


def lead(
    sessions: sessionmaker[Session], job_id: uuid.UUID, config: TranscriptionWorkerSettings
) -> list[Job]:
    """Claim a job as its worker would, then the mates it takes with it."""
    with session_scope(sessions) as session:
        leader = service.claim(session, job_id, JobStatus.QUEUED, OWNER, LEASE)
    assert leader is not None
    options = DecodeOptions.resolve(config, leader.options, leader.duration_seconds)
    key = microbatch.batch_key(leader, config.whisper_model, options)
    assert key is not None
    return microbatch.claim_mates(sessions, leader, key, OWNER, LEASE, config, config)


def test_a_leader_claims_the_mates_closest_to_its_length(
    sessions: sessionmaker[Session],
) -> None:
    config = TranscriptionWorkerSettings(microbatch_max_jobs=4, microbatch_wait_seconds=0)
    long_a, short, long_b, note, middle, other, leader = queue(
        sessions, 28.0, 4.5, 27.0, 6.0, 12.0, 5.5, 5.0
    )
    mates = lead(sessions, leader, config)
    assert {mate.id for mate in mates} == {short, note, other}
    assert all(mate.status == JobStatus.TRANSCRIBING.value for mate in mates)
    # A long leader then takes what is left, nearest in length first.
    assert [mate.id for mate in lead(sessions, long_b, config)] == [long_a, middle]


def test_mates_of_the_same_length_are_taken_oldest_first(
    sessions: sessionmaker[Session],
) -> None:
    config = TranscriptionWorkerSettings(microbatch_max_jobs=3, microbatch_wait_seconds=0)
    leader, first, second, _third = queue(sessions, 10.0, 10.0, 10.0, 10.0)
    assert [mate.id for mate in lead(sessions, leader, config)] == [first, second]
