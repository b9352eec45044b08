"""`webhook_url` on uploads: stored on the job, validated, guarded, and part of idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api import idempotency
from ingest_api.app import create_app
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES
from tests.support.webhooks import SECRET
from voxflow.db import session_scope
from voxflow.jobs.models import Job

NOTE = (SAMPLES / "voice_note.ogg").read_bytes()
HOOK = "https://hooks.example.com/voxflow?token=abc"


def _client(spool: Path, **settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(IngestSettings(spool_dir=spool, **settings))) as running:
        yield running


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's spool directory, watched for leftovers."""
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def client(spool: Path) -> Iterator[TestClient]:
    """The ingestion API with a webhook secret and the default SSRF guard."""
    yield from _client(spool, webhook_secret=SECRET)


@pytest.fixture(scope="module")
def no_secret(spool: Path) -> Iterator[TestClient]:
    """The ingestion API without a webhook secret."""
    yield from _client(spool, webhook_secret=None)


@pytest.fixture(scope="module")
def private_ok(spool: Path) -> Iterator[TestClient]:
    """The ingestion API that lets webhooks go to private networks."""
    yield from _client(spool, webhook_secret=SECRET, webhook_allow_private_networks=True)


@pytest.fixture(autouse=True)
def _forget_jobs(sessions: sessionmaker[Session], tenant: str) -> Iterator[None]:
    yield
    with session_scope(sessions) as session:  # queued jobs with hooks: no later test runs them
        session.execute(delete(Job).where(Job.tenant == tenant))


def post(
    client: TestClient, auth: dict[str, str], webhook_url: str | bytes | None,
    key: str | None = None,
) -> Any:  # fmt: skip
    """Upload the voice note with a webhook URL (and an idempotency key)."""
    data: dict[str, Any] = {"options": '{"tasks": ["summary"]}'}
    if webhook_url is not None:
        data["webhook_url"] = webhook_url
    headers = {**auth, **({idempotency.HEADER: key} if key else {})}
    return client.post("/v1/jobs", headers=headers, data=data,
                       files={"file": ("note.ogg", NOTE, "audio/ogg")})  # fmt: skip


def stored_url(sessions: sessionmaker[Session], tenant: str) -> list[str | None]:
    """The webhook URLs of the tenant's jobs."""
    with sessions() as session:
        return list(session.scalars(select(Job.webhook_url).where(Job.tenant == tenant)))


def test_the_url_is_stored_on_the_job(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    response = post(client, auth, HOOK)
    assert response.status_code == 202, response.text
    assert stored_url(sessions, tenant) == [HOOK]
    with sessions() as session:
        job = session.get(Job, response.json()["id"])
        assert job is not None
        assert "webhook_url" not in job.options  # not an option of the transcription


def test_without_a_url_nothing_changes(
    no_secret: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    assert post(no_secret, auth, None).status_code == 202
    assert post(no_secret, auth, "").status_code == 202  # an empty field is no webhook
    assert stored_url(sessions, tenant) == [None, None]


def test_a_server_without_a_secret_refuses_webhooks(
    no_secret: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    response = post(no_secret, auth, HOOK)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "webhooks_disabled"
    assert "VOXFLOW_WEBHOOK_SECRET" in response.json()["error"]["message"]
    assert stored_url(sessions, tenant) == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("https://user:secret@example.com/hook", "user name or password"),
        ("https://exa mple.com/", "without spaces"),
        ("https://example.com/" + "a" * 2029, "longer than 2048"),  # 2049 characters
        ("https://example.com/" + "a" * 100_000, "longer than 2048"),  # refused while streaming
        (b"https://example.com/\xff\xfe", "printable ASCII"),
    ],
)
def test_malformed_urls_are_422(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session],
    spool: Path, url: str | bytes, fragment: str,
) -> None:  # fmt: skip
    response = post(client, auth, url)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook_url"
    assert fragment in error["message"]
    assert stored_url(sessions, tenant) == []
    assert list(spool.iterdir()) == []


def test_a_url_of_2048_characters_is_accepted(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    url = "https://example.com/" + "a" * 2028
    assert len(url) == 2048
    assert post(client, auth, url).status_code == 202
    assert stored_url(sessions, tenant) == [url]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://169.254.169.254/",
            "https://[::1]/hook", "http://10.0.0.5/hook"],
)  # fmt: skip
def test_private_destinations_are_refused_by_default(
    client: TestClient, private_ok: TestClient, auth: dict[str, str], tenant: str,
    sessions: sessionmaker[Session], url: str,
) -> None:  # fmt: skip
    response = post(client, auth, url)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "webhook_url_not_public"
    assert stored_url(sessions, tenant) == []
    assert post(private_ok, auth, url).status_code == 202  # unless the operator allows them
    assert stored_url(sessions, tenant) == [url]


def test_the_url_is_part_of_the_idempotent_request(
    client: TestClient, auth: dict[str, str], tenant: str, sessions: sessionmaker[Session]
) -> None:
    first = post(client, auth, HOOK, key="hooked")
    assert first.status_code == 202
    replay = post(client, auth, HOOK, key="hooked")
    assert replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    for other in ("https://hooks.example.com/other", None):
        changed = post(client, auth, other, key="hooked")
        assert changed.status_code == 422
        assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert stored_url(sessions, tenant) == [HOOK]


def test_the_openapi_document_describes_the_field(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["requestBody"]
    field = body["content"]["multipart/form-data"]["schema"]["properties"]["webhook_url"]
    assert field["maxLength"] == 2048
    assert "signed POST" in field["description"]
