"""Per-process resources of an HTTP service, and the one database session of each request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from voxflow.db import (
    make_async_engine,
    make_async_sessionmaker,
    read_only,
    take_undos,
    wrote,
)
from voxflow.settings import AuthSettings, DatabaseSettings
from voxflow.storage import Storage, StorageUnavailableError
from voxflow.web.keycache import ApiKeyCache

log = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class Runtime:
    """Database access, storage and the API key cache shared by a service's requests."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]  # a transaction, committed once
    reads: async_sessionmaker[AsyncSession]  # no transaction: each statement reads committed data
    storage: Storage
    keys: ApiKeyCache

    @classmethod
    def build(cls, settings: DatabaseSettings, auth: AuthSettings, storage: Storage) -> Runtime:
        """Connect to the configured database."""
        if not settings.database_url:
            raise RuntimeError(
                "VOXFLOW_DATABASE_URL is not set (use `voxflow run` for an embedded stack)"
            )
        try:
            storage.check()  # a missing bucket or a denied access stops the start, loudly
        except StorageUnavailableError as exc:
            # Unreachable may be temporary (the storage starting too): /readyz reports it.
            log.warning("storage not reachable at startup: %s", exc)
        engine = make_async_engine(settings.database_url, settings.database_pool_size)
        return cls(
            engine=engine,
            sessions=make_async_sessionmaker(engine),
            # BEGIN and ROLLBACK would be two of a read request's three round trips.
            reads=make_async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT")),
            storage=storage,
            keys=ApiKeyCache(auth.api_key_cache_seconds),
        )

    async def close(self) -> None:
        """Release pooled connections."""
        await self.engine.dispose()


def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's one session, and the only place that commits.

    A GET (or HEAD) reads outside any transaction and may not write (the session refuses).
    Any other method gets one transaction, committed once, after the route returned and
    before the answer is sent, if the route wrote anything; a route that raises rolls it
    all back. Services and repositories only flush.
    """
    runtime = get_runtime(request)
    if request.method in _SAFE_METHODS:
        async with runtime.reads() as reading:
            read_only(reading.sync_session)
            yield reading
        return
    async with runtime.sessions() as session:
        try:
            yield session
            if wrote(session.sync_session):
                await session.commit()
        finally:
            for undo in take_undos(session.sync_session):  # the commit did not happen
                await run_in_threadpool(undo)  # storage calls block


DbSession = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
"""The request's session (`scope="function"`: committed before the response leaves)."""
