"""The SDK side of tracing (provider, sampler, exporter, instrumentations): loaded only when on."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy import Engine

log = logging.getLogger(__name__)


class SkipOrphanClientSpans(Sampler):
    """Drop client spans (SQL, Redis) outside any trace: heartbeats, polls, metric scrapes.

    A lease renewal every few seconds, or a queue-depth query per scrape, would otherwise
    each start a trace of its own and bury the jobs' traces.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop a client span without a parent; let the configured sampler decide the rest."""
        parent = get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """Name the sampler in diagnostics."""
        return f"SkipOrphanClientSpans{{{self._delegate.get_description()}}}"


def build_provider(service_name: str, exporter: SpanExporter | None) -> TracerProvider:
    """A provider for this process: OTLP/HTTP in batches, or `exporter` span by span (tests)."""
    # OTEL_SERVICE_NAME overrides the built-in name; OTEL_RESOURCE_ATTRIBUTES adds to it.
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
    resource = Resource.create({SERVICE_NAME: name, "service.namespace": "voxflow"})
    # The sampler comes from OTEL_TRACES_SAMPLER/_ARG (default: parent-based, always on).
    provider = TracerProvider(resource=resource)
    provider.sampler = SkipOrphanClientSpans(provider.sampler)
    processor: SpanProcessor
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    else:
        # Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_*,
        # batching from OTEL_BSP_*.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    return provider


def instrument_libraries() -> None:
    """Trace Celery (publish and run) and Redis in this process, once."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (CeleryInstrumentor(), RedisInstrumentor()):  # type: ignore[no-untyped-call]
        if instrumentor.is_instrumented_by_opentelemetry:
            continue  # inherited through fork, or a second setup in this process
        instrumentor.instrument()
        if not instrumentor.is_instrumented_by_opentelemetry:
            log.warning("%s could not instrument its library", type(instrumentor).__name__)


def instrument_engine(engine: Engine) -> None:
    """Trace one engine's statements.

    Per engine rather than `SQLAlchemyInstrumentor().instrument()`, which also patches
    `create_async_engine` (that import needs greenlet, which Voxflow does not install) and
    declares `sqlalchemy < 2.1`; the engine events it listens to are the same in 2.1.
    """
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__

    scope = "opentelemetry.instrumentation.sqlalchemy"
    usage = metrics.get_meter(scope, __version__).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    EngineTracer(trace.get_tracer(scope, __version__), engine, usage)  # type: ignore[no-untyped-call]
