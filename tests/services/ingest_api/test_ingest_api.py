"""The ingestion API over HTTP: accepted uploads become queued jobs; bad ones leave nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api import service
from ingest_api.app import create_app
from ingest_api.audio_probe import probe_file
from ingest_api.schemas import JobOptions
from ingest_api.settings import IngestSettings
from ingest_api.upload import ParsedUpload
from tests.conftest import SAMPLES
from voxflow.db import make_async_engine, make_async_sessionmaker
from voxflow.jobs.models import Job, JobEvent
from voxflow.storage.local import LocalStorage
from voxflow.web.errors import ApiError

VOICE_NOTE = SAMPLES / "voice_note.ogg"
MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's spool directory, watched for leftovers."""
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def client(spool: Path) -> Iterator[TestClient]:
    """The ingestion API with small limits so that limits are cheap to test."""
    settings = IngestSettings(spool_dir=spool, max_upload_bytes=MAX_BYTES, max_audio_seconds=60)
    with TestClient(create_app(settings)) as running:
        yield running


def upload(
    client: TestClient,
    auth: dict[str, str],
    content: bytes,
    *,
    filename: str = "note.ogg",
    options: dict[str, Any] | str | None = None,
    content_type: str = "audio/ogg",
) -> Any:
    """POST a multipart upload."""
    data = {}
    if options is not None:
        data["options"] = options if isinstance(options, str) else json.dumps(options)
    return client.post(
        "/v1/jobs", headers=auth, files={"file": (filename, content, content_type)}, data=data
    )


def assert_nothing_left(
    sessions: sessionmaker[Session], tenant: str, spool: Path, storage_root: Path
) -> None:
    """No job row, no stored object and no spool file remain for a rejected upload."""
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(Job).where(Job.tenant == tenant))
    assert count == 0
    assert list(LocalStorage(storage_root).iter_keys(f"{tenant}/")) == []
    assert list(spool.iterdir()) == []


def test_accepted_upload_is_stored_recorded_and_linked(
    client: TestClient,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
    spool: Path,
) -> None:
    content = VOICE_NOTE.read_bytes()
    response = upload(client, auth, content, options={"tasks": ["summary", "diary"]})
    assert response.status_code == 202, response.text
    body = response.json()
    job_id = uuid.UUID(body["id"])
    assert response.headers["location"].endswith(f"/v1/jobs/{job_id}")
    assert body["links"]["self"] == response.headers["location"]
    assert body["status"] == "queued"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert 10 < body["duration_seconds"] < 20
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
    assert job.tenant == tenant
    assert job.status == "queued"
    assert job.options == {"tasks": ["summary", "diary"], "model": "tiny.en"}
    assert job.size_bytes == len(content)
    assert job.source_key == f"{tenant}/{job_id}/source"
    assert job.source_filename == "note.ogg"
    assert job.enqueued_at is not None
    assert [(e.from_status, e.to_status) for e in events] == [(None, "queued")]
    with LocalStorage(storage_root).local_copy(job.source_key) as stored:
        assert stored.read_bytes() == content
    assert list(spool.iterdir()) == []


def test_traversal_filename_is_only_metadata(
    client: TestClient,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
) -> None:
    response = upload(client, auth, VOICE_NOTE.read_bytes(), filename="../../../etc/pass\x07wd.ogg")
    assert response.status_code == 202, response.text
    with sessions() as session:
        job = session.get(Job, uuid.UUID(response.json()["id"]))
    assert job is not None
    # httpx percent-encodes the control character; the path part is what must go.
    assert job.source_filename == "pass%07wd.ogg"
    assert list(LocalStorage(storage_root).iter_keys(f"{tenant}/")) == [job.source_key]
    assert not (storage_root.parent / "etc").exists()


