"""Database engine and the unit-of-work boundary (`session_scope`).

Only the unit-of-work boundary commits. Work queued with `after_commit` (task publishes)
runs once the commit succeeded and is dropped on rollback, so a message never points at a
row that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Dialect, Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, sessionmaker

from voxflow.fairpool import FairAsyncQueuePool
from voxflow.observability.tracing import instrument_engine

log = logging.getLogger(__name__)

_AFTER_COMMIT = "voxflow_after_commit"
_WROTE = "voxflow_wrote"
_READ_ONLY = "voxflow_read_only"
_UNDO = "voxflow_undo_unless_committed"  # of the open transaction
_DUE = "voxflow_undo_due"  # of transactions that rolled back (a later commit keeps them due)


class Base(DeclarativeBase):
    """Declarative base of every Voxflow table."""


def normalize_url(url: str) -> str:
    """Make any PostgreSQL URL use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# libpq's URL options that asyncpg knows under another name (asyncpg refuses unknown ones).
_ASYNCPG_OPTIONS = {"sslmode": "ssl", "connect_timeout": "timeout"}


def async_url(url: str) -> URL:
    """The same database for the APIs' asyncio engine: asyncpg, libpq options renamed.

    A URL written for libpq (`?sslmode=require`, as KEDA and psql read it too) works here
    unchanged; a Unix socket stays `?host=/dir`.
    """
    parsed = make_url(normalize_url(url)).set(drivername="postgresql+asyncpg")
    query = {_ASYNCPG_OPTIONS.get(name, name): value for name, value in parsed.query.items()}
    return parsed.set(query=query)


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """Create an engine for a PostgreSQL URL (TCP or Unix socket), traced if tracing is on."""
    engine = create_engine(normalize_url(url), pool_size=pool_size, pool_pre_ping=True, future=True)
    instrument_engine(engine)
    return engine


def make_async_engine(url: str, pool_size: int = 5, name: str = "voxflow") -> AsyncEngine:
    """An asyncio engine (asyncpg) for the HTTP services, traced if on.

    asyncpg, not psycopg's async mode: the same ORM lookup costs 400 µs of CPU instead of
    530, and a hot read on the driver connection (`voxflow.web.reads`) 170 instead of 250
    (docs/api-performance.md). The workers, synchronous, keep psycopg.

    `name` is the connections' `application_name`: an operator (or a test) tells the
    service's sessions apart in `pg_stat_activity`.

    No pre-ping: a ping is a round trip on every checkout, as much as the query a read
    request makes. A connection that died (the server restarted) fails its request with
    a 503 `database_unavailable`, and SQLAlchemy then drops every pooled connection made
    before the failure, so the next requests reconnect.
    """
    # No overflow: a connection opened for one request and closed after it costs the server
    # a process start; waiting for a pooled one is far cheaper.
    engine = create_async_engine(
        async_url(url),
        poolclass=FairAsyncQueuePool,  # waiting requests get connections in arrival order
        pool_size=pool_size,
        max_overflow=0,
        skip_autocommit_rollback=True,
        connect_args={"server_settings": {"application_name": name}},
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_dbapi_error)
    instrument_engine(engine.sync_engine)
    return engine


def _connect_or_dbapi_error(
    dialect: Dialect, _record: object, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Connect; a refused or timed-out connection becomes the driver's OperationalError.

    asyncpg raises the socket's own error (`ConnectionRefusedError`, `TimeoutError`) when it
    cannot connect, which SQLAlchemy passes through unwrapped; psycopg raises an
    OperationalError. Translated here, an unreachable database is a `DBAPIError` for both
    drivers, which the APIs answer with 503 `database_unavailable`.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, TimeoutError) as exc:
        raise dialect.loaded_dbapi.OperationalError(f"cannot connect: {exc}") from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Create the session factory; sessions never expire loaded rows on commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The asyncio session factory; like `make_sessionmaker`, rows never expire on commit."""
    return async_sessionmaker(bind=engine, expire_on_commit=False)


def read_only(session: Session) -> None:
    """Make the session refuse to write (the unit of work of a GET request runs without a
    transaction, so a write there would commit at once, alone)."""
    session.info[_READ_ONLY] = True


def wrote(session: Session) -> bool:
    """Whether the session's unit of work changed anything (a flush, or an INSERT/UPDATE/DELETE)."""
    return bool(session.info.get(_WROTE))


def _note_write(session: Session) -> None:
    if session.info.get(_READ_ONLY):
        raise RuntimeError("this unit of work is read-only (a GET request) and cannot write")
    session.info[_WROTE] = True


@event.listens_for(Session, "before_flush")
def _note_flush(session: Session, _context: object, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        _note_write(session)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        _note_write(state.session)


def after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run `callback` after the session's current transaction commits; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def undo_unless_committed(session: Session, undo: Callable[[], Any]) -> None:
    """Have the unit-of-work boundary call `undo` if this transaction does not commit.

    For what lives outside the database: audio stored for a job that is never recorded.
    """
    session.info.setdefault(_UNDO, []).append(undo)


def take_undos(session: Session) -> list[Callable[[], Any]]:
    """The undos of work that was not committed (the boundary runs them at its end): those
    of transactions rolled back, and those of the transaction still open."""
    undos: list[Callable[[], Any]] = session.info.pop(_DUE, []) + session.info.pop(_UNDO, [])
    return undos


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks: list[Callable[[], Any]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The row is committed; the sweeper re-publishes jobs whose message never left.
            log.exception("after-commit callback failed; the sweeper will recover")


@event.listens_for(Session, "after_commit")
def _forget_writes(session: Session) -> None:
    session.info.pop(_WROTE, None)
    session.info.pop(_UNDO, None)  # committed: nothing to undo


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
    session.info.pop(_WROTE, None)
    session.info.setdefault(_DUE, []).extend(session.info.pop(_UNDO, []))


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        for undo in take_undos(session):
            undo()
