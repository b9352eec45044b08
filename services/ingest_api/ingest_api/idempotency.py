"""`Idempotency-Key` on `POST /v1/jobs`, with Stripe's semantics.

A client that retries an upload (a timeout, a dropped connection) sends the same key and
gets the original answer instead of a second job:

* same key, same request: the stored response is replayed (`Idempotent-Replayed: true`);
* same key, different request: 422 `idempotency_key_reused`;
* same key while the first request is still running: 409 `idempotency_key_in_use`.

Keys are scoped per tenant and expire after `IDEMPOTENCY_TTL_SECONDS` (24 h). The key is
taken and committed before the body is read (the one commit of a request before its end),
so a concurrent request sees it at once; the response is stored in the same transaction as
the job, so a job never
exists without its key's answer. A request that fails lets the key go (the client may retry
after fixing the request), and a key held longer than the upload deadline by a request that
died is taken over. "Same request" means the same audio (SHA-256), file name, options and
webhook URL.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from voxflow.jobs import idempotency_keys
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


def begin(session: Session, tenant: str, key: str, *, ttl: timedelta, stale: timedelta) -> Held:
    """Take the key for this request, or report the answer (or the request) that holds it.

    A key taken here must be committed at once by the caller, before the body is read: the
    request that retries concurrently has to see it taken.
    """
    now = datetime.now(UTC)
    if idempotency_keys.take(session, tenant, key, now, now + ttl):
        return Held("new", tenant, key)
    row = idempotency_keys.lock(session, tenant, key)
    expired = row.expires_at <= now
    abandoned = row.state == "in_flight" and row.created_at <= now - stale
    if expired or abandoned:
        # Start over under the same key: the old answer is gone or never came.
        idempotency_keys.restart(row, now, now + ttl)
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
    body: dict[str, Any], headers: dict[str, str], job_id: uuid.UUID,
) -> None:  # fmt: skip
    """Store the answer, in the transaction that records the job."""
    idempotency_keys.store_answer(
        session, held.tenant, held.key, request_fingerprint,
        status_code=status_code, body=body, headers=headers, job_id=job_id,
    )  # fmt: skip


def release(session: Session, held: Held) -> None:
    """Let the key go after a failed request, so the client may retry with it."""
    idempotency_keys.delete_in_flight(session, held.tenant, held.key)
