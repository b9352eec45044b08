"""The web console's routes (its files, their security headers, its config) and the queue view.

What the console does in a browser is tested in tests/console with a real Chromium.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from status_api.app import create_app
from status_api.console import assets
from status_api.settings import StatusSettings
from tests.services.status_api.conftest import JobMaker
from voxflow.db import session_scope
from voxflow.jobs.models import Job

# Every module the page imports, directly or not, is one of its files.
IMPORT = re.compile(r"""^import .* from "\./([a-z]+\.js)";$""", re.MULTILINE)


def test_index_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/console/main.js">' in response.text
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self' http://127.0.0.1:8000"  # the ingestion API
    assert policy["media-src"] == "'self' blob:"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_files_are_served_with_their_types_and_revalidated(client: TestClient) -> None:
    script = client.get("/console/main.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-security-policy" in script.headers
    assert script.headers["cache-control"] == "no-cache"
    again = client.get("/console/main.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert client.get("/console/style.css").headers["content-type"] == "text/css; charset=utf-8"


def test_every_import_and_reference_resolves(client: TestClient) -> None:
    files = assets()
    for name, asset in files.items():
        if name.endswith(".js"):
            for imported in IMPORT.findall(asset.body.decode()):
                assert imported in files, f"{name} imports {imported}, which is not served"
    index = files["index.html"].body.decode()
    for referenced in re.findall(r'(?:href|src)="/console/([^"]+)"', index):
        assert client.get(f"/console/{referenced}").status_code == 200, referenced
    # Nothing comes from elsewhere: no absolute URL in any file (the policy would block it).
    for name, asset in files.items():
        assert not re.search(rb"(?:src|href)=\"(?:https?:)?//", asset.body), name
        assert b"@import" not in asset.body, name


def test_unknown_files_and_paths_are_404s(client: TestClient) -> None:
    for path in ("/console/nope.js", "/console/..%2Fapp.py", "/console/app.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_config_names_the_ingestion_api(voxflow_env: dict[str, str]) -> None:
    settings = StatusSettings(public_ingest_url="https://upload.example.com/")
    with TestClient(create_app(settings)) as client:
        response = client.get("/console/config.json")
        page = client.get("/")
    assert response.json() == {"ingest_url": "https://upload.example.com"}
    assert response.headers["cache-control"] == "no-store"
    assert (
        "connect-src 'self' https://upload.example.com;" in page.headers["content-security-policy"]
    )


def test_the_api_documentation_and_probes_still_answer(client: TestClient) -> None:
    for path in ("/docs", "/openapi.json", "/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path
    assert "/" not in client.get("/openapi.json").json()["paths"]


def _stage(answer: dict[str, object], name: str) -> dict[str, object]:
    stages = answer["stages"]
    assert isinstance(stages, list)
    found: dict[str, object] = next(s for s in stages if s["stage"] == name)
    return found


def test_queue_counts_the_tenants_unfinished_jobs_per_stage(
    client: TestClient, auth: dict[str, str], jobs: JobMaker, sessions: sessionmaker[Session]
) -> None:
    empty = client.get("/v1/queue", headers=auth)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"stages": [
        {"stage": "transcription", "waiting": 0, "running": 0, "oldest_waiting_seconds": None,
         "workers_seen": 0},
        {"stage": "notes", "waiting": 0, "running": 0, "oldest_waiting_seconds": None,
         "workers_seen": 0},
    ]}  # fmt: skip
    jobs.queued()
    oldest = jobs.queued()
    with session_scope(sessions) as session:  # this one has waited ten minutes
        session.execute(update(Job).where(Job.id.in_(oldest))
                        .values(updated_at=Job.updated_at - timedelta(minutes=10)))  # fmt: skip
    running = jobs.queued()
    jobs.claim(running[0])
    noting = jobs.queued(tasks=["summary"])
    jobs.transcribe(noting[0])  # transcribed: waits for the LLM worker
    done = jobs.queued()
    jobs.transcribe(done[0])  # no tasks: completed, so not counted
    answer = client.get("/v1/queue", headers=auth).json()
    transcription = _stage(answer, "transcription")
    assert (transcription["waiting"], transcription["running"]) == (2, 1)
    assert 590 < float(str(transcription["oldest_waiting_seconds"])) < 700
    assert transcription["workers_seen"] == 1  # WORKER claimed three jobs: one worker
    notes = _stage(answer, "notes")
    assert (notes["waiting"], notes["running"], notes["workers_seen"]) == (1, 0, 0)


def test_queue_shows_only_the_tenants_own_jobs(
    client: TestClient, auth: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    other = JobMaker(sessions, f"o{uuid.uuid4().hex[:10]}")
    other.claim(other.queued()[0])
    other.queued(count=3)
    answer = client.get("/v1/queue", headers=auth).json()
    # Neither the other tenant's jobs nor the worker running one of them are seen.
    assert all(s["waiting"] == s["running"] == s["workers_seen"] == 0 for s in answer["stages"])


def test_queue_needs_a_key(client: TestClient) -> None:
    response = client.get("/v1/queue")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
