"""Client-side helpers of the end-to-end tests: upload a sample, wait for the job, score text."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker


def normalise(text: str) -> str:
    """Lowercase words without punctuation, for WER."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def submit(ingest: TestClient, auth: dict[str, str], name: str, options: dict[str, Any]) -> str:
    """Upload a sample; return the job id."""
    audio = (SAMPLES / name).read_bytes()
    response = ingest.post("/v1/jobs", headers=auth, files={"file": (name, audio, "audio/ogg")},
                           data={"options": json.dumps(options)})  # fmt: skip
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_done(status: TestClient, auth: dict[str, str], job_id: str, workers: dict[str, Worker],
              timeout: float = 180, seen: list[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """Poll the status API until the job is terminal (recording progress into `seen`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = status.get(f"/v1/jobs/{job_id}", headers=auth).json()
        if seen is not None:
            seen.append(job["progress"])
        if job["status"] in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.2)
    logs = "\n".join(f"--- {k}\n{w.tail()}" for k, w in workers.items())
    pytest.fail(f"job {job_id} did not finish in {timeout}s; last {job}\n{logs}")
