"""Real Celery worker processes and both APIs, on the suite's Postgres, Redis and storage."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from ingest_api.app import create_app as create_ingest_app
from status_api.app import create_app as create_status_app
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE

# Short leases so that recovery paths run in seconds, not minutes.
WORKER_ENV = {
    "VOXFLOW_LEASE_SECONDS": "6",
    "VOXFLOW_HEARTBEAT_SECONDS": "1",
    "VOXFLOW_PROGRESS_INTERVAL_SECONDS": "0.2",
    "REMAP_SIGTERM": "SIGQUIT",  # soft shutdown, as deployed
    "VOXFLOW_SOFT_SHUTDOWN_SECONDS": "2",
}


@dataclass
class Worker:
    """A Celery worker process consuming one queue."""

    module: str
    queue: str
    concurrency: int
    log: Path
    name: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        """The Celery node name (used for remote control)."""
        return f"{self.queue}-{self.name}@localhost"

    def start(self) -> None:
        """Start the worker and wait until it answers a ping."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the worker process without waiting for it."""
        command = [
            sys.executable, "-m", "celery", "-A", self.module, "worker", "-Q", self.queue,
            "-c", str(self.concurrency), "-n", self.node, "--without-gossip",
            "--without-mingle", "-l", "INFO",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env={**os.environ, **WORKER_ENV, **self.env}, stdout=out, stderr=out
            )

    def wait_ready(self) -> None:
        """Wait until the launched worker answers a ping."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + 90
        while not publisher_app().control.ping(destination=[self.node], timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.node} did not start:\n{self.tail()}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then kill if it hangs."""
        self.ask_to_stop()
        self.wait_stopped()

    def ask_to_stop(self) -> None:
        """Send the warm shutdown's SIGTERM without waiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self) -> None:
        """Wait for the worker to exit (30 s), then kill it."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 60) -> str:
        """The end of the worker's log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_all(workers: Iterable[Worker]) -> None:
    """Start workers side by side (each loads its models meanwhile), then wait for each."""
    launched = list(workers)
    for worker in launched:
        worker.launch()
    for worker in launched:
        worker.wait_ready()


def stop_all(workers: Iterable[Worker]) -> None:
    """Stop workers side by side: SIGTERM to each, then wait for each."""
    stopping = list(workers)
    for worker in stopping:
        worker.ask_to_stop()
    for worker in stopping:
        worker.wait_stopped()


@pytest.fixture(scope="module")
def purged_queues(servers: Servers) -> None:
    """Drop messages earlier tests left, so workers only see this module's jobs."""
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    client.delete(TRANSCRIPTION_QUEUE, LLM_QUEUE)
    client.close()


@pytest.fixture(scope="module")
def workers(
    purged_queues: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Worker]]:
    """One transcription worker (two processes, so duplicates can race) and one LLM worker."""
    logs = tmp_path_factory.mktemp("worker-logs")
    started = {
        "transcription": Worker("transcription_worker.tasks", TRANSCRIPTION_QUEUE, 2,
                                logs / "transcription.log"),
        "llm": Worker("llm_worker.tasks", LLM_QUEUE, 1, logs / "llm.log"),
    }  # fmt: skip
    try:
        start_all(started.values())
        yield started
    finally:
        stop_all(started.values())


@pytest.fixture(scope="module")
def ingest() -> Iterator[TestClient]:
    """The ingestion API."""
    with TestClient(create_ingest_app()) as client:
        yield client


@pytest.fixture(scope="module")
def status() -> Iterator[TestClient]:
    """The status API."""
    with TestClient(create_status_app()) as client:
        yield client
