"""API key handling: stored hashed, checked in constant time, never written to a log."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app as create_ingest_app
from ingest_api.settings import IngestSettings
from status_api.app import create_app as create_status_app
from tests.security.media import VOICE_NOTE
from voxflow.apikeys import (
    KEY_PREFIX,
    PREFIX_LENGTH,
    IssuedKey,
    authenticate,
    hash_key,
    issue_key,
)
from voxflow.db import session_scope
from voxflow.jobs import repository
from voxflow.logs import ContextFilter, json_formatter


def _dump_api_keys(sessions: sessionmaker[Session]) -> str:
    """Every row of `api_keys`, every column, as JSON text."""
    with sessions() as session:
        rows = session.execute(text("SELECT row_to_json(k)::text FROM api_keys k")).scalars()
        return "\n".join(rows)


def test_keys_are_stored_only_as_hashes(
    sessions: sessionmaker[Session], api_key: IssuedKey, tenant: str
) -> None:
    with session_scope(sessions) as session:
        second = issue_key(session, tenant, "second")
    table = _dump_api_keys(sessions)
    for key in (api_key, second):
        secret_part = key.secret[PREFIX_LENGTH:]
        assert len(key.secret) == len(KEY_PREFIX) + 43  # 32 random bytes, base64url
        assert key.secret not in table
        assert secret_part not in table
        # What is stored is the SHA-256 of the key and its public prefix, nothing more.
        assert hashlib.sha256(key.secret.encode()).hexdigest() in table
        assert key.prefix == key.secret[:PREFIX_LENGTH]
    assert api_key.secret != second.secret


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Arguments of every `hmac.compare_digest` call the key check makes."""
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    # The key check calls `hmac.compare_digest` through the module, so this is what it sees.
    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_verification_compares_hashes_in_constant_time(
    sessions: sessionmaker[Session],
    api_key: IssuedKey,
    tenant: str,
    compare_calls: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = hash_key(api_key.secret)
    forged = api_key.secret[:PREFIX_LENGTH] + "A" * 43  # the public prefix is no secret
    with sessions() as session:
        assert authenticate(session, api_key.secret) == tenant
        assert compare_calls == [(stored, stored)]
        compare_calls.clear()
        assert authenticate(session, forged) is None
        assert compare_calls == [(stored, hash_key(forged))]
        # The verdict is compare_digest's alone: when it says no, the right key is refused.
        monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
        assert authenticate(session, api_key.secret) is None


def test_requests_are_authenticated_through_compare_digest(
    api_key: IssuedKey, auth: dict[str, str], compare_calls: list[tuple[str, str]]
) -> None:
    with TestClient(create_status_app()) as status:
        assert status.get("/v1/jobs", headers=auth).status_code == 200
    assert compare_calls == [(hash_key(api_key.secret), hash_key(api_key.secret))]


class _Lines(logging.Handler):
    """Keeps every record it gets as the JSON line the services would write."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.addFilter(ContextFilter("test"))
        self.setFormatter(json_formatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Format and keep one record."""
        self.lines.append(self.format(record))


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """JSON log lines of everything logged while the test runs, DEBUG and SQL included."""
    # Read by configure_logging when each app starts.
    monkeypatch.setenv("VOXFLOW_LOG_FORMAT", "json")
    monkeypatch.setenv("VOXFLOW_LOG_LEVEL", "DEBUG")
    root = logging.getLogger()
    sql = logging.getLogger("sqlalchemy.engine")
    saved = (root.level, sql.level)
    handler = _Lines()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # Statement logging with parameters is what an operator switches on to debug; a key
    # lookup whose parameter is the key's hash would write that hash to the log.
    sql.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        sql.setLevel(saved[1])


def test_no_key_or_hash_in_logs(
    monkeypatch: pytest.MonkeyPatch,
    json_logs: list[str],
    api_key: IssuedKey,
    auth: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    # Every request looks its key up, so the revocation below is refused at once (the key
    # cache's bound is tested in test_key_cache.py).
    monkeypatch.setenv("VOXFLOW_API_KEY_CACHE_SECONDS", "0")
    json_logs.clear()  # the key's creation (an INSERT of its hash) is setup, not the services
    secret = api_key.secret
    forbidden = {
        "key": secret,
        "secret part of the key": secret[PREFIX_LENGTH:],
        "key hash": hash_key(secret),
    }
    upload = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
    with (
        TestClient(create_ingest_app(IngestSettings(spool_dir=tmp_path))) as ingest,
        TestClient(create_status_app()) as status,
    ):
        accepted = ingest.post("/v1/jobs", headers=auth, files=upload)
        assert accepted.status_code == 202, accepted.text
        job = f"/v1/jobs/{accepted.json()['id']}"
        for path in (job, f"{job}/events", f"{job}/results", "/v1/jobs"):
            assert status.get(path, headers=auth).status_code == 200
        assert status.get(f"{job}/transcript", headers=auth).status_code == 409
        # The 401 paths: a key that is almost right, one with the right prefix, none at all.
        for header in (f"Bearer {secret}x", f"Bearer {secret[:-1]}", f"Basic {secret}"):
            assert status.get(job, headers={"Authorization": header}).status_code == 401
            refused = ingest.post("/v1/jobs", headers={"Authorization": header}, files=upload)
            assert refused.status_code == 401
        assert status.post(f"{job}/cancel", headers=auth).status_code == 200
        # A revoked key is refused too.
        with session_scope(sessions) as session:
            repository.revoke_api_key(session, api_key.prefix)
        assert status.get(job, headers=auth).status_code == 401
    # The capture saw the services at work, including the key lookups in SQL.
    records = [json.loads(line) for line in json_logs]
    assert any("FROM api_keys" in r["message"] for r in records)
    assert any(r.get("job_id") == job.rsplit("/", 1)[1] for r in records)
    for what, value in forbidden.items():
        leaks = [line for line in json_logs if value in line]
        assert not leaks, f"the {what} is in the logs: {leaks[0][:300]}"


def test_log_capture_would_see_a_leak(json_logs: list[str]) -> None:
    """The capture above is live: a secret logged at DEBUG from any logger shows up."""
    marker = f"vf_{uuid.uuid4().hex}"
    logging.getLogger("voxflow.apikeys").debug("leaked %s", marker)
    assert any(marker in line for line in json_logs)
