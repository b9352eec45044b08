"""Tracing in one process: off without an endpoint, the job's trace kept on its row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from celery.concurrency.prefork import TaskPool as PreforkPool
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind
from sqlalchemy.orm import Session

from tests.support.jobs import new_job, reload
from voxflow.observability.tracing import (
    job_span,
    setup_tracing,
    shutdown_tracing,
    trace_carrier,
    tracing_enabled,
)
from voxflow.worker.process import _forks

tracer = trace.get_tracer("tests")

# What a process shows after serving a request: is tracing on, is the SDK loaded, which
# exporter threads run.
PROBE = """
import json, sys, threading
from fastapi.testclient import TestClient
from opentelemetry import trace
from ingest_api.app import create_app
from voxflow.observability import tracing
with TestClient(create_app()) as client:
    assert client.get("/healthz").status_code == 200
print(json.dumps({
    "enabled": tracing.tracing_enabled(),
    "provider": type(trace.get_tracer_provider()).__name__,
    "sdk_loaded": "opentelemetry.sdk.trace" in sys.modules,
    "exporter_threads": [t.name for t in threading.enumerate() if "Otel" in t.name],
}))
"""


def probe(otel: dict[str, str]) -> dict[str, object]:
    """Run PROBE in a fresh process with only these OTEL_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | otel
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_an_endpoint_there_is_no_provider_no_sdk_and_no_exporter_thread() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there
    with ThreadPoolExecutor(3) as pool:  # three fresh processes side by side
        off, on, disabled = pool.map(
            probe, [{}, endpoint, endpoint | {"OTEL_SDK_DISABLED": "true"}]
        )
    assert off == {
        "enabled": False,
        "provider": "ProxyTracerProvider",
        "sdk_loaded": False,
        "exporter_threads": [],
    }
    # The same probe sees all three once an endpoint is set.
    assert on["enabled"] is True
    assert on["sdk_loaded"] is True
    assert on["exporter_threads"]
    assert disabled["enabled"] is False


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every span handed to memory as it ends."""
    memory = InMemorySpanExporter()
    assert setup_tracing("tests", exporter=memory)
    try:
        yield memory
    finally:
        shutdown_tracing()
    assert not tracing_enabled()


def traceparent(context: SpanContext) -> str:
    """The W3C header of a span context."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """Finished spans by name."""
    return {span.name: span for span in exporter.get_finished_spans()}


def test_setup_is_idempotent(exporter: InMemorySpanExporter) -> None:
    assert setup_tracing("another_service")  # keeps the first provider and its exporter
    with tracer.start_as_current_span("work"):
        pass
    span = by_name(exporter)["work"]
    assert span.resource.attributes["service.name"] == "tests"


def test_a_stage_span_continues_the_trace_stored_on_the_row(
    exporter: InMemorySpanExporter,
) -> None:
    with tracer.start_as_current_span("upload") as upload:
        carrier = trace_carrier()
    row = upload.get_span_context()
    assert carrier == {"traceparent": traceparent(row)}

    with job_span("sweeper", carrier):  # no context at all: the row's
        pass
    with tracer.start_as_current_span("foreign message") as foreign, job_span("lost", carrier):
        pass  # a message from another trace: the row's, linked to the message
    with (
        tracer.start_as_current_span("own message", context=trace.set_span_in_context(upload)),
        job_span("carried", carrier),
    ):
        pass  # a message of the job's own trace: it stays the parent

    spans = by_name(exporter)
    for name in ("sweeper", "lost", "carried"):
        assert spans[name].context is not None
        assert spans[name].context.trace_id == row.trace_id, name
    assert spans["sweeper"].parent is not None
    assert spans["sweeper"].parent.span_id == row.span_id
    assert not spans["sweeper"].links
    assert spans["lost"].parent is not None
    assert spans["lost"].parent.span_id == row.span_id
    assert [link.context.span_id for link in spans["lost"].links] == [
        foreign.get_span_context().span_id
    ]
    assert spans["carried"].parent is not None
    assert spans["carried"].parent.span_id == spans["own message"].context.span_id
    assert not spans["carried"].links


def test_client_spans_outside_any_trace_are_dropped(exporter: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("UPDATE jobs", kind=SpanKind.CLIENT) as orphan:
        assert not orphan.is_recording()  # a heartbeat or a scrape: no trace of its own
    with (
        tracer.start_as_current_span("stage"),
        tracer.start_as_current_span("UPDATE jobs", kind=SpanKind.CLIENT) as child,
    ):
        assert child.is_recording()
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["UPDATE jobs", "stage"]


def test_a_new_job_row_keeps_the_upload_trace_context(
    exporter: InMemorySpanExporter, db_session: Session, tenant: str
) -> None:
    with tracer.start_as_current_span("POST /v1/jobs") as upload:
        job_id = new_job(db_session, tenant, tasks=["summary"])
    context = upload.get_span_context()
    job = reload(db_session, job_id)
    assert job.trace_context == {"traceparent": traceparent(context)}
    attributes = by_name(exporter)["POST /v1/jobs"].attributes or {}
    assert attributes["voxflow.job_id"] == str(job_id)
    assert attributes["voxflow.tenant"] == tenant
    assert attributes["voxflow.audio.duration_seconds"] == 12.5
    assert attributes["voxflow.tasks"] == ("summary",)


def test_without_tracing_a_job_row_has_an_empty_trace_context(
    db_session: Session, tenant: str
) -> None:
    assert not tracing_enabled()
    job_id = new_job(db_session, tenant)
    assert reload(db_session, job_id).trace_context == {}


@pytest.mark.parametrize(
    ("pool", "forks"),
    [("prefork", True), ("processes", True), (PreforkPool, True), ("solo", False),
     ("threads", False)],
)  # fmt: skip
def test_only_pools_that_do_not_fork_trace_in_the_main_process(pool: object, forks: bool) -> None:
    # A prefork parent must not start an exporter thread that its children would inherit.
    assert _forks(pool) is forks
