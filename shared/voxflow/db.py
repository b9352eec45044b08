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

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from voxflow.observability.tracing import instrument_engine

log = logging.getLogger(__name__)

_AFTER_COMMIT = "voxflow_after_commit"


class Base(DeclarativeBase):
    """Declarative base of every Voxflow table."""


def normalize_url(url: str) -> str:
    """Make any PostgreSQL URL use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """Create an engine for a PostgreSQL URL (TCP or Unix socket), traced if tracing is on."""
    engine = create_engine(normalize_url(url), pool_size=pool_size, pool_pre_ping=True, future=True)
    instrument_engine(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Create the session factory; sessions never expire loaded rows on commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run `callback` after the session's current transaction commits; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks: list[Callable[[], Any]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The row is committed; the sweeper re-publishes jobs whose message never left.
            log.exception("after-commit callback failed; the sweeper will recover")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


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
