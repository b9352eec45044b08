"""One job is one trace, through real worker processes and an OTLP receiver on loopback.

The in-process ingestion API and the worker processes export by OTLP/HTTP, exactly as in
production, to a receiver that decodes what they send. The status API is not used: in this
process it would report under the ingestion API's service name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app as create_ingest_app
from tests.e2e.conftest import Worker, start_all, stop_all
from tests.e2e.helpers import submit
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url
from voxflow.jobs.enqueue import publish_now
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.observability.tracing import shutdown_tracing
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import GENERATE_TASK, LLM_QUEUE, TRANSCRIPTION_QUEUE

pytestmark = pytest.mark.e2e

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """The collector stand-in."""
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def otel_env(receiver: OtlpReceiver) -> Iterator[dict[str, str]]:
    """Tracing on, for this process's API and for every process started from here."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    saved = {key: os.environ.get(key) for key in env}
    shutdown_tracing()  # whatever an earlier module set up in this process
    os.environ.update(env)
    try:
        yield env
    finally:
        shutdown_tracing()  # later modules must not export to a receiver that is gone
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def traced_ingest(otel_env: dict[str, str]) -> Iterator[TestClient]:
    """The ingestion API; its lifespan turns tracing on in this process."""
    with TestClient(create_ingest_app()) as client:
        yield client


@pytest.fixture(scope="module")
def traced_workers(
    purged_queues: None, otel_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Worker]]:
    """A transcription and an LLM worker (prefork, one child each) exporting to the receiver."""
    logs = tmp_path_factory.mktemp("traced-logs")
    # No response cache: an earlier test's identical note would answer without a provider
    # call, and this test wants the call's span.
    router = logs / "router.yaml"
    router.write_text("cache: {enabled: false}\n")
    llm_env = {**otel_env, "VOXFLOW_LLM_CONFIG_FILE": str(router)}
    started = {
        "transcription": Worker("transcription_worker.tasks", TRANSCRIPTION_QUEUE, 1,
                                logs / "transcription.log", env=otel_env),
        "llm": Worker("llm_worker.tasks", LLM_QUEUE, 1, logs / "llm.log", env=llm_env),
    }  # fmt: skip
    try:
        start_all(started.values())
        yield started
    finally:
        stop_all(started.values())


def wait_finished(
    sessions: sessionmaker[Session], job_id: str, workers: dict[str, Worker], timeout: float = 120
) -> Job:
    """Poll the job row until the job is terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        if job.status in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.2)
    logs = "\n".join(f"--- {k}\n{w.tail()}" for k, w in workers.items())
    pytest.fail(f"job {job_id} did not finish in {timeout}s\n{logs}")


def stored_parent(job: Job) -> tuple[str, str]:
    """Trace id and span id of the context stored on the job row."""
    _version, trace_id, span_id, _flags = job.trace_context["traceparent"].split("-")
    return trace_id, span_id


def one(spans: list[ReceivedSpan], name: str, job_id: str | None = None) -> ReceivedSpan:
    """The only span of that name (for that job)."""
    found = [
        s
        for s in spans
        if s.name == name and (job_id is None or s.attributes.get("voxflow.job_id") == job_id)
    ]
    assert len(found) == 1, (name, [(s.service, s.name) for s in spans])
    return found[0]


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """The span's parent, grandparent ... up to the root; every parent must have arrived."""
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_id is not None:
        assert span.parent_id in by_id, f"{span.service}/{span.name}: parent never exported"
        parent = by_id[span.parent_id]
        assert parent.trace_id == span.trace_id
        chain.append(parent)
        span = parent
    return chain


def has_stage(job_id: str, *names: str) -> Callable[[list[ReceivedSpan]], bool]:
    """A predicate: the job's spans of these names have all arrived."""

    def found(spans: list[ReceivedSpan]) -> bool:
        mine = {s.name for s in spans if s.attributes.get("voxflow.job_id") == job_id}
        return set(names) <= mine

    return found


def pause_transcription(workers: dict[str, Worker]) -> None:
    """Stop the transcription worker from taking messages (until `resume_transcription`)."""
    node = workers["transcription"].node
    publisher_app().control.cancel_consumer(TRANSCRIPTION_QUEUE, destination=[node], reply=True)
    # A blocking pop issued before the cancel may still be waiting (kombu's BRPOP times out
    # after 1 s) and would take the next message: let it expire first.
    time.sleep(2.5)


