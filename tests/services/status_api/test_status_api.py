"""Status API: authentication, tenant isolation, job views, listing and pagination."""

from __future__ import annotations

import base64
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from status_api.app import create_app
from status_api.settings import StatusSettings
from tests.services.status_api.conftest import DURATION, JobMaker
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs.states import JobStatus


def _other_auth(sessions: sessionmaker[Session]) -> dict[str, str]:
    with session_scope(sessions) as session:
        key = issue_key(session, f"other{uuid.uuid4().hex[:8]}", "other")
    return {"Authorization": f"Bearer {key.secret}"}


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer vf_not-a-real-key"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
    ],
)
def test_requests_without_a_valid_key_are_401(
    client: TestClient, jobs: JobMaker, headers: dict[str, str], code: str
) -> None:
    (job_id,) = jobs.queued()
    for path in ("/v1/jobs", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/transcript"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == code
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_job_view_of_a_queued_job(client: TestClient, jobs: JobMaker, auth: dict[str, str]) -> None:
    (job_id,) = jobs.queued(tasks=["summary"])
    response = client.get(f"/v1/jobs/{job_id}", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(job_id)
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["attempts"] == 0
    assert body["options"] == {"tasks": ["summary"]}
    assert body["source"] == {
        "filename": "meeting.wav",
        "size_bytes": 123_456,
        "duration_seconds": DURATION,
        "sha256": "ab" * 32,
    }
    assert body["error"] is None
    assert body["webhook_url"] is None
    assert body["created_at"] <= body["updated_at"]
    for stage in ("transcription_started_at", "transcribed_at", "generation_started_at"):
        assert body[stage] is None
    assert body["finished_at"] is None
    base = f"{StatusSettings().public_status_url.rstrip('/')}/v1/jobs/{job_id}"
    assert body["links"] == {
        "self": base,
        "events": f"{base}/events",
        "transcript": f"{base}/transcript",
        "results": f"{base}/results",
        "webhooks": f"{base}/webhooks",
    }


def test_links_use_the_configured_public_url(
    jobs: JobMaker, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = jobs.queued()
    # Settings are read in the lifespan, so the environment at startup is what counts.
    monkeypatch.setenv("VOXFLOW_PUBLIC_STATUS_URL", "https://status.example.com/")
    with TestClient(create_app()) as client:
        links = client.get(f"/v1/jobs/{job_id}", headers=auth).json()["links"]
    assert links["self"] == f"https://status.example.com/v1/jobs/{job_id}"
    assert links["results"] == f"https://status.example.com/v1/jobs/{job_id}/results"


def test_job_view_tracks_stages(client: TestClient, jobs: JobMaker, auth: dict[str, str]) -> None:
    (job_id,) = jobs.queued()
    jobs.claim(job_id)
    running = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert running["status"] == "transcribing"
    assert running["attempts"] == 1
    assert running["transcription_started_at"] is not None
    assert running["transcribed_at"] is None

    (done_id,) = jobs.queued()
    jobs.transcribe(done_id)
    done = client.get(f"/v1/jobs/{done_id}", headers=auth).json()
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["transcription_started_at"] <= done["transcribed_at"] <= done["finished_at"]
    assert done["generation_started_at"] is None


def test_failed_job_shows_its_error(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.claim(job_id)
    jobs.fail(job_id, JobStatus.TRANSCRIBING, "unreadable_audio", "The file could not be decoded.")
    body = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert body["status"] == "failed"
    assert body["error"] == {
        "code": "unreadable_audio",
        "message": "The file could not be decoded.",
    }
    assert body["finished_at"] is not None


@pytest.mark.parametrize("suffix", ["", "/events", "/transcript", "/results"])
def test_other_tenants_job_and_malformed_ids_are_404(
    client: TestClient,
    jobs: JobMaker,
    auth: dict[str, str],
    sessions: sessionmaker[Session],
    suffix: str,
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    assert client.get(f"/v1/jobs/{job_id}{suffix}", headers=auth).status_code == 200
    other = _other_auth(sessions)
    for path in (f"/v1/jobs/{job_id}", "/v1/jobs/not-a-uuid", f"/v1/jobs/{uuid.uuid4()}"):
        response = client.get(f"{path}{suffix}", headers=other)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "job_not_found"


def test_list_is_scoped_to_the_tenant_and_filters_by_status(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    queued = jobs.queued(count=2)
    done = jobs.queued()
    jobs.transcribe(done[0])
    everything = client.get("/v1/jobs", headers=auth).json()
    assert {item["id"] for item in everything["items"]} == {str(i) for i in [*queued, *done]}
    assert everything["next_cursor"] is None

    only_queued = client.get("/v1/jobs", params={"status": "queued"}, headers=auth).json()
    assert {item["id"] for item in only_queued["items"]} == {str(i) for i in queued}
    completed = client.get("/v1/jobs", params={"status": "completed"}, headers=auth).json()
    assert [item["id"] for item in completed["items"]] == [str(done[0])]
    failed = client.get("/v1/jobs", params={"status": "failed"}, headers=auth).json()
    assert failed == {"items": [], "next_cursor": None}

    assert client.get("/v1/jobs", headers=_other_auth(sessions)).json()["items"] == []


def test_pagination_walks_every_job_once(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    # Three jobs share one transaction (same created_at), so the id breaks the tie.
    created = [*jobs.queued(count=3), *jobs.queued(), *jobs.queued(count=2)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/v1/jobs", params=params, headers=auth)
        assert response.status_code == 200
        page = response.json()
        pages += 1
        assert len(page["items"]) == 2
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 3
    assert pages == 3
    assert len(seen) == len(set(seen)) == 6
    assert set(seen) == {str(i) for i in created}
    newest_first = client.get("/v1/jobs", params={"limit": 100}, headers=auth).json()
    assert [item["id"] for item in newest_first["items"]] == seen
    stamps = [item["created_at"] for item in newest_first["items"]]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'["2024-01-01T00:00:00", "' + str(uuid.uuid4()).encode() + b'"]')
        .decode()
        .rstrip("="),
        base64.urlsafe_b64encode(b'["2024-01-01T00:00:00+00:00", "nope"]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
    ],
)
def test_invalid_cursor_is_400(client: TestClient, auth: dict[str, str], cursor: str) -> None:
    response = client.get("/v1/jobs", params={"cursor": cursor}, headers=auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "params", [{"status": "sleeping"}, {"limit": 0}, {"limit": 101}, {"limit": "many"}]
)
def test_invalid_list_parameters_are_422(
    client: TestClient, auth: dict[str, str], params: dict[str, str | int]
) -> None:
    response = client.get("/v1/jobs", params=params, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
