"""Per-tenant upload limits: a rate in the real Redis and a quota of unfinished jobs."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app
from ingest_api.limits import UploadLimits
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES
from tests.support.jobs import LEASE, WORKER, transcript_for
from tests.support.served import served
from tests.support.servers import Servers
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.embedded import redis_client_url
from voxflow.jobs import service
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus

NOTE = (SAMPLES / "voice_note.ogg").read_bytes()


def _app(tmp: pytest.TempPathFactory, **limits: int | None) -> Iterator[TestClient]:
    settings = IngestSettings(spool_dir=tmp.mktemp("spool"), **limits)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def rate_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The ingestion API allowing 3 uploads a minute per tenant (no quota)."""
    yield from _app(tmp_path_factory, uploads_per_minute=3, max_active_jobs=None)


@pytest.fixture(scope="module")
def quota_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The ingestion API allowing 2 unfinished jobs per tenant (no rate limit)."""
    yield from _app(tmp_path_factory, uploads_per_minute=None, max_active_jobs=2)


def new_tenant(sessions: sessionmaker[Session]) -> tuple[str, dict[str, str]]:
    """A tenant of its own and its credentials."""
    tenant = f"limits-{uuid.uuid4().hex[:8]}"
    with session_scope(sessions) as session:
        key = issue_key(session, tenant, "test")
    return tenant, {"Authorization": f"Bearer {key.secret}"}


def post(client: TestClient, auth: dict[str, str]) -> Any:
    """One upload."""
    return client.post("/v1/jobs", headers=auth, files={"file": ("n.ogg", NOTE, "audio/ogg")})


def test_uploads_beyond_the_rate_get_429_with_retry_after(
    rate_limited: TestClient, sessions: sessionmaker[Session], servers: Servers
) -> None:
    tenant, auth = new_tenant(sessions)
    _, other = new_tenant(sessions)
    assert [post(rate_limited, auth).status_code for _ in range(3)] == [202, 202, 202]
    refused = post(rate_limited, auth)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert post(rate_limited, other).status_code == 202  # another tenant is not affected
    # The window lives in Redis, shared by every API replica; a refusal takes no slot.
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    assert client.zcard(f"voxflow:ratelimit:uploads:{tenant}") == 3
    client.close()


def test_unfinished_jobs_are_capped_until_some_finish(
    quota_limited: TestClient, sessions: sessionmaker[Session]
) -> None:
    _, auth = new_tenant(sessions)
    first = post(quota_limited, auth)
    assert post(quota_limited, auth).status_code == 202
    refused = post(quota_limited, auth)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_active_jobs"
    assert refused.headers["Retry-After"] == "30"
    job_id = uuid.UUID(first.json()["id"])
    with session_scope(sessions) as session:
        service.claim(session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    with session_scope(sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript_for(job_id))
    assert post(quota_limited, auth).status_code == 202  # one finished: one slot free


def test_a_redis_outage_lets_uploads_through() -> None:
    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limits = UploadLimits(broken, per_minute=1, max_active=None)
    limits.check_rate("anyone")  # no exception: the limit fails open, and says so in the log
    limits.check_rate("anyone")


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The ingestion API under a real uvicorn, giving an upload's body 1 s to arrive."""
    spool = tmp_path_factory.mktemp("spool")
    app = create_app(IngestSettings(spool_dir=spool, upload_deadline_seconds=1.0))
    with served(app) as address:
        yield address, spool


def test_a_trickling_upload_is_cut_off_at_the_deadline(
    impatient: tuple[str, Path], sessions: sessionmaker[Session]
) -> None:
    # A real socket: the test client would hand the app the body without waiting.
    address, spool = impatient
    tenant, auth = new_tenant(sessions)
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="n.ogg"\r\n\r\n'
    body = head + NOTE + b"\r\n--b--\r\n"
    request = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {address}\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = address.split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        try:
            for index in range(0, len(body), 4096):
                conn.sendall(body[index : index + 4096])
                time.sleep(0.2)  # about 20 KB/s: the whole body would take over 4 s
        except OSError:
            pass  # the server may close the connection once it has answered
        answer = conn.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert "upload_too_slow" in answer
    assert time.monotonic() - began < 4  # cut off, not read to the end
    assert list(spool.iterdir()) == []  # nothing half-written left behind
    with sessions() as session:
        assert session.scalar(select(func.count()).where(Job.tenant == tenant)) == 0
