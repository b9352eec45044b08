"""Reads when the server drops the API's pooled connections; the settled heap; asyncpg URLs."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from status_api.app import create_app
from tests.services.status_api.conftest import JobMaker
from voxflow.db import async_url
from voxflow.web.api_runtime import GC_YOUNG_THRESHOLD


@pytest.fixture
def own_client() -> Iterator[TestClient]:
    """A status API of this test's own: its pooled connections are the ones it kills."""
    with TestClient(create_app()) as running:
        yield running


def _backends(engine: Engine) -> set[int]:
    """The status API's sessions (by their `application_name`)."""
    with engine.connect() as connection:
        return set(
            connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'voxflow-status-api'"
                )
            ).scalars()
        )


@pytest.mark.parametrize("read", ["", "/events"], ids=["hot read", "ORM read"])
def test_a_connection_lost_under_a_read_is_a_503_then_replaced(
    own_client: TestClient, engine: Engine, jobs: JobMaker, auth: dict[str, str], read: str
) -> None:
    """The server ends the API's pooled sessions (as a restart or a failover does)."""
    [job_id] = jobs.queued()
    before = _backends(engine)
    assert own_client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 200
    assert own_client.get("/v1/jobs", headers=auth).status_code == 200
    mine = _backends(engine) - before
    assert mine, "the API read without a connection of its own?"
    with engine.connect() as connection:  # the server ends the API's sessions under it
        for pid in mine:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    answers = [own_client.get(f"/v1/jobs/{job_id}{read}", headers=auth) for _ in mine]
    lost = [a for a in answers if a.status_code != 200]
    assert lost, "no read noticed that its connection was gone"
    for answer in lost:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "database_unavailable"
        assert answer.headers["Retry-After"] == "5"
    # Each dead connection fails one request and is dropped: the pool opens new ones.
    for path in (f"/v1/jobs/{job_id}", "/v1/jobs", f"/v1/jobs/{job_id}/events"):
        again = own_client.get(path, headers=auth)
        assert again.status_code == 200, again.text
    assert own_client.get(f"/v1/jobs/{job_id}", headers=auth).json()["id"] == str(job_id)


def test_the_startup_heap_is_frozen(own_client: TestClient) -> None:
    assert own_client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD


def test_a_libpq_url_works_for_asyncpg() -> None:
    url = async_url(
        "postgresql://u:secret@db.example:5432/voxflow?sslmode=require&connect_timeout=5"
    )
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.password) == (
        "db.example",
        5432,
        "voxflow",
        "secret",
    )
    assert dict(url.query) == {"ssl": "require", "timeout": "5"}
    socket = async_url("postgresql+psycopg://postgres:@/voxflow?host=/run/postgresql")
    assert socket.drivername == "postgresql+asyncpg"
    assert dict(socket.query) == {"host": "/run/postgresql"}
