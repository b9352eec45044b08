"""API keys: generated once, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from voxflow.jobs import repository
from voxflow.jobs.models import ApiKey

KEY_PREFIX = "vf_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # the public part of a key, stored to find it and revoke it


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key; `secret` is never stored and cannot be shown again."""

    id: uuid.UUID
    tenant: str
    prefix: str
    secret: str


def hash_key(secret: str) -> str:
    """Hash a key for storage and lookup (keys are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(session: Session, tenant: str, name: str = "default") -> IssuedKey:
    """Create a key for `tenant` and store its hash."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[:PREFIX_LENGTH]
    key = ApiKey(
        id=uuid.uuid4(), tenant=tenant, name=name, prefix=prefix, key_hash=hash_key(secret)
    )
    repository.add_api_key(session, key)
    return IssuedKey(id=key.id, tenant=tenant, prefix=prefix, secret=secret)


def authenticate(session: Session, secret: str) -> str | None:
    """Return the tenant a key belongs to, or None for an unknown or revoked key."""
    presented = hash_key(secret)
    # The database only sees the public prefix; the secret part is checked here in constant
    # time, so the time an answer takes says nothing about how much of a stored hash matched.
    for key in repository.find_api_keys_by_prefix(session, secret[:PREFIX_LENGTH]):
        if hmac.compare_digest(key.key_hash, presented):
            return key.tenant
    return None
