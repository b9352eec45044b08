"""GET /v1/jobs/{id}/audio: the recording with ranges from local storage, a presigned
redirect to S3, 404 for other tenants, 410 once the audio is gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from status_api.app import create_app
from sweeper import retention
from tests.conftest import SAMPLES
from tests.services.status_api.conftest import DURATION, JobMaker
from tests.support.s3server import S3Server, running_s3_server
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Job
from voxflow.storage import Storage, make_storage, source_key
from voxflow.storage.local import LocalStorage

NOTE = SAMPLES / "voice_note.ogg"
DATA = NOTE.read_bytes()
SIZE = len(DATA)


def stored_job(
    sessions: sessionmaker[Session], storage: Storage, tenant: str, filename: str | None
) -> uuid.UUID:
    """A queued job of `tenant` whose upload (the voice note) is in `storage`."""
    job_id = uuid.uuid4()
    key = source_key(tenant, job_id)
    storage.put_file(key, NOTE)
    with session_scope(sessions) as session:
        service.create_job(
            session, job_id=job_id, tenant=tenant, options={}, source_key=key,
            source_filename=filename, size_bytes=SIZE, duration_seconds=DURATION,
            content_sha256="cd" * 32, max_attempts=3,
        )  # fmt: skip
    return job_id


@pytest.fixture
def local(storage_root: Path) -> LocalStorage:
    """The storage the in-process status API reads (the suite's local root)."""
    return LocalStorage(storage_root)


@pytest.fixture
def note(sessions: sessionmaker[Session], local: LocalStorage, tenant: str) -> uuid.UUID:
    """A job of the test's tenant with the voice note stored under a name with a space."""
    return stored_job(sessions, local, tenant, "voice note.ogg")


def test_the_whole_recording(client: TestClient, note: uuid.UUID, auth: dict[str, str]) -> None:
    answer = client.get(f"/v1/jobs/{note}/audio", headers=auth)
    assert answer.status_code == 200
    assert answer.content == DATA
    assert answer.headers["content-type"] == "audio/ogg"
    assert answer.headers["content-length"] == str(SIZE)
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["cache-control"] == "private"
    assert answer.headers["content-disposition"] == 'inline; filename="voice note.ogg"'
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["etag"]
    assert answer.headers["last-modified"]


def test_head_gives_the_headers_and_no_body(
    client: TestClient, note: uuid.UUID, auth: dict[str, str]
) -> None:
    answer = client.head(f"/v1/jobs/{note}/audio", headers=auth)
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-length"] == str(SIZE)
    assert answer.headers["content-type"] == "audio/ogg"
    assert answer.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    ("ranged", "first", "last"),
    [
        ("bytes=100-1123", 100, 1123),
        ("bytes=0-0", 0, 0),
        (f"bytes={SIZE - 10}-", SIZE - 10, SIZE - 1),
        ("bytes=-500", SIZE - 500, SIZE - 1),  # the last 500 bytes
        (f"bytes=30000-{SIZE + 5000}", 30000, SIZE - 1),  # an end past the file is the end
    ],
)
def test_a_range_is_exactly_those_bytes(
    client: TestClient, note: uuid.UUID, auth: dict[str, str], ranged: str, first: int, last: int
) -> None:
    answer = client.get(f"/v1/jobs/{note}/audio", headers={**auth, "Range": ranged})
    assert answer.status_code == 206, answer.text
    assert answer.content == DATA[first : last + 1]
    assert answer.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert answer.headers["content-length"] == str(last - first + 1)
    assert answer.headers["content-type"] == "audio/ogg"


def test_a_range_past_the_end_is_416(
    client: TestClient, note: uuid.UUID, auth: dict[str, str]
) -> None:
    answer = client.get(f"/v1/jobs/{note}/audio", headers={**auth, "Range": f"bytes={SIZE}-"})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{SIZE}"


def test_if_range_gives_the_range_only_while_the_file_is_the_same(
    client: TestClient, note: uuid.UUID, auth: dict[str, str]
) -> None:
    etag = client.head(f"/v1/jobs/{note}/audio", headers=auth).headers["etag"]
    same = {**auth, "Range": "bytes=0-99", "If-Range": etag}
    ranged = client.get(f"/v1/jobs/{note}/audio", headers=same)
    assert ranged.status_code == 206
    assert ranged.content == DATA[:100]
    changed = {**auth, "Range": "bytes=0-99", "If-Range": '"another-version"'}
    whole = client.get(f"/v1/jobs/{note}/audio", headers=changed)
    assert whole.status_code == 200
    assert whole.content == DATA


