"""`Idempotency-Key` on `POST /v1/jobs`, with Stripe's semantics.

A client that retries an upload (a timeout, a dropped connection) sends the same key and
gets the original answer instead of a second job:

* same key, same request: the stored response is replayed (`Idempotent-Replayed: true`);
* same key, different request: 422 `idempotency_key_reused`;
* same key while the first request is still running: 409 `idempotency_key_in_use`.

Keys are scoped per tenant and expire after `IDEMPOTENCY_TTL_SECONDS` (24 h). The key is
taken in its own committed transaction before the body is read, so a concurrent request
sees it at once; the response is stored in the same transaction as the job, so a job never
exists without its key's answer. A request that fails lets the key go (the client may retry
after fixing the request), and a key held longer than the upload deadline by a request that
died is taken over. "Same request" means the same audio (SHA-256), file name, options and
webhook URL.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import session_scope
from voxflow.jobs.models import IdempotencyKey
from voxflow.web.errors import ApiError

HEADER = "Idempotency-Key"
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


@dataclass(frozen=True)
class Held:
    """What `begin` found: a fresh key for this request, or a finished answer to replay."""

    kind: Literal["new", "done"]
    tenant: str
    key: str
    fingerprint: str | None = None
    status_code: int | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


def parse_key(raw: str | None) -> str | None:
    """The header's value, checked; None when the client sent none."""
    if raw is None:
        return None
    if not _VALID.match(raw):
        raise ApiError(
            400, "invalid_idempotency_key",
            f"The {HEADER} header must be 1 to 255 printable ASCII characters without spaces.",
        )  # fmt: skip
    return raw


def fingerprint(
    sha256: str, filename: str | None, options: dict[str, Any], webhook_url: str | None = None
) -> str:
    """What makes two uploads "the same request"."""
    parts: list[Any] = [sha256, filename, options]
    if webhook_url is not None:  # absent, the fingerprint is the one stored before webhooks
        parts.append(webhook_url)
    material = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def begin(
    sessions: sessionmaker[Session], tenant: str, key: str, *, ttl: timedelta, stale: timedelta
) -> Held:
    """Take the key for this request, or report the answer (or the request) that holds it."""
    now = datetime.now(UTC)
    with session_scope(sessions) as session:
        taken = session.execute(
            insert(IdempotencyKey)
            .values(tenant=tenant, key=key, state="in_flight", created_at=now, expires_at=now + ttl)
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        ).first()
        if taken is not None:
            return Held("new", tenant, key)
        row = session.scalars(
            select(IdempotencyKey)
            .where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key)
            .with_for_update()
        ).one()
        expired = row.expires_at <= now
        abandoned = row.state == "in_flight" and row.created_at <= now - stale
        if expired or abandoned:
            # Start over under the same key: the old answer is gone or never came.
            row.state, row.created_at, row.expires_at = "in_flight", now, now + ttl
            row.fingerprint = row.response_body = row.response_headers = None
            row.response_status = row.job_id = None
            return Held("new", tenant, key)
        if row.state == "in_flight":
            raise ApiError(
                409, "idempotency_key_in_use",
                f"A request with this {HEADER} is still being processed; retry when it ends.",
                {"Retry-After": "5"},
            )  # fmt: skip
        return Held("done", tenant, key, row.fingerprint, row.response_status,
                    row.response_body, row.response_headers)  # fmt: skip


def check_replay(held: Held, request_fingerprint: str) -> None:
    """Refuse a different request under a key that already has an answer."""
    if held.fingerprint != request_fingerprint:
        raise ApiError(
            422, "idempotency_key_reused",
            f"This {HEADER} was used for a different upload (other audio, file name, "
            "options or webhook URL); use a new key for a new request.",
        )  # fmt: skip


def complete(
    session: Session, held: Held, request_fingerprint: str, *, status_code: int,
    body: dict[str, Any], headers: dict[str, str], job_id: Any,
) -> None:  # fmt: skip
    """Store the answer, in the transaction that records the job."""
    row = session.get(IdempotencyKey, (held.tenant, held.key))
    if row is None:  # swept while we worked: the job stands; the key is simply not kept
        return
    row.state, row.fingerprint, row.job_id = "done", request_fingerprint, job_id
    row.response_status, row.response_body, row.response_headers = status_code, body, headers


def release(sessions: sessionmaker[Session], held: Held) -> None:
    """Let the key go after a failed request, so the client may retry with it."""
    with session_scope(sessions) as session:
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.tenant == held.tenant,
                IdempotencyKey.key == held.key,
                IdempotencyKey.state == "in_flight",
            )
        )
