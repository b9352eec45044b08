"""Redis restarted empty and PostgreSQL stopped under load: every accepted job still ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.chaos.conftest import PlatformFactory
from tests.chaos.harness import (
    SEQUENTIAL,
    RedisServer,
    assert_no_orphaned_audio,
    assert_nothing_lost,
    audit,
    short_notes,
    speech,
    transcribing,
)
from voxflow.apikeys import issue_key
from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.embedded import EmbeddedPostgres
from voxflow.migrate import upgrade
from voxflow.queue.names import TRANSCRIPTION_QUEUE


def test_redis_restarted_empty_after_jobs_were_accepted_loses_nothing(
    make_platform: PlatformFactory,
    broker: RedisServer,
    sessions: sessionmaker[Session],
    auth: dict[str, str],
) -> None:
    platform = make_platform()
    platform.start("ingest_api", "sweeper")  # no worker yet: the messages wait in Redis
    job_ids = [platform.submit(auth, note).json()["id"] for note in short_notes(4)]
    client = broker.client()
    assert client.llen(TRANSCRIPTION_QUEUE) == 4

    broker.kill()
    broker.start()  # empty: every message is gone
    assert client.llen(TRANSCRIPTION_QUEUE) == 0
    platform.start("transcription_worker")
    # The API reconnects too: a job accepted after the restart is queued normally.
    late = platform.submit(auth, short_notes(1)[0])
    assert late.status_code == 202, late.text
    job_ids.append(late.json()["id"])

    platform.wait_terminal(sessions, job_ids, 180)
    result = audit(sessions, job_ids)
    assert_nothing_lost(result, job_ids)
    assert set(result.states.values()) == {"completed"}


def test_workers_ride_out_a_broker_outage_mid_job(
    make_platform: PlatformFactory,
    broker: RedisServer,
    sessions: sessionmaker[Session],
    auth: dict[str, str],
) -> None:
    platform = make_platform()
    platform.start("ingest_api", "transcription_worker", "sweeper")
    running = platform.submit(auth, speech(60), SEQUENTIAL).json()["id"]
    platform.wait_for(lambda: transcribing(sessions, running), 90, "the transcription to start")

    broker.kill()
    # Accepted while Redis is down: the row is committed, the publish fails, the sweeper
    # publishes the job once Redis is back.
    during = platform.submit(auth, short_notes(1)[0])
    assert during.status_code == 202, during.text
    time.sleep(3)
    broker.start()
    job_ids = [running, during.json()["id"]]

    platform.wait_terminal(sessions, job_ids, 180)
    result = audit(sessions, job_ids)
    assert_nothing_lost(result, job_ids)
    assert set(result.states.values()) == {"completed"}
    assert platform.services["transcription_worker"].alive()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server only this test uses, migrated (it will be stopped mid-run)."""
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start()
    upgrade(url)
    yield server, url
    server.stop()


def test_postgres_stopped_during_uploads_and_tasks(
    make_platform: PlatformFactory,
    own_postgres: tuple[EmbeddedPostgres, str],
    storage_root: Path,
    tenant: str,
) -> None:
    server, url = own_postgres
    engine = make_engine(url, pool_size=1)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as session:
        auth = {"Authorization": f"Bearer {issue_key(session, tenant, 'chaos').secret}"}
    platform = make_platform(VOXFLOW_DATABASE_URL=url)
    platform.start("ingest_api", "transcription_worker", "sweeper")
    notes = short_notes(3)

    # During uploads: a clear 503, and no stored audio without a job.
    server.stop()
    refused = platform.submit(auth, notes[0])
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "database_unavailable"
    server.start()
    engine.dispose()
    assert_no_orphaned_audio(sessions, storage_root, tenant)

    # During tasks: workers and sweeper retry until the database is back, then converge.
    running = platform.submit(auth, speech(60), SEQUENTIAL).json()["id"]
    queued = [platform.submit(auth, note).json()["id"] for note in notes[1:]]
    platform.wait_for(lambda: transcribing(sessions, running), 90, "the transcription to start")
    server.stop()
    time.sleep(4)
    server.start()
    engine.dispose()

    job_ids = [running, *queued]
    platform.wait_terminal(sessions, job_ids, 240)
    result = audit(sessions, job_ids)
    assert_nothing_lost(result, job_ids)
    assert set(result.states.values()) == {"completed"}
    assert_no_orphaned_audio(sessions, storage_root, tenant)
    engine.dispose()
