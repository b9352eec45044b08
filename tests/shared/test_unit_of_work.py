"""One unit of work per request: one session, one commit for a write, none for a read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from voxflow.apikeys import issue_key
from voxflow.db import undo_unless_committed
from voxflow.jobs.models import ApiKey
from voxflow.settings import AuthSettings, DatabaseSettings
from voxflow.storage.local import LocalStorage
from voxflow.web.api_runtime import ApiRuntime, DbSession


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, list[str], list[str]]]:
    """Routes that read, write, and write then fail; with the transaction ends they cause."""
    undone: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ApiRuntime.build(
            DatabaseSettings(database_url=database_url), AuthSettings(), LocalStorage(tmp_path)
        )
        app.state.runtime = runtime
        yield
        await runtime.close()

    api = FastAPI(lifespan=lifespan)

    @api.get("/count/{tenant}")
    async def count(tenant: str, session: DbSession) -> int:
        query = select(func.count()).select_from(ApiKey).where(ApiKey.tenant == tenant)
        return int(await session.scalar(query) or 0)

    @api.get("/sneaky/{tenant}")
    async def sneaky(tenant: str, session: DbSession) -> None:
        await session.run_sync(issue_key, tenant)  # a GET must not write

    @api.post("/keys/{tenant}")
    async def create(tenant: str, session: DbSession, fail: bool = False) -> str:
        await session.run_sync(issue_key, tenant)
        await session.run_sync(issue_key, tenant)
        undo_unless_committed(session.sync_session, lambda: undone.append(tenant))
        if fail:
            raise RuntimeError("the route failed after writing")
        return "ok"

    @api.post("/retry/{tenant}")
    async def retry(tenant: str, session: DbSession) -> str:
        # Work whose transaction rolls back, then other work that commits (as an upload that
        # fails frees its idempotency key): the first work's undo must still run.
        await session.run_sync(issue_key, tenant)
        undo_unless_committed(session.sync_session, lambda: undone.append(tenant))
        await session.rollback()
        await session.run_sync(issue_key, tenant)
        await session.commit()
        return "ok"

    @api.post("/look/{tenant}")
    async def look(tenant: str, session: DbSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)

    ends: list[str] = []
    with TestClient(api, raise_server_exceptions=False) as client:
        engine = api.state.runtime.engine.sync_engine

        def note(name: str) -> Any:
            return lambda *_: ends.append(name)

        for name in ("begin", "commit", "rollback"):
            event.listen(engine, name, note(name))
        yield client, ends, undone


def _keys(sessions: sessionmaker[Session], tenant: str) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).where(ApiKey.tenant == tenant)) or 0)


def test_a_write_commits_once_after_the_route(
    app: tuple[TestClient, list[str], list[str]],
    sessions: sessionmaker[Session],
    tenant: str,
) -> None:
    client, ends, undone = app
    assert client.post(f"/keys/{tenant}").status_code == 200
    assert ends.count("commit") == 1  # two inserts, one commit
    assert _keys(sessions, tenant) == 2
    assert undone == []  # committed: nothing to undo


def test_a_failed_write_rolls_back_and_runs_its_undos(
    app: tuple[TestClient, list[str], list[str]],
    sessions: sessionmaker[Session],
    tenant: str,
) -> None:
    client, ends, undone = app
    assert client.post(f"/keys/{tenant}", params={"fail": True}).status_code == 500
    assert "commit" not in ends
    assert _keys(sessions, tenant) == 0
    assert undone == [tenant]


def test_reads_never_commit(app: tuple[TestClient, list[str], list[str]]) -> None:
    client, ends, _ = app
    assert client.get("/count/nobody").json() == 0
    assert client.post("/look/nobody").status_code == 200  # a POST that only read
    assert "commit" not in ends


def test_a_get_cannot_write(
    app: tuple[TestClient, list[str], list[str]],
    sessions: sessionmaker[Session],
    tenant: str,
) -> None:
    client, ends, _ = app
    assert client.get(f"/sneaky/{tenant}").status_code == 500
    assert "commit" not in ends
    assert _keys(sessions, tenant) == 0


def test_an_undo_survives_a_later_commit_of_other_work(
    app: tuple[TestClient, list[str], list[str]],
    sessions: sessionmaker[Session],
    tenant: str,
) -> None:
    client, _, undone = app
    assert client.post(f"/retry/{tenant}").status_code == 200
    assert _keys(sessions, tenant) == 1  # only the work after the rollback was kept
    assert undone == [tenant]