def resume_transcription(workers: dict[str, Worker]) -> None:
    """Let the transcription worker take messages again."""
    node = workers["transcription"].node
    publisher_app().control.add_consumer(TRANSCRIPTION_QUEUE, destination=[node], reply=True)


def lose_messages(servers: Servers) -> None:
    """Drop every waiting transcription message, as a Redis restart would."""
    broker = redis.Redis.from_url(redis_client_url(servers.redis_url))
    assert broker.llen(TRANSCRIPTION_QUEUE) >= 1
    broker.delete(TRANSCRIPTION_QUEUE)
    broker.close()


def test_one_job_is_one_trace_from_upload_to_notes(
    traced_ingest: TestClient,
    auth: dict[str, str],
    traced_workers: dict[str, Worker],
    receiver: OtlpReceiver,
    sessions: sessionmaker[Session],
) -> None:
    assert traced_ingest.get("/healthz").status_code == 200  # probes are not traced
    job_id = submit(traced_ingest, auth, "voice_note.ogg", {"tasks": ["summary"]})
    job = wait_finished(sessions, job_id, traced_workers)
    assert job.status == "completed", job.error_message
    trace_id, _ = stored_parent(job)
    wanted = has_stage(job_id, "stage transcribing", "stage generating")
    spans = [s for s in receiver.wait_for(wanted) if s.trace_id == trace_id]

    # Every span that names the job, from all three services, is in the upload's trace.
    upload = one(spans, "POST /v1/jobs")
    assert (upload.service, upload.kind, upload.parent_id) == ("ingest_api", SERVER, None)
    assert {"ingest_api", "transcription_worker", "llm_worker"} <= {s.service for s in spans}
    mine = [s for s in receiver.spans() if s.attributes.get("voxflow.job_id") == job_id]
    assert {s.trace_id for s in mine} == {trace_id}

    # Across the queue: stage <- Celery consumer (worker) <- Celery producer (upstream) ...
    transcribing = one(spans, "stage transcribing")
    above = ancestors(transcribing, spans)
    assert above[-1] == upload
    assert (above[0].service, above[0].kind) == ("transcription_worker", CONSUMER)
    assert (above[1].service, above[1].kind) == ("ingest_api", PRODUCER)
    generating = one(spans, "stage generating")
    above = ancestors(generating, spans)
    assert above[-1] == upload
    assert (above[0].service, above[0].kind) == ("llm_worker", CONSUMER)
    assert (above[1].service, above[1].kind) == ("transcription_worker", PRODUCER)
    assert transcribing in above
    call = one(spans, "llm.call")
    assert call.service == "llm_worker"
    assert generating in ancestors(call, spans)

    assert transcribing.attributes["voxflow.tenant"] == job.tenant
    assert transcribing.attributes["voxflow.model"] == "tiny.en"
    assert transcribing.attributes["voxflow.audio.duration_seconds"] == job.duration_seconds
    assert transcribing.attributes["voxflow.outcome"] == "done"
    assert generating.attributes["voxflow.tasks"] == ["summary"]
    assert call.attributes["gen_ai.provider.name"] == "local"
    assert call.attributes["voxflow.llm.outcome"] == "ok"
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    # The libraries' spans join the trace too: SQL in the workers, Redis in the router.
    sql = [s for s in spans if s.kind == CLIENT and s.service == "transcription_worker"]
    assert any("postgresql" in str(s.attributes) for s in sql), sql
    assert any("redis" in str(s.attributes) for s in spans if s.service == "llm_worker")
    assert not [s for s in receiver.spans() if "/healthz" in str(s.attributes.get("url.path"))]


