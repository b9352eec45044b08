"""Suite-wide fixtures: real PostgreSQL and Redis, a migrated scratch database, storage."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from tests.support import netguard
from tests.support.servers import Servers, open_servers, scratch_database
from voxflow.apikeys import IssuedKey, issue_key
from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.embedded import redis_client_url
from voxflow.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def pytest_configure(config: pytest.Config) -> None:
    """No test may reach beyond this machine: see tests/support/netguard.py."""
    netguard.install()


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """This machine's servers (VOXFLOW_TEST_*) or embedded ones started for the session."""
    # A short path: Unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="vf-") as data, open_servers(Path(data)) as found:
        yield found


@pytest.fixture(scope="session")
def database_url(servers: Servers) -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    with scratch_database(servers.postgres_admin_url) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local storage root shared by the in-process APIs and the worker processes."""
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="session", autouse=True)
def voxflow_env(
    database_url: str, servers: Servers, storage_root: Path
) -> Iterator[dict[str, str]]:
    """Point every Voxflow component (and child process) at the test servers."""
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    client.flushdb()  # the test Redis database belongs to the suite
    client.close()
    env = {
        "VOXFLOW_DATABASE_URL": database_url,
        "VOXFLOW_REDIS_URL": servers.redis_url,
        "VOXFLOW_STORAGE_ROOT": str(storage_root),
        "VOXFLOW_DATA_DIR": str(storage_root.parent / "data"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """Engine on the test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Session factory on the test database (commits are real)."""
    return make_sessionmaker(engine)


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session inside one transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture
def tenant() -> str:
    """A tenant name no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api_key(sessions: sessionmaker[Session], tenant: str) -> IssuedKey:
    """A committed API key for `tenant`."""
    with session_scope(sessions) as session:
        return issue_key(session, tenant, "test")


@pytest.fixture
def auth(api_key: IssuedKey) -> dict[str, str]:
    """Authorization header for `tenant`."""
    return {"Authorization": f"Bearer {api_key.secret}"}


@pytest.fixture
def sql_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine of this process sends while the test runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    yield seen
    event.remove(Engine, "before_cursor_execute", note)
