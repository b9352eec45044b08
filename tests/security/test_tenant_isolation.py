"""Tenant isolation and authentication on every endpoint of both APIs.

The endpoints are enumerated from the running apps' routes, so a new endpoint without a case
here fails `test_every_route_has_a_case`. For each job endpoint, tenant B gets a 404 for
tenant A's job that is indistinguishable from the 404 for a job that never existed (a 403
would confirm the id exists), and A's job is left as it was. Every endpoint except the health,
metrics and documentation ones refuses missing, malformed, unknown and revoked keys with a 401
and a code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Route

from ingest_api.app import create_app as create_ingest_app
from ingest_api.settings import IngestSettings
from status_api.app import create_app as create_status_app
from status_api.service import encode_cursor
from status_api.settings import StatusSettings
from tests.security.media import VOICE_NOTE
from tests.services.status_api.conftest import TEXT as TRANSCRIPT_TEXT
from tests.services.status_api.conftest import JobMaker
from voxflow.apikeys import IssuedKey, issue_key
from voxflow.db import session_scope
from voxflow.jobs import repository
from voxflow.jobs.models import Job, JobEvent
from voxflow.storage.local import LocalStorage

Endpoint = tuple[str, str]  # (method, path template)

# Open by design: liveness, readiness, Prometheus scraping and the API documentation.
PUBLIC: set[Endpoint] = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    # The web console's page, files and config: static, no tenant's data (its key stays in
    # the browser, and every call it makes is one of the API routes below).
    ("GET", "/"),
    ("GET", "/console/config.json"),
    ("GET", "/console/{name}"),
}


def served_endpoints(app: FastAPI) -> set[Endpoint]:
    """(method, path) of every route the app serves (HEAD, which mirrors GET, aside)."""
    found: set[Endpoint] = set()

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            # FastAPI wraps each included router in a route of its own that holds the original.
            included = getattr(route, "original_router", None)
            if included is not None:
                context = getattr(route, "include_context", None)
                walk(included.routes, prefix + getattr(context, "prefix", ""))
            elif isinstance(route, Route) and route.methods:
                found.update((m, prefix + route.path) for m in route.methods if m != "HEAD")

    walk(app.routes, "")
    return found


INGEST_ENDPOINTS = served_endpoints(create_ingest_app())
STATUS_ENDPOINTS = served_endpoints(create_status_app())


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingestion API's spool directory."""
    return tmp_path_factory.mktemp("isolation-spool")