def _truncated() -> bytes:
    content = VOICE_NOTE.read_bytes()
    return content[: len(content) * 2 // 5]


@pytest.mark.parametrize(
    ("content", "options", "status", "codes"),
    [
        pytest.param(
            b"ID3 this is not audio at all " * 50,
            None,
            415,
            {"unsupported_media"},
            id="non-audio-bytes",
        ),
        pytest.param(b"", None, 422, {"empty_file"}, id="empty-file"),
        pytest.param(_truncated(), None, 422, {"truncated_audio", "corrupt_audio"}, id="truncated"),
        pytest.param(b"\0" * (MAX_BYTES + 1), None, 413, {"file_too_large"}, id="over-size"),
        pytest.param(None, "{not json", 422, {"invalid_options"}, id="bad-json-options"),
        pytest.param(None, {"tasks": ["poem"]}, 422, {"invalid_options"}, id="unknown-task"),
        pytest.param(
            None, {"tasks": ["custom"]}, 422, {"invalid_options"}, id="custom-without-instruction"
        ),
        pytest.param(None, {"colour": "red"}, 422, {"invalid_options"}, id="unknown-option"),
        pytest.param(
            None, {"model": "large-v3"}, 422, {"model_not_allowed"}, id="model-not-allowed"
        ),
    ],
)
def test_bad_uploads_get_a_coded_4xx_and_leave_nothing(
    client: TestClient,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
    spool: Path,
    content: bytes | None,
    options: Any,
    status: int,
    codes: set[str],
) -> None:
    response = upload(
        client, auth, VOICE_NOTE.read_bytes() if content is None else content, options=options
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] in codes
    assert error["message"]
    assert_nothing_left(sessions, tenant, spool, storage_root)


def test_too_long_recording_is_refused(
    spool: Path,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
) -> None:
    settings = IngestSettings(spool_dir=spool, max_audio_seconds=5)
    with TestClient(create_app(settings)) as short_client:
        response = upload(short_client, auth, VOICE_NOTE.read_bytes())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "audio_too_long"
    assert_nothing_left(sessions, tenant, spool, storage_root)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer vf_wrong"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
    ],
)
def test_missing_or_wrong_key_is_401(
    client: TestClient,
    headers: dict[str, str],
    code: str,
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        before = session.scalar(select(func.count()).select_from(Job))
    response = upload(client, headers, VOICE_NOTE.read_bytes())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["www-authenticate"] == "Bearer"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == before


def test_form_shape_errors(
    client: TestClient,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
    spool: Path,
) -> None:
    not_multipart = client.post(
        "/v1/jobs", headers={**auth, "Content-Type": "audio/ogg"}, content=VOICE_NOTE.read_bytes()
    )
    assert not_multipart.status_code == 415
    assert not_multipart.json()["error"]["code"] == "unsupported_content_type"

    no_file = client.post("/v1/jobs", headers=auth, files={"options": (None, "{}")})
    assert no_file.status_code == 422
    assert no_file.json()["error"]["code"] == "missing_file"

    extra = client.post(
        "/v1/jobs",
        headers=auth,
        files={"file": ("a.ogg", VOICE_NOTE.read_bytes(), "audio/ogg"), "other": (None, "x")},
    )
    assert extra.status_code == 422
    assert extra.json()["error"]["code"] == "unexpected_field"

    big_options = upload(
        client,
        auth,
        VOICE_NOTE.read_bytes(),
        options={"instruction": "x" * 20_000, "tasks": ["custom"]},
    )
    assert big_options.status_code == 413
    assert big_options.json()["error"]["code"] == "field_too_large"
    assert_nothing_left(sessions, tenant, spool, storage_root)


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["required"] == ["file"]


DEAD_DATABASE = "postgresql://postgres@127.0.0.1:1/nowhere"


def test_database_down_is_503_not_500(spool: Path) -> None:
    settings = IngestSettings(spool_dir=spool, database_url=DEAD_DATABASE)
    with TestClient(create_app(settings)) as down:
        response = upload(down, {"Authorization": "Bearer vf_any"}, VOICE_NOTE.read_bytes())
        assert down.get("/readyz").status_code == 503
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "5"


def test_failed_commit_removes_the_stored_audio(tmp_path: Path, tenant: str) -> None:
    storage = LocalStorage(tmp_path / "storage")
    spooled = tmp_path / "spooled"
    spooled.write_bytes(VOICE_NOTE.read_bytes())
    parsed = ParsedUpload(path=spooled, size=spooled.stat().st_size, sha256="0" * 64,
                          filename="a.ogg", options=None)  # fmt: skip
    engine = make_async_engine(DEAD_DATABASE)

    async def record() -> None:
        async with make_async_sessionmaker(engine)() as session:
            await service.store_and_record(
                session, tenant=tenant, upload=parsed, options=JobOptions(),
                audio=probe_file(spooled, max_seconds=60), storage=storage,
                settings=IngestSettings(),
            )  # fmt: skip

    with pytest.raises(ApiError) as raised:
        asyncio.run(record())
    asyncio.run(engine.dispose())
    assert raised.value.status == 503
    assert list(storage.iter_keys()) == []
