"""The APIs' hottest reads, on the asyncpg connection: a tenant's job, a page of its jobs,
and the count of its unfinished jobs that every upload makes (the quota).

A job read is the request the APIs serve most (clients poll). Run through the ORM on the
asyncio engine, its one query costs about 400 µs of CPU; the same SQL sent straight to the
driver connection costs about 170 µs, and the rest of the request about as much again
(docs/api-performance.md). So these reads skip the ORM, and nothing else does.

The statements are SQLAlchemy Core built from the `jobs` table and compiled once, at import,
to asyncpg's SQL (`$1` parameters), so table and column names have one definition. Rows come
back as `JobRecord`s, the columns a job's view shows, in the order of its fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Select, and_, bindparam, func, or_, select, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from voxflow.jobs.models import UNFINISHED, Job
from voxflow.jobs.states import JobStatus
from voxflow.observability.tracing import database_span

if TYPE_CHECKING:
    from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a job's view shows, read without the ORM (or copied from an ORM `Job`)."""

    id: uuid.UUID
    status: str
    progress: int
    created_at: datetime
    updated_at: datetime
    transcription_started_at: datetime | None
    transcribed_at: datetime | None
    generation_started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    options: dict[str, Any]
    source_filename: str | None
    size_bytes: int
    duration_seconds: float
    content_sha256: str
    error_code: str | None
    error_message: str | None
    webhook_url: str | None

    @classmethod
    def of(cls, job: Job) -> JobRecord:
        """The record of a job loaded through the ORM (a route that also wrote it)."""
        return cls(*(getattr(job, name) for name in _NAMES))


_NAMES = tuple(field.name for field in fields(JobRecord))
_COLUMNS = [Job.__table__.c[name] for name in _NAMES]


@dataclass(frozen=True)
class Compiled:
    """A statement as asyncpg takes it: the SQL, and the order of its parameters."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: Select[Any]) -> Compiled:
        """Compile `statement` (named `bindparam`s only) for asyncpg."""
        compiled = statement.compile(dialect=_DIALECT)
        return cls(str(compiled), tuple(compiled.positiontup or ()))

    def args(self, values: Mapping[str, object]) -> list[object]:
        """The parameters in the statement's order."""
        return [values[name] for name in self.names]


_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]

JOB = Compiled.of(
    select(*_COLUMNS).where(Job.id == bindparam("job_id"), Job.tenant == bindparam("tenant"))
)


# Reads only the partial index of unfinished jobs (ix_jobs_tenant_active): same condition.
ACTIVE_JOBS = Compiled.of(
    select(func.count()).select_from(Job).where(Job.tenant == bindparam("tenant"), text(UNFINISHED))
)


@cache
def page_statement(*, by_status: bool, after: bool) -> Compiled:
    """A page of a tenant's jobs, newest first, optionally of one status and after a cursor."""
    query = select(*_COLUMNS).where(Job.tenant == bindparam("tenant"))
    if by_status:
        query = query.where(Job.status == bindparam("status"))
    if after:  # the keyset cursor: strictly older, or as old with a smaller id
        created = bindparam("created", type_=Job.created_at.type)
        job_id: BindParameter[uuid.UUID] = bindparam("job_id", type_=Job.id.type)
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(bindparam("limit"))
    return Compiled.of(query)


async def get_job(conn: Connection, job_id: uuid.UUID, tenant: str) -> JobRecord | None:
    """The tenant's job, or None (another tenant's job is as absent as a missing one)."""
    with database_span(JOB.sql):
        row = await conn.fetchrow(JOB.sql, *JOB.args({"job_id": job_id, "tenant": tenant}))
    return None if row is None else JobRecord(*row)


async def list_jobs(
    conn: Connection,
    tenant: str,
    *,
    status: JobStatus | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[JobRecord]:
    """A tenant's jobs newest first, starting after the keyset cursor `before`."""
    statement = page_statement(by_status=status is not None, after=before is not None)
    values: dict[str, object] = {"tenant": tenant, "limit": limit}
    if status is not None:
        values["status"] = status.value
    if before is not None:
        values["created"], values["job_id"] = before
    with database_span(statement.sql):
        rows = await conn.fetch(statement.sql, *statement.args(values))
    return [JobRecord(*row) for row in rows]


async def count_active_jobs(conn: Connection, tenant: str) -> int:
    """How many of a tenant's jobs have not finished."""
    with database_span(ACTIVE_JOBS.sql):
        count = await conn.fetchval(ACTIVE_JOBS.sql, *ACTIVE_JOBS.args({"tenant": tenant}))
    return int(count or 0)
