"""One endpoint per process group, over real HTTP: uvicorn workers, Celery pool children, sweeper.

Each group here starts the way a deployment starts it, in a process group of its own, and
its /metrics must report the sum over all its processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.jobs import LEASE, new_job, transcript_for
from tests.support.metrics import Samples, scrape, value
from tests.support.served import free_port
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.states import JobStatus
from voxflow.observability.multiproc import pid_of
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import GENERATE_TASK


def group_env(**extra: str) -> dict[str, str]:
    """This environment without the suite's metrics directory: the child starts a group."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return env | extra


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start processes in sessions of their own (as `voxflow run` does); stop them after."""
    started: list[subprocess.Popen[bytes]] = []

    def _start(command: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        with (tmp_path / log).open("ab") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=out, start_new_session=True
            )
        started.append(process)
        return process

    yield _start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    """Whether an HTTP endpoint answers 200."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_api_with_two_uvicorn_workers_counts_by_route_template(
    start: Callable[..., subprocess.Popen[bytes]], tmp_path: Path, auth: dict[str, str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "status_api.app:app", "--port", str(port),
               "--workers", "2"]  # fmt: skip
    master = start(command, group_env(VOXFLOW_DATA_DIR=str(tmp_path)), "uvicorn.log")
    wait_for(lambda: answers(f"{base}/healthz"), "the status API")
    for _ in range(5):
        assert httpx.get(f"{base}/v1/jobs/{uuid.uuid4()}", headers=auth).status_code == 404
    for _ in range(2):
        assert httpx.get(f"{base}/v1/jobs/not-a-uuid", headers=auth).status_code == 404
    assert httpx.get(f"{base}/v1/jobs/{uuid.uuid4()}").status_code == 401
    assert httpx.get(f"{base}/no/such/{uuid.uuid4()}").status_code == 404

    samples = scrape(f"{base}/metrics")
    job = {"service": "status_api", "route": "/v1/jobs/{job_id}", "method": "GET"}
    requests = "voxflow_http_requests_total"
    assert value(samples, requests, **job, status="404") == 7
    assert value(samples, requests, **job, status="401") == 1
    assert value(samples, "voxflow_http_request_duration_seconds_count", **job) == 8
    unmatched = {"service": "status_api", "route": "unmatched", "method": "GET"}
    assert value(samples, requests, **unmatched, status="404") == 1
    assert not any("no/such" in str(labels) for _, labels in samples)  # never a raw path
    # The workers, spawned by a master that never imports the app, found no directory in
    # their environment and chose the same one: their process group's (the master's).
    folder = tmp_path / "metrics" / f"{socket.gethostname()}-{os.getpgid(master.pid)}"
    children = {child.pid for child in psutil.Process(master.pid).children()}
    writers = {pid_of(file) for file in folder.glob("*.db")}
    assert len(writers) == 2  # both workers (the third child is multiprocessing's tracker)
    assert writers <= children, (writers, children)


def create_transcribed_jobs(
    sessions: sessionmaker[Session], tenant: str, count: int
) -> set[uuid.UUID]:
    """Jobs waiting for their notes (committed: a worker process must see them)."""
    ids = set()
    for _ in range(count):
        with session_scope(sessions) as session:
            job_id = new_job(session, tenant, tasks=["summary"])
        with session_scope(sessions) as session:
            service.claim(session, job_id, JobStatus.QUEUED, "setup", LEASE)
            service.finish_transcription(session, job_id, "setup", transcript_for(job_id))
        ids.add(job_id)
    return ids


