"""`Idempotency-Key` on uploads: replays, conflicts, reuse, expiry, and failures letting go."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ingest_api import idempotency
from ingest_api.app import create_app
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES
from tests.support.served import served
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs.models import IdempotencyKey, Job
from voxflow.web.errors import ApiError

NOTE = (SAMPLES / "voice_note.ogg").read_bytes()
MEETING = (SAMPLES / "meeting.ogg").read_bytes()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The ingestion API."""
    settings = IngestSettings(spool_dir=tmp_path_factory.mktemp("spool"))
    with TestClient(create_app(settings)) as running:
        yield running


def post(
    client: TestClient | httpx.Client, auth: dict[str, str], key: str | None, content: bytes = NOTE,
    options: str = '{"tasks": ["summary"]}', filename: str = "note.ogg",
) -> Any:  # fmt: skip
    """An upload, with the key when given."""
    headers = {**auth, **({idempotency.HEADER: key} if key is not None else {})}
    return client.post("/v1/jobs", headers=headers, data={"options": options},
                       files={"file": (filename, content, "audio/ogg")})  # fmt: skip


def jobs_of(sessions: sessionmaker[Session], tenant: str) -> int:
    """How many jobs the tenant has."""
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Job).where(Job.tenant == tenant)) or 0
        )


def test_a_retry_with_the_same_key_replays_the_first_answer(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    first = post(client, auth, "retry-1")
    assert first.status_code == 202
    # Same audio and options; the JSON is spelled differently, which changes nothing.
    again = post(client, auth, "retry-1", options='{ "tasks" : ["summary"] }')
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert jobs_of(sessions, tenant) == 1


def test_the_same_key_for_a_different_request_is_422(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    assert post(client, auth, "k").status_code == 202
    for changed in (
        post(client, auth, "k", content=MEETING),
        post(client, auth, "k", options='{"tasks": ["diary"]}'),
        post(client, auth, "k", filename="other.ogg"),
    ):
        assert changed.status_code == 422
        assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert jobs_of(sessions, tenant) == 1


def test_keys_are_scoped_per_tenant(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    other_tenant = f"other-{uuid.uuid4().hex[:8]}"
    with session_scope(sessions) as session:
        other = issue_key(session, other_tenant, "test")
    mine = post(client, auth, "shared-key")
    theirs = post(client, {"Authorization": f"Bearer {other.secret}"}, "shared-key")
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_request_still_in_flight_makes_the_second_a_409(
    auth: dict[str, str], tenant: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # The first request holds the key while its body is still arriving. Over a real socket:
    # the test client reads a whole body before the app sees any of it.
    release = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="n.ogg"\r\n'
        yield b"Content-Type: audio/ogg\r\n\r\n"
        release.wait(30)
        yield NOTE + b"\r\n--b--\r\n"

    result: dict[str, Any] = {}
    app = create_app(IngestSettings(spool_dir=tmp_path))
    with served(app) as address, httpx.Client(base_url=f"http://{address}", timeout=60) as http:

        def first() -> None:
            result["first"] = http.post(
                "/v1/jobs", content=slow_body(),
                headers={**auth, idempotency.HEADER: "busy",
                         "Content-Type": "multipart/form-data; boundary=b"},
            )  # fmt: skip

        thread = threading.Thread(target=first)
        thread.start()
        try:
            for _ in range(600):  # wait until the first request has taken the key
                with sessions() as session:
                    if session.get(IdempotencyKey, (tenant, "busy")) is not None:
                        break
                threading.Event().wait(0.05)
            else:
                pytest.fail("the first request never took its key")
            assert "first" not in result, "the first request is still sending its body"
            second = post(http, auth, "busy")
            assert second.status_code == 409
            assert second.json()["error"]["code"] == "idempotency_key_in_use"
            assert second.headers["Retry-After"]
        finally:
            release.set()
            thread.join(60)
        assert result["first"].status_code == 202
        replay = post(http, auth, "busy", options="{}", filename="n.ogg")  # the same upload
        assert replay.status_code == 202
        assert replay.headers["Idempotent-Replayed"] == "true"
    assert jobs_of(sessions, tenant) == 1


def test_a_failed_request_lets_the_key_go(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    bad = post(client, auth, "fix-and-retry", content=b"not audio at all" * 100)
    assert bad.status_code in (415, 422)
    with sessions() as session:
        assert session.get(IdempotencyKey, (tenant, "fix-and-retry")) is None
    assert post(client, auth, "fix-and-retry").status_code == 202


def test_expired_and_abandoned_keys_start_over(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    first = post(client, auth, "old")
    past = datetime.now(UTC) - timedelta(seconds=1)
    with session_scope(sessions) as session:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "old",
                        IdempotencyKey.tenant == tenant).values(expires_at=past))  # fmt: skip
    after = post(client, auth, "old", content=MEETING)  # a new request may use it now
    assert after.status_code == 202
    assert after.json()["id"] != first.json()["id"]
    # A request that died holding its key (no answer, long ago) does not block forever.
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(sessions) as session:
        dead = IdempotencyKey(tenant=tenant, key="dead", state="in_flight", created_at=long_ago,
                              expires_at=long_ago + timedelta(days=1))  # fmt: skip
        session.add(dead)
    assert post(client, auth, "dead").status_code == 202


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_malformed_keys_are_400(client: TestClient, auth: dict[str, str], key: str) -> None:
    with pytest.raises(ApiError) as caught:
        idempotency.parse_key(key)
    assert caught.value.status == 400
    if key.isascii():  # httpx refuses to send non-ASCII header values at all
        response = post(client, auth, key)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_uploads_without_a_key_are_unaffected(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    assert post(client, auth, None).status_code == 202
    assert post(client, auth, None).status_code == 202
    assert jobs_of(sessions, tenant) == 2
    with sessions() as session:
        assert (
            session.scalars(select(IdempotencyKey).where(IdempotencyKey.tenant == tenant)).all()
            == []
        )
