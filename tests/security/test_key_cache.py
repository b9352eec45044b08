"""The API key cache: checked keys skip the database, and revocation holds within its bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app as create_ingest_app
from ingest_api.settings import IngestSettings
from status_api.app import create_app as create_status_app
from status_api.settings import StatusSettings
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs import repository

BOUND = 1.0  # seconds a process trusts a checked key (VOXFLOW_API_KEY_CACHE_SECONDS)


def _key_lookups(statements: list[str]) -> int:
    """How many of the statements read the api_keys table."""
    return sum("FROM api_keys" in statement for statement in statements)


@pytest.fixture
def apis(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """Both APIs, each trusting a checked key for `BOUND` seconds."""
    ingest = IngestSettings(spool_dir=tmp_path, api_key_cache_seconds=BOUND)
    status = StatusSettings(api_key_cache_seconds=BOUND)
    with (
        TestClient(create_ingest_app(ingest)) as ingest_client,
        TestClient(create_status_app(status)) as status_client,
    ):
        yield ingest_client, status_client


def _ingest_code(client: TestClient, auth: dict[str, str]) -> int:
    # Not multipart: a caller that gets past authentication gets a 415, one that does not a 401.
    return client.post("/v1/jobs", headers=auth, data={"options": "{}"}).status_code


def test_checked_keys_skip_the_database_and_revocation_holds_within_the_bound(
    apis: tuple[TestClient, TestClient],
    sql_statements: list[str],
    sessions: sessionmaker[Session],
    tenant: str,
) -> None:
    ingest, status = apis
    with session_scope(sessions) as session:
        key = issue_key(session, tenant, "cached")
    auth = {"Authorization": f"Bearer {key.secret}"}

    # A new key works at once, in both APIs; each looks it up once, then trusts it.
    assert status.get("/v1/jobs", headers=auth).status_code == 200
    assert _ingest_code(ingest, auth) == 415
    assert _key_lookups(sql_statements) == 2
    for _ in range(10):
        assert status.get("/v1/jobs", headers=auth).status_code == 200
        assert _ingest_code(ingest, auth) == 415
    assert _key_lookups(sql_statements) == 2, "a key checked moments ago was looked up again"

    # Revoked: refused by every API within the bound (and not before the cache lets go).
    with session_scope(sessions) as session:
        assert repository.revoke_api_key(session, key.prefix) == 1
    revoked_at = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < 2:
        elapsed = time.monotonic() - revoked_at
        assert elapsed < BOUND + 0.5, f"the revoked key still works after {elapsed:.1f} s"
        if "status" not in refused and status.get("/v1/jobs", headers=auth).status_code == 401:
            refused["status"] = elapsed
        if "ingest" not in refused and _ingest_code(ingest, auth) == 401:
            refused["ingest"] = elapsed
        time.sleep(0.05)
    # Past the bound, each request looks the (revoked) key up again: it is never cached.
    lookups = _key_lookups(sql_statements)
    assert status.get("/v1/jobs", headers=auth).status_code == 401
    assert status.get("/v1/jobs", headers=auth).status_code == 401
    assert _key_lookups(sql_statements) == lookups + 2


def test_unknown_keys_are_looked_up_every_time(
    apis: tuple[TestClient, TestClient], sql_statements: list[str]
) -> None:
    _, status = apis
    wrong = {"Authorization": "Bearer vf_" + "Z" * 43}
    for expected in (1, 2, 3):
        response = status.get("/v1/jobs", headers=wrong)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert _key_lookups(sql_statements) == expected