def test_celery_pool_children_add_up_at_the_main_process_endpoint(
    start: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    sessions: sessionmaker[Session],
    tenant: str,
) -> None:
    jobs = create_transcribed_jobs(sessions, tenant, 6)
    # A queue of this test's own: another test run may share the Redis (and consume "llm").
    queue = f"llm-{uuid.uuid4().hex[:8]}"
    for job_id in jobs:  # waiting before the pool starts, so both children get some at once
        publisher_app().send_task(GENERATE_TASK, args=[str(job_id)], queue=queue)
    folder, port = tmp_path / "llm-metrics", free_port()
    folder.mkdir()
    env = group_env(PROMETHEUS_MULTIPROC_DIR=str(folder), VOXFLOW_METRICS_PORT=str(port),
                    VOXFLOW_LOG_FORMAT="json")  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "llm_worker.tasks", "--quiet", "worker",
               "-Q", queue, "-c", "2", "-n", f"metrics-{uuid.uuid4().hex[:6]}@localhost",
               "--without-gossip", "--without-mingle", "-l", "INFO"]  # fmt: skip
    worker = start(command, env, "llm.log")

    def finished() -> bool:
        with session_scope(sessions) as session:
            return all(repository.get_job(session, j).status == "completed" for j in jobs)  # type: ignore[union-attr]

    wait_for(finished, "the LLM worker to write the notes", timeout=90)
    samples: Samples = {}

    def reported() -> bool:
        nonlocal samples
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        return value(samples, "voxflow_jobs_completed_total") == 6

    wait_for(reported, "the endpoint to report the six jobs", timeout=10)
    with session_scope(sessions) as session:
        owners = {
            event.actor.split(":")[1].split("/")[0]
            for job_id in jobs
            for event in repository.list_events(session, job_id)
            if event.to_status == "generating" and event.actor
        }
    assert len(owners) == 2, "both pool processes should have taken jobs"
    calls = {dict(labels)["outcome"]: v for (name, labels), v in samples.items()
             if name == "voxflow_llm_calls_total"}  # fmt: skip
    # One transcript text for all six: after the first answers, the cache may answer the rest.
    assert calls.get("ok", 0) + calls.get("cached", 0) == 6, calls
    assert value(samples, "voxflow_llm_cache_hits_total") == calls.get("cached", 0)
    stage = {"stage": "generating", "outcome": "done"}
    assert value(samples, "voxflow_stage_duration_seconds_count", **stage) == 6
    assert value(samples, "voxflow_worker_processes", service="llm_worker") == 2

    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    assert list(folder.glob("gauge_livesum_*.db")) == []  # the children dropped their own
    log_lines = (tmp_path / "llm.log").read_text().splitlines()
    # Every log record is one JSON line; Celery's own handler and format (`[2026-... INFO/...]`)
    # are not installed. (What Celery prints itself, not through logging, stays as it is:
    # a warning before logging is set up, `worker: Warm shutdown`.)
    records = [json.loads(line) for line in log_lines if line.startswith("{")]
    assert not [line for line in log_lines if line.startswith("[")]
    written = [r for r in records if "notes written" in str(r["message"])]
    assert {r["job_id"] for r in written} == {str(j) for j in jobs}
    assert {r["service"] for r in records} == {"llm_worker"}


def test_sweeper_serves_platform_gauges(
    start: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port = free_port()
    env = group_env(VOXFLOW_DATA_DIR=str(tmp_path), VOXFLOW_METRICS_PORT=str(port))
    start([sys.executable, "-m", "sweeper"], env, "sweeper.log")
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: answers(url), "the sweeper's endpoint", timeout=30)
    samples = scrape(url)
    assert value(samples, "voxflow_collector_up", source="database") == 1
    assert value(samples, "voxflow_collector_up", source="broker") == 1
    assert ("voxflow_queue_depth", frozenset({("queue", "llm")})) in samples
    assert ("voxflow_jobs_waiting", frozenset({("status", "queued")})) in samples
    assert (
        "voxflow_oldest_waiting_job_age_seconds",
        frozenset({("status", "transcribed")}),
    ) in samples
    assert ("voxflow_jobs_in_flight", frozenset({("stage", "generating")})) in samples
    assert ("voxflow_sweeper_requeued_total", frozenset({("reason", "message_lost")})) in samples
