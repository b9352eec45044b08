"""Per-process resources of an HTTP service, and the one database session of each request."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError
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

if TYPE_CHECKING:
    from asyncpg import Connection

log = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD"})

# What asyncpg raises: the server's errors, the client's (a connection in a state it cannot
# use, e.g. after the server ended the session while it sat in the pool) and the socket's.
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                  OSError)  # fmt: skip


def _breaks_connection(exc: Exception) -> bool:
    """Whether the connection cannot be trusted after `exc` (an error the server reports
    about a statement, such as a syntax error, leaves it usable)."""
    return not isinstance(exc, asyncpg.PostgresError) or isinstance(
        exc, (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)
    )


@dataclass
class ApiRuntime:
    """Database access, storage and the API key cache shared by a service's requests."""

    engine: AsyncEngine
    autocommit: AsyncEngine  # the same pool; each statement reads committed data, no BEGIN
    sessions: async_sessionmaker[AsyncSession]  # a transaction, committed once
    reads: async_sessionmaker[AsyncSession]  # on `autocommit`
    storage: Storage
    keys: ApiKeyCache

    @classmethod
    def build(
        cls,
        settings: DatabaseSettings,
        auth: AuthSettings,
        storage: Storage,
        service: str = "voxflow",
    ) -> ApiRuntime:
        """Connect to the configured database (as `service`, its `application_name`)."""
        if not settings.database_url:
            raise RuntimeError(
                "VOXFLOW_DATABASE_URL is not set (use `voxflow run` for an embedded stack)"
            )
        try:
            storage.check()  # a missing bucket or a denied access stops the start, loudly
        except StorageUnavailableError as exc:
            # Unreachable may be temporary (the storage starting too): /readyz reports it.
            log.warning("storage not reachable at startup: %s", exc)
        engine = make_async_engine(settings.database_url, settings.database_pool_size, service)
        # BEGIN and ROLLBACK would be two of a read request's three round trips.
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        return cls(
            engine=engine,
            autocommit=autocommit,
            sessions=make_async_sessionmaker(engine),
            reads=make_async_sessionmaker(autocommit),
            storage=storage,
            keys=ApiKeyCache(auth.api_key_cache_seconds),
        )

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Connection]:
        """A pooled connection's own asyncpg connection, in autocommit, for the hot reads
        that skip the ORM (`voxflow.jobs.reads`).

        Its errors are SQLAlchemy's `DBAPIError`, as for any other statement: a lost or
        refused connection is answered 503, and a connection found closed is invalidated,
        so the pool opens a new one.
        """
        async with self.autocommit.connect() as conn:
            pooled = await conn.get_raw_connection()
            driver: Connection = pooled.driver_connection  # type: ignore[assignment]
            try:
                yield driver
            except _DRIVER_ERRORS as exc:
                lost = driver.is_closed() or _breaks_connection(exc)
                if lost:
                    await conn.invalidate(exc)
                raise DBAPIError(None, None, exc, connection_invalidated=lost) from exc

    async def close(self) -> None:
        """Release pooled connections."""
        await self.engine.dispose()


# Young objects are collected every this many allocations (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Take the objects of startup out of the garbage collector's sight; call it last in an
    API's startup.

    Measured under load: without it, the collector's oldest generation ran about once a
    second and took 45 ms each time (122,000 objects, nearly all of them modules, classes and
    routes made at import), stalling every request in flight: a job read's p99 was 58 ms
    with a p50 of 8 ms. Frozen, that collection takes about 1.5 ms (p99 14 ms). Collecting
    the young generation less often also moves fewer request-scoped objects into the old one.

    Once per process: an app started again in the same process (tests) finds it done.
    """
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def api_runtime(request: Request) -> ApiRuntime:
    """FastAPI dependency: the app's runtime."""
    runtime: ApiRuntime = request.app.state.runtime
    return runtime


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's one session, and the only place that commits.

    A GET (or HEAD) reads outside any transaction and may not write (the session refuses).
    Any other method gets one transaction, committed once, after the route returned and
    before the answer is sent, if the route wrote anything; a route that raises rolls it
    all back. Services and repositories only flush.
    """
    runtime = api_runtime(request)
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
