"""All SQL about idempotency keys. Functions here flush but never commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from voxflow.jobs.models import IdempotencyKey


def take(session: Session, tenant: str, key: str, now: datetime, expires: datetime) -> bool:
    """Insert the key as in flight; False if the tenant already has it."""
    taken = session.execute(
        insert(IdempotencyKey)
        .values(tenant=tenant, key=key, state="in_flight", created_at=now, expires_at=expires)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    return taken is not None


def lock(session: Session, tenant: str, key: str) -> IdempotencyKey:
    """The tenant's existing key, locked until the transaction ends."""
    return session.scalars(
        select(IdempotencyKey)
        .where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key)
        .with_for_update()
    ).one()


def restart(row: IdempotencyKey, now: datetime, expires: datetime) -> None:
    """Start a key over as in flight (its old answer expired or never came)."""
    row.state, row.created_at, row.expires_at = "in_flight", now, expires
    row.fingerprint = row.response_body = row.response_headers = None
    row.response_status = row.job_id = None


def store_answer(
    session: Session, tenant: str, key: str, fingerprint: str, *, status_code: int,
    body: dict[str, Any], headers: dict[str, str], job_id: uuid.UUID,
) -> None:  # fmt: skip
    """Record the answer of the request that holds the key (a swept key is not kept)."""
    row = session.get(IdempotencyKey, (tenant, key))
    if row is None:  # swept while the request worked: the job stands; the key is not kept
        return
    row.state, row.fingerprint, row.job_id = "done", fingerprint, job_id
    row.response_status, row.response_body, row.response_headers = status_code, body, headers


def delete_in_flight(session: Session, tenant: str, key: str) -> None:
    """Let go of a key whose request failed."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant == tenant,
            IdempotencyKey.key == key,
            IdempotencyKey.state == "in_flight",
        )
    )


def purge_expired(session: Session) -> int:
    """Delete idempotency keys past their expiry; returns how many went."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= func.now()))
    return int(getattr(result, "rowcount", 0) or 0)
