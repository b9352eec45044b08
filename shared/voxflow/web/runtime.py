"""Per-process resources of an HTTP service, built once at startup."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import make_engine, make_sessionmaker
from voxflow.settings import DatabaseSettings
from voxflow.storage import Storage, StorageUnavailableError

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Database access and storage shared by a service's requests."""

    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage

    @classmethod
    def build(cls, database: DatabaseSettings, storage: Storage) -> Runtime:
        """Connect to the configured database."""
        if not database.database_url:
            raise RuntimeError(
                "VOXFLOW_DATABASE_URL is not set (use `voxflow run` for an embedded stack)"
            )
        try:
            storage.check()  # a missing bucket or a denied access stops the start, loudly
        except StorageUnavailableError as exc:
            # Unreachable may be temporary (the storage starting too): /readyz reports it.
            log.warning("storage not reachable at startup: %s", exc)
        engine = make_engine(database.database_url, database.database_pool_size)
        return cls(engine=engine, sessions=make_sessionmaker(engine), storage=storage)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()


def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def read_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a read-only session closed after the request."""
    session = get_runtime(request).sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