@pytest.mark.parametrize(
    ("filename", "media_type", "disposition"),
    [
        ("talk.m4a", "audio/mp4", 'inline; filename="talk.m4a"'),
        ("clip.webm", "video/webm", 'inline; filename="clip.webm"'),
        ("réunion d'équipe.mp3", "audio/mpeg",
         "inline; filename=\"r_union d'_quipe.mp3\"; "
         "filename*=UTF-8''r%C3%A9union%20d%27%C3%A9quipe.mp3"),
        ('say "hi".wav', "audio/x-wav",
         "inline; filename=\"say _hi_.wav\"; filename*=UTF-8''say%20%22hi%22.wav"),
        # Never a type a browser would render: the bytes are audio whatever the name says.
        ("page.html", "application/octet-stream", 'inline; filename="page.html"'),
        ("recording", "application/octet-stream", 'inline; filename="recording"'),
        (None, "application/octet-stream", None),
    ],
)  # fmt: skip
def test_the_type_and_name_come_from_the_file_name(
    client: TestClient,
    sessions: sessionmaker[Session],
    local: LocalStorage,
    tenant: str,
    auth: dict[str, str],
    filename: str | None,
    media_type: str,
    disposition: str | None,
) -> None:
    job_id = stored_job(sessions, local, tenant, filename)
    answer = client.get(f"/v1/jobs/{job_id}/audio", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media_type
    expected = disposition or f'inline; filename="{job_id}"'
    assert answer.headers["content-disposition"] == expected


def test_another_tenants_recording_is_the_unknown_job_404(
    client: TestClient, note: uuid.UUID, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        key = issue_key(session, f"other{uuid.uuid4().hex[:8]}", "other")
    other = {"Authorization": f"Bearer {key.secret}"}
    for job_id in (note, uuid.uuid4(), "not-a-uuid"):
        for method in ("GET", "HEAD"):
            answer = client.request(method, f"/v1/jobs/{job_id}/audio", headers=other)
            assert answer.status_code == 404, (method, job_id)
        body = client.get(f"/v1/jobs/{job_id}/audio", headers=other).json()
        assert body["error"]["code"] == "job_not_found"
    assert client.get(f"/v1/jobs/{note}/audio").status_code == 401


def test_audio_removed_by_retention_is_410(
    client: TestClient,
    note: uuid.UUID,
    jobs: JobMaker,
    auth: dict[str, str],
    sessions: sessionmaker[Session],
    local: LocalStorage,
) -> None:
    jobs.transcribe(note)
    # Finished long ago: only jobs this old are past the retention used here.
    with session_scope(sessions) as session:
        session.execute(update(Job).where(Job.id == note)
                        .values(finished_at=Job.finished_at - timedelta(days=3650)))  # fmt: skip
    with session_scope(sessions) as session:
        assert retention.expire_audio(session, local, timedelta(days=3000), limit=100) >= 1
    for method in ("GET", "HEAD"):
        answer = client.request(method, f"/v1/jobs/{note}/audio", headers=auth)
        assert answer.status_code == 410
    error = client.get(f"/v1/jobs/{note}/audio", headers=auth).json()["error"]
    assert error["code"] == "audio_deleted"
    assert "retention" in error["message"]
    assert client.get(f"/v1/jobs/{note}/transcript", headers=auth).status_code == 200


def test_audio_missing_from_storage_is_410(
    client: TestClient, note: uuid.UUID, auth: dict[str, str], local: LocalStorage, tenant: str
) -> None:
    local.delete(source_key(tenant, note))
    answer = client.get(f"/v1/jobs/{note}/audio", headers=auth)
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "audio_deleted"
    assert "no longer in storage" in answer.json()["error"]["message"]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback."""
    with running_s3_server() as server:
        yield server


def test_s3_storage_redirects_to_a_short_lived_url(
    s3_server: S3Server,
    sessions: sessionmaker[Session],
    tenant: str,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.new_bucket()
    for name, value in {**s3_server.env(bucket), "VOXFLOW_AUDIO_URL_SECONDS": "120"}.items():
        monkeypatch.setenv(name, value)
    storage = make_storage(s3_server.settings(bucket))
    job_id = stored_job(sessions, storage, tenant, "voice note.ogg")
    with TestClient(create_app(), follow_redirects=False) as client:
        for method in ("GET", "HEAD"):
            answer = client.request(method, f"/v1/jobs/{job_id}/audio", headers=auth)
            assert answer.status_code == 307, answer.text
            assert answer.headers["cache-control"] == "private, no-store"
        url = answer.headers["location"]
        assert url.startswith(f"{s3_server.endpoint_url}/{bucket}/")
        assert "X-Amz-Expires=120" in url
        fetched = httpx.get(url, headers={"Range": "bytes=100-199"})
        assert fetched.status_code == 206
        assert fetched.content == DATA[100:200]
        assert httpx.get(url).content == DATA

        storage.delete(source_key(tenant, job_id))
        gone = client.get(f"/v1/jobs/{job_id}/audio", headers=auth)
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "audio_deleted"
