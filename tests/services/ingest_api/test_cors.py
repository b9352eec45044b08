"""CORS: the web console (served by the status API, another origin) may upload here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest_api.app import create_app
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES

CONSOLE = "http://console.test:8001"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,idempotency-key",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The ingestion API, allowing the console's origin."""
    settings = IngestSettings(spool_dir=tmp_path_factory.mktemp("spool"), console_origins=[CONSOLE])
    with TestClient(create_app(settings)) as running:
        yield running


def test_the_consoles_preflight_is_answered(client: TestClient) -> None:
    response = client.options("/v1/jobs", headers={"Origin": CONSOLE, **PREFLIGHT})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == CONSOLE
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers  # a key, never cookies


def test_an_upload_from_the_console_is_readable_by_it(
    client: TestClient, auth: dict[str, str]
) -> None:
    response = client.post(
        "/v1/jobs", headers={**auth, "Origin": CONSOLE},
        files={"file": ("note.ogg", (SAMPLES / "voice_note.ogg").read_bytes(), "audio/ogg")},
        data={"options": json.dumps({"tasks": ["summary"]})},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    assert response.headers["access-control-allow-origin"] == CONSOLE
    assert "location" in response.headers["access-control-expose-headers"].lower()


def test_other_origins_are_not_allowed(client: TestClient) -> None:
    response = client.options("/v1/jobs", headers={"Origin": "http://evil.test", **PREFLIGHT})
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    plain = client.get("/healthz", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in plain.headers


def test_by_default_the_status_apis_origin_is_allowed(tmp_path: Path) -> None:
    settings = IngestSettings(spool_dir=tmp_path, public_status_url="https://status.example.com/")
    assert settings.cors_origins() == ["https://status.example.com"]
    assert IngestSettings(console_origins=["http://a:1/", "http://b:2"]).cors_origins() == [
        "http://a:1", "http://b:2"
    ]  # fmt: skip
    assert IngestSettings(console_origins=[]).cors_origins() == []
    with TestClient(create_app(settings)) as client:
        response = client.options(
            "/v1/jobs", headers={"Origin": "https://status.example.com", **PREFLIGHT}
        )
    assert response.headers["access-control-allow-origin"] == "https://status.example.com"