def test_a_job_the_sweeper_republishes_stays_in_its_trace(
    traced_ingest: TestClient,
    auth: dict[str, str],
    traced_workers: dict[str, Worker],
    receiver: OtlpReceiver,
    sessions: sessionmaker[Session],
    servers: Servers,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    pause_transcription(traced_workers)
    try:
        job_id = submit(traced_ingest, auth, "voice_note.ogg", {})
        lose_messages(servers)
    finally:
        resume_transcription(traced_workers)
    settings = {"VOXFLOW_REQUEUE_AFTER_SECONDS": "0", "VOXFLOW_SWEEP_INTERVAL_SECONDS": "0.5"}
    with (tmp_path / "sweeper.log").open("wb") as log:
        sweeper = subprocess.Popen(
            [sys.executable, "-m", "sweeper"],
            env={**os.environ, **otel_env, **settings},
            stdout=log,
            stderr=log,
        )
    try:
        receiver.wait_for(has_stage(job_id, "job.requeue"))
    finally:
        sweeper.terminate()
        sweeper.wait(30)
    job = wait_finished(sessions, job_id, traced_workers)
    assert job.status == "completed", job.error_message
    trace_id, row_span = stored_parent(job)
    spans = receiver.wait_for(has_stage(job_id, "stage transcribing"))

    requeues = [s for s in spans if s.name == "job.requeue"
                and s.attributes["voxflow.job_id"] == job_id]  # fmt: skip
    assert requeues
    for requeue in requeues:  # the sweeper had no context: the row gave it the job's
        assert (requeue.service, requeue.trace_id, requeue.parent_id) == (
            "sweeper",
            trace_id,
            row_span,
        )
        assert requeue.attributes["voxflow.requeue.reason"] == "message_lost"
    stage = one(spans, "stage transcribing", job_id)
    assert stage.trace_id == trace_id
    above = ancestors(stage, [s for s in spans if s.trace_id == trace_id])
    assert [(s.service, s.kind) for s in above[:2]] == [
        ("transcription_worker", CONSUMER), ("sweeper", PRODUCER)]  # fmt: skip
    assert above[2] in requeues
    assert above[-1].name == "POST /v1/jobs"


def test_a_message_from_another_trace_still_lands_in_the_jobs(
    traced_ingest: TestClient,
    auth: dict[str, str],
    traced_workers: dict[str, Worker],
    receiver: OtlpReceiver,
    sessions: sessionmaker[Session],
    servers: Servers,
) -> None:
    pause_transcription(traced_workers)
    try:
        job_id = submit(traced_ingest, auth, "voice_note.ogg", {})
        lose_messages(servers)
        # Published outside any span: the message carries a trace of its own.
        publish_now(uuid.UUID(job_id), JobStatus.QUEUED)
    finally:
        resume_transcription(traced_workers)
    job = wait_finished(sessions, job_id, traced_workers)
    assert job.status == "completed", job.error_message
    trace_id, row_span = stored_parent(job)
    spans = receiver.wait_for(has_stage(job_id, "stage transcribing"))

    stage = one(spans, "stage transcribing", job_id)
    assert (stage.trace_id, stage.parent_id) == (trace_id, row_span)
    [(link_trace, link_span)] = stage.links
    message = next(s for s in spans if s.span_id == link_span)
    assert (message.service, message.kind) == ("transcription_worker", CONSUMER)
    assert message.trace_id == link_trace != trace_id


def test_a_worker_child_exports_its_spans_when_it_exits(
    receiver: OtlpReceiver, otel_env: dict[str, str], tmp_path: Path
) -> None:
    # The batch would wait ten minutes: only the flush at the child's exit can send it.
    env = {**otel_env, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    queue = f"flush-{uuid.uuid4().hex[:8]}"
    worker = Worker("llm_worker.tasks", queue, 1, tmp_path / "llm.log", env=env)
    worker.start()
    try:
        task_id = publisher_app().send_task(GENERATE_TASK, args=["not-a-job"], queue=queue).id
        deadline = time.monotonic() + 30
        while "invalid job id 'not-a-job'" not in worker.tail():
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.1)
        time.sleep(0.5)

        def ran(spans: list[ReceivedSpan]) -> bool:
            return any(
                s.service == "llm_worker" and s.attributes.get("messaging.message.id") == task_id
                for s in spans
            )

        assert not ran(receiver.spans())  # still buffered in the child
    finally:
        worker.stop()
    assert ran(receiver.wait_for(ran, timeout=10)), worker.tail()
    # The pool child set tracing up after fork (the parent's choice is checked by
    # test_only_pools_that_do_not_fork_trace_in_the_main_process).
    pids = re.findall(r"tracing on for llm_worker \(pid (\d+)\)", worker.tail(500))
    assert len(pids) == 1, worker.tail()
    assert worker.process is not None
    assert int(pids[0]) != worker.process.pid