@pytest.fixture(scope="module")
def ingest(spool: Path) -> Iterator[TestClient]:
    """The ingestion API (looking every key up: a revoked key is refused at once)."""
    settings = IngestSettings(spool_dir=spool, api_key_cache_seconds=0)
    with TestClient(create_ingest_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def status() -> Iterator[TestClient]:
    """The status API (looking every key up: a revoked key is refused at once)."""
    with TestClient(create_status_app(StatusSettings(api_key_cache_seconds=0))) as running:
        yield running


def _bearer(key: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret}"}


def _upload(ingest: TestClient, headers: dict[str, str]) -> uuid.UUID:
    """Upload the voice note; the new job's id."""
    files = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
    response = ingest.post("/v1/jobs", headers=headers, files=files)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


@dataclass
class World:
    """Two tenants; A has a finished job and a queued one, both uploaded with real audio."""

    ingest: TestClient
    status: TestClient
    sessions: sessionmaker[Session]
    storage: LocalStorage
    a: dict[str, str]
    b: dict[str, str]
    a_tenant: str
    b_tenant: str
    done: uuid.UUID  # transcribed and completed
    queued: uuid.UUID
    idempotency_key: str

    def job(self, job_id: uuid.UUID) -> Job:
        """The job row as it is now."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
        assert job is not None, f"job {job_id} is gone"
        return job

    def events(self, job_id: uuid.UUID) -> int:
        """How many timeline events the job has."""
        with self.sessions() as session:
            count = session.scalar(
                select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
            )
        return count or 0


@pytest.fixture
def world(
    ingest: TestClient,
    status: TestClient,
    sessions: sessionmaker[Session],
    storage_root: Path,
    tenant: str,
    api_key: IssuedKey,
) -> World:
    """Tenant A (the suite's `tenant`) with two jobs, and a tenant B with a key of its own."""
    other = f"b{tenant}"
    with session_scope(sessions) as session:
        b_key = issue_key(session, other, "b")
    a = _bearer(api_key)
    idempotency_key = f"upload-{uuid.uuid4()}"
    done = _upload(ingest, {**a, "Idempotency-Key": idempotency_key})
    # No tasks: transcribed, then completed; diarized, so that its speakers can be named.
    JobMaker(sessions, tenant).transcribe(done, diarized=True)
    queued = _upload(ingest, a)
    return World(
        ingest=ingest, status=status, sessions=sessions, storage=LocalStorage(storage_root),
        a=a, b=_bearer(b_key), a_tenant=tenant, b_tenant=other, done=done, queued=queued,
        idempotency_key=idempotency_key,
    )  # fmt: skip


def _assert_same_as_unknown(
    world: World, method: str, path: str, job_id: uuid.UUID, body: Any = None
) -> None:
    """B's answer about A's job equals its answer about an id that never existed."""
    unknown = uuid.uuid4()
    theirs = world.status.request(method, path.format(job_id=job_id), headers=world.b, json=body)
    never = world.status.request(method, path.format(job_id=unknown), headers=world.b, json=body)
    assert theirs.status_code == never.status_code == 404, theirs.text
    assert theirs.json()["error"]["code"] == "job_not_found"
    assert theirs.text.replace(str(job_id), "ID") == never.text.replace(str(unknown), "ID")
    assert set(theirs.headers) == set(never.headers)


def _read_case(path: str) -> Callable[[World], None]:
    """A read endpoint: A reads its job, B gets the unknown-job 404 for both of A's jobs."""

    def check(world: World) -> None:
        own = world.status.get(path.format(job_id=world.done), headers=world.a)
        assert own.status_code == 200, own.text  # the job exists and A can read it
        for job_id in (world.done, world.queued):
            _assert_same_as_unknown(world, "GET", path, job_id)

    return check


def _cancel(world: World) -> None:
    """B cannot cancel A's queued job; A still can afterwards."""
    before = world.events(world.queued)
    _assert_same_as_unknown(world, "POST", "/v1/jobs/{job_id}/cancel", world.queued)
    assert world.job(world.queued).status == "queued"
    assert world.events(world.queued) == before
    own = world.status.post(f"/v1/jobs/{world.queued}/cancel", headers=world.a)
    assert own.status_code == 200, own.text


RENAME = {"names": {"A": "Ada"}}


def _rename(world: World) -> None:
    """B cannot name the speakers of A's job; A still can afterwards."""
    path = "/v1/jobs/{job_id}/speakers"
    _assert_same_as_unknown(world, "PATCH", path, world.done, RENAME)
    transcript = world.status.get(f"/v1/jobs/{world.done}/transcript", headers=world.a).json()
    assert [s["name"] for s in transcript["speakers"]] == [None, None]
    own = world.status.patch(path.format(job_id=world.done), headers=world.a, json=RENAME)
    assert own.status_code == 200, own.text


def _delete(world: World) -> None:
    """B cannot delete A's jobs or their audio; A still can afterwards."""
    for job_id in (world.done, world.queued):
        _assert_same_as_unknown(world, "DELETE", "/v1/jobs/{job_id}", job_id)
        assert world.storage.exists(world.job(job_id).source_key)
    assert world.job(world.queued).status == "queued"
    own = world.status.delete(f"/v1/jobs/{world.queued}", headers=world.a)
    assert own.status_code == 204, own.text


def _list(world: World) -> None:
    """B's listing never shows A's jobs, whatever the filter or cursor."""
    b_job = _upload(world.ingest, world.b)
    with world.sessions() as session:
        a_done = session.get(Job, world.done)
        assert a_done is not None
        a_cursor = encode_cursor(a_done)
    a_ids = {str(world.done), str(world.queued)}
    own = world.status.get("/v1/jobs", headers=world.a).json()
    assert {item["id"] for item in own["items"]} == a_ids
    for params in ({}, {"status": "queued"}, {"status": "completed"}, {"cursor": a_cursor}):
        page = world.status.get("/v1/jobs", headers=world.b, params=params)
        assert page.status_code == 200, page.text
        ids = {item["id"] for item in page.json()["items"]}
        assert not ids & a_ids
        assert ids <= {str(b_job)}


def _create(world: World) -> None:
    """B reusing A's Idempotency-Key gets a job of its own, not a replay of A's answer."""
    files = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
    headers = {**world.b, "Idempotency-Key": world.idempotency_key}
    response = world.ingest.post("/v1/jobs", headers=headers, files=files)
    assert response.status_code == 202, response.text
    assert "idempotent-replayed" not in response.headers
    job_id = uuid.UUID(response.json()["id"])
    assert job_id not in (world.done, world.queued)
    job = world.job(job_id)
    assert job.tenant == world.b_tenant
    assert job.source_key.startswith(f"{world.b_tenant}/")
    # A's replay still answers with A's own job.
    again = world.ingest.post(
        "/v1/jobs", headers={**world.a, "Idempotency-Key": world.idempotency_key}, files=files
    )
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == str(world.done)


def _transcribe(world: World, headers: dict[str, str]) -> Any:
    """POST a transcription as OpenAI's SDK does, playing the worker's part meanwhile: each
    job it queues is claimed and given a transcript here, so the request's wait ends."""
    files = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
    with world.sessions() as session:
        seen = set(session.scalars(select(Job.id)))
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(world.ingest.post, "/v1/audio/transcriptions", headers=headers,
                             files=files, data={"model": "whisper-1"})  # fmt: skip
        while not answer.done():
            with world.sessions() as session:
                new = session.execute(select(Job.id, Job.tenant).where(Job.id.not_in(seen))).all()
            for job_id, tenant in new:
                JobMaker(world.sessions, tenant).transcribe(job_id)
                seen.add(job_id)
            time.sleep(0.02)
        return answer.result()


def _openai_transcription(world: World) -> None:
    """B's transcription is a job of B's, which A cannot see; A's of the same audio is A's."""
    theirs = _transcribe(world, world.b)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["text"] == TRANSCRIPT_TEXT
    b_job = uuid.UUID(theirs.headers["X-Voxflow-Job-Id"])
    assert world.job(b_job).tenant == world.b_tenant
    assert world.job(b_job).source_key.startswith(f"{world.b_tenant}/")
    unseen = world.status.get(f"/v1/jobs/{b_job}", headers=world.a)
    assert unseen.status_code == 404, unseen.text
    listed = world.status.get("/v1/jobs", headers=world.a).json()["items"]
    assert str(b_job) not in {item["id"] for item in listed}
    own = _transcribe(world, world.a)
    assert own.status_code == 200, own.text
    assert world.job(uuid.UUID(own.headers["X-Voxflow-Job-Id"])).tenant == world.a_tenant


def _search(world: World) -> None:
    """Search finds A's transcripts for A only: B, whose transcript says the same words,
    finds its own, and A's cursor shows B nothing of A's."""
    b_job = _upload(world.ingest, world.b)
    JobMaker(world.sessions, world.b_tenant).transcribe(b_job)
    query: dict[str, str | int] = {"q": "kenobi or there", "limit": 1}
    own = world.status.get("/v1/search", headers=world.a, params=query).json()
    assert [hit["job_id"] for hit in own["items"]] == [str(world.done)]
    assert own["next_cursor"] is not None
    a_ids = {str(world.done), str(world.queued)}
    cases: list[dict[str, str | int]] = [
        query,
        {"q": "kenobi"},
        {**query, "cursor": own["next_cursor"]},
    ]
    for params in cases:
        page = world.status.get("/v1/search", headers=world.b, params=params)
        assert page.status_code == 200, page.text
        assert {hit["job_id"] for hit in page.json()["items"]} <= {str(b_job)}
        assert not a_ids & set(page.text.split('"'))


def _models(world: World) -> None:
    """Models hold no tenant's data: every tenant sees the same list."""
    seen = [world.ingest.get("/v1/models", headers=h).json() for h in (world.a, world.b)]
    assert seen[0] == seen[1]
    assert world.ingest.get("/v1/models/whisper-1", headers=world.b).status_code == 200


def _queue(world: World) -> None:
    """The queue view counts the key's tenant's jobs only: B sees none of A's."""
    own = world.status.get("/v1/queue", headers=world.a).json()
    assert {s["stage"]: s["waiting"] for s in own["stages"]} == {"transcription": 1, "notes": 0}
    theirs = world.status.get("/v1/queue", headers=world.b)
    assert theirs.status_code == 200, theirs.text
    assert all(s["waiting"] == s["running"] == s["workers_seen"] == 0
               for s in theirs.json()["stages"])  # fmt: skip


ISOLATION: dict[Endpoint, Callable[[World], None]] = {
    ("POST", "/v1/audio/transcriptions"): _openai_transcription,
    ("GET", "/v1/models"): _models,
    ("GET", "/v1/models/{model_id:path}"): _models,
    ("POST", "/v1/jobs"): _create,
    ("GET", "/v1/jobs"): _list,
    ("GET", "/v1/jobs/{job_id}"): _read_case("/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/events"): _read_case("/v1/jobs/{job_id}/events"),
    ("GET", "/v1/jobs/{job_id}/transcript"): _read_case("/v1/jobs/{job_id}/transcript"),
    ("GET", "/v1/jobs/{job_id}/results"): _read_case("/v1/jobs/{job_id}/results"),
    ("GET", "/v1/jobs/{job_id}/webhooks"): _read_case("/v1/jobs/{job_id}/webhooks"),
    ("GET", "/v1/jobs/{job_id}/stream"): _read_case("/v1/jobs/{job_id}/stream"),
    ("GET", "/v1/jobs/{job_id}/audio"): _read_case("/v1/jobs/{job_id}/audio"),
    ("GET", "/v1/search"): _search,
    ("POST", "/v1/jobs/{job_id}/cancel"): _cancel,
    ("PATCH", "/v1/jobs/{job_id}/speakers"): _rename,
    ("DELETE", "/v1/jobs/{job_id}"): _delete,
    ("GET", "/v1/queue"): _queue,
}

ALL_ENDPOINTS = sorted(INGEST_ENDPOINTS | STATUS_ENDPOINTS)
GUARDED = sorted((INGEST_ENDPOINTS | STATUS_ENDPOINTS) - PUBLIC)


def test_every_route_has_a_case() -> None:
    """A route is either public on purpose or has a tenant-isolation case."""
    assert set(ALL_ENDPOINTS) == PUBLIC | set(ISOLATION)


@pytest.mark.parametrize("endpoint", GUARDED, ids=" ".join)
def test_other_tenant_cannot_reach_the_job(endpoint: Endpoint, world: World) -> None:
    assert endpoint in ISOLATION, f"{endpoint} has no tenant-isolation case"
    ISOLATION[endpoint](world)


def _request(world: World, endpoint: Endpoint, headers: dict[str, Any]) -> Any:
    """Call `endpoint` as A would (reads of the finished job, changes to the queued one)."""
    method, path = endpoint
    client = world.ingest if endpoint in INGEST_ENDPOINTS else world.status
    path = path.replace("{model_id:path}", "whisper-1")
    url = path.format(job_id=world.done if method == "GET" else world.queued)
    if endpoint == ("POST", "/v1/jobs"):
        files = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
        return client.post(url, headers=headers, files=files)
    if endpoint == ("POST", "/v1/audio/transcriptions"):
        return _transcribe(world, headers)
    if endpoint == ("GET", "/v1/search"):
        return client.get(url, headers=headers, params={"q": "kenobi"})
    if endpoint == ("PATCH", "/v1/jobs/{job_id}/speakers"):  # the finished job's speakers
        return client.patch(path.format(job_id=world.done), headers=headers, json=RENAME)
    return client.request(method, url, headers=headers)


def _refused_credentials(world: World, revoked: IssuedKey) -> dict[str, tuple[dict[str, Any], str]]:
    """Authorization headers that must each get a 401, with the code they get."""
    valid = world.a["Authorization"].removeprefix("Bearer ")
    return {
        "no header": ({}, "missing_api_key"),
        "Basic scheme": ({"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}, "missing_api_key"),
        "empty bearer": ({"Authorization": "Bearer "}, "missing_api_key"),
        "scheme only": ({"Authorization": "Bearer"}, "missing_api_key"),
        "key as scheme": ({"Authorization": valid}, "missing_api_key"),
        "wrong prefix": ({"Authorization": "Bearer sk_" + valid[3:]}, "invalid_api_key"),
        "unknown key": ({"Authorization": "Bearer vf_" + "A" * 43}, "invalid_api_key"),
        "valid key's prefix, other secret": (
            {"Authorization": f"Bearer {valid[:11]}{'B' * 32}"}, "invalid_api_key"),
        "valid key plus one character": ({"Authorization": f"Bearer {valid}x"}, "invalid_api_key"),
        "valid key truncated": ({"Authorization": f"Bearer {valid[:-1]}"}, "invalid_api_key"),
        "8 KiB key": ({"Authorization": "Bearer vf_" + "k" * 8192}, "invalid_api_key"),
        "latin-1 key": ({"Authorization": "Bearer vf_clé_ünïcødé".encode("latin-1")},
                        "invalid_api_key"),
        "utf-8 key": ({"Authorization": "Bearer vf_🔑🔑".encode()}, "invalid_api_key"),
        "revoked key": (_bearer(revoked), "invalid_api_key"),
    }  # fmt: skip


@pytest.fixture
def revoked(world: World, sessions: sessionmaker[Session]) -> IssuedKey:
    """A key of tenant A that worked, then was revoked by its prefix (as `keys revoke` does)."""
    with session_scope(sessions) as session:
        key = issue_key(session, world.a_tenant, "leaked")
    assert world.status.get("/v1/jobs", headers=_bearer(key)).status_code == 200
    with session_scope(sessions) as session:
        assert repository.revoke_api_key(session, key.prefix) == 1
    return key


@pytest.mark.parametrize("endpoint", GUARDED, ids=" ".join)
def test_bad_credentials_are_refused(endpoint: Endpoint, world: World, revoked: IssuedKey) -> None:
    jobs_before = _count_jobs(world)
    for label, (headers, code) in _refused_credentials(world, revoked).items():
        response = _request(world, endpoint, headers)
        assert response.status_code == 401, f"{label}: {response.status_code} {response.text}"
        assert response.json()["error"]["code"] == code, label
        assert response.headers["www-authenticate"] == "Bearer", label
    # Nothing was created, canceled or deleted on the way.
    assert _count_jobs(world) == jobs_before
    assert world.job(world.queued).status == "queued"
    # The same request with A's key goes through, so the 401s were about the key alone.
    assert _request(world, endpoint, world.a).status_code < 400


def _count_jobs(world: World) -> int:
    with world.sessions() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


@pytest.mark.parametrize("endpoint", sorted(PUBLIC), ids=" ".join)
def test_public_endpoints_need_no_key(endpoint: Endpoint, world: World) -> None:
    method, path = endpoint
    # Each app that serves it (the console is the status API's only), a file for a name.
    apps = [(world.ingest, INGEST_ENDPOINTS), (world.status, STATUS_ENDPOINTS)]
    for client in (client for client, served in apps if endpoint in served):
        response = client.request(method, path.replace("{name}", "main.js"))
        assert response.status_code == 200, f"{path}: {response.text}"
        # A public page never carries a tenant's job.
        assert str(world.queued) not in response.text
