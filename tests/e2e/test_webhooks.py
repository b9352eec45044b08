"""Webhooks end to end: real workers finish a job, a local receiver gets the signed POST.

The webhook sender (`services/webhook_sender`) consumes `webhooks` as `voxflow run` starts
it; a real sweeper process publishes the retries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from ingest_api.app import create_app as create_ingest_app
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker, start_all, stop_all
from tests.e2e.helpers import wait_done
from tests.support.servers import Servers
from tests.support.webhook_receiver import Reply, receiving
from tests.support.webhooks import SECRET
from voxflow.embedded import redis_client_url
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE, WEBHOOK_QUEUE
from voxflow.webhooks import verify

pytestmark = pytest.mark.e2e

STATUS_URL = "http://status.voxflow.test"
BASE_SECONDS = 0.5  # first retry after 0.375 to 0.5 s, then doubling
WEBHOOK_ENV = {
    "VOXFLOW_WEBHOOK_SECRET": SECRET,
    "VOXFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receivers are on loopback
    "VOXFLOW_WEBHOOK_RETRY_BASE_SECONDS": str(BASE_SECONDS),
    "VOXFLOW_WEBHOOK_RETRY_MAX_SECONDS": "2",
    "VOXFLOW_WEBHOOK_TIMEOUT_SECONDS": "5",
    "VOXFLOW_PUBLIC_STATUS_URL": STATUS_URL,
}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's worker and sweeper processes write their logs."""
    return tmp_path_factory.mktemp("webhook-logs")


@pytest.fixture(scope="module")
def hook_workers(purged_queues: None, servers: Servers, logs: Path) -> Iterator[dict[str, Worker]]:
    """A transcription worker, the LLM worker, the webhook sender, and a sweeper every 0.2 s."""
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    client.delete(WEBHOOK_QUEUE)
    client.close()
    started: dict[str, Worker] = {
        "transcription": Worker("transcription_worker.tasks", TRANSCRIPTION_QUEUE, 1,
                                logs / "transcription.log"),
        "llm": Worker("llm_worker.tasks", LLM_QUEUE, 1, logs / "llm.log"),
        "webhooks": Worker("webhook_sender.tasks", WEBHOOK_QUEUE, 1, logs / "webhooks.log",
                           env=WEBHOOK_ENV),
    }  # fmt: skip
    sweeper_log = logs / "sweeper.log"
    sweeper = None
    try:
        start_all(started.values())
        with sweeper_log.open("ab") as out:
            sweeper = subprocess.Popen(
                [sys.executable, "-m", "sweeper"], stdout=out, stderr=out,
                env={**os.environ, "VOXFLOW_SWEEP_INTERVAL_SECONDS": "0.2"},
            )  # fmt: skip
        yield started
    finally:
        if sweeper is not None:
            sweeper.terminate()
            sweeper.wait(30)
        stop_all(started.values())


@pytest.fixture(scope="module")
def ingest() -> Iterator[TestClient]:
    """The ingestion API with the webhook secret, letting hooks go to loopback."""
    settings = IngestSettings(webhook_secret=SECRET, webhook_allow_private_networks=True)
    with TestClient(create_ingest_app(settings)) as client:
        yield client


def submit(ingest: TestClient, auth: dict[str, str], webhook_url: str) -> str:
    """Upload the voice note asking for a summary, with a webhook; return the job id."""
    response = ingest.post(
        "/v1/jobs", headers=auth, files={"file": ("note.ogg", (SAMPLES / "voice_note.ogg")
                                                  .read_bytes(), "audio/ogg")},
        data={"options": json.dumps({"tasks": ["summary"]}), "webhook_url": webhook_url},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def deliveries_when(
    status: TestClient, auth: dict[str, str], job_id: str, settled: str, timeout: float = 60
) -> list[dict[str, Any]]:
    """Poll the job's deliveries until one has status `settled`."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[dict[str, Any]] = status.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).json()
        if any(d["status"] == settled for d in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def tails(workers: dict[str, Worker]) -> str:
    """The workers' logs, for failure messages."""
    return "\n".join(f"--- {name}\n{worker.tail()}" for name, worker in workers.items())


def test_a_completed_job_posts_one_signed_webhook(
    ingest: TestClient, status: TestClient, auth: dict[str, str],
    hook_workers: dict[str, Worker],
) -> None:  # fmt: skip
    with receiving() as receiver:
        job_id = submit(ingest, auth, receiver.url("/hooks/done?src=voxflow"))
        job = wait_done(status, auth, job_id, hook_workers)
        assert job["status"] == "completed", job
        [request] = receiver.wait_for(1, timeout=60)
        [delivery] = deliveries_when(status, auth, job_id, "delivered")
        threading.Event().wait(2)  # ten sweeps: a duplicate would have come by now
        assert len(receiver.requests) == 1, tails(hook_workers)
    assert request.path == "/hooks/done?src=voxflow"
    payload = verify(SECRET, request.headers, request.body)
    assert payload["type"] == "job.completed"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "completed"
    assert payload["data"]["error"] is None
    assert payload["data"]["links"]["results"] == f"{STATUS_URL}/v1/jobs/{job_id}/results"
    assert request.headers["webhook-id"] == delivery["id"]
    assert delivery["event"] == "job.completed"
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "delivered", 1, 200,
    )  # fmt: skip


def test_a_failing_receiver_is_retried_by_the_sweeper_until_it_answers(
    ingest: TestClient, status: TestClient, auth: dict[str, str],
    hook_workers: dict[str, Worker], logs: Path,
) -> None:  # fmt: skip
    with receiving([Reply(500, body=b"not now"), Reply(500, body=b"not yet")]) as receiver:
        job_id = submit(ingest, auth, receiver.url())
        assert wait_done(status, auth, job_id, hook_workers)["status"] == "completed"
        requests = receiver.wait_for(3, timeout=60)
        [delivery] = deliveries_when(status, auth, job_id, "delivered")
        threading.Event().wait(1)
        assert len(receiver.requests) == 3, tails(hook_workers)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "delivered", 3, 200,
    )  # fmt: skip
    assert delivery["last_error"] is None
    assert {r.headers["webhook-id"] for r in requests} == {delivery["id"]}
    for request in requests:
        verify(SECRET, request.headers, request.body)
    # Exponential backoff: at least 0.75 x 0.5 s, then 0.75 x 1 s between the attempts.
    assert requests[1].at - requests[0].at >= 0.75 * BASE_SECONDS
    assert requests[2].at - requests[1].at >= 0.75 * 2 * BASE_SECONDS
    # No countdown on the broker: the sweeper published each retry once it fell due.
    sweeps = (logs / "sweeper.log").read_text()
    assert sweeps.count(delivery["id"]) == 2, sweeps[-3000:]
