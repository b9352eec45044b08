"""OpenTelemetry tracing: one provider per process, set up from the standard OTEL_* variables.

Tracing is off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is
set (or a test hands `setup_tracing` an exporter): then no provider, exporter or thread exists.
When on, spans leave by OTLP/HTTP (protobuf) in batches (`OTEL_BSP_*`), sampled by
`OTEL_TRACES_SAMPLER`, under `OTEL_SERVICE_NAME` or the process's own service name.

One job is one trace: `trace_carrier()` stores the upload's context on the job row, and
`job_span()` continues it in every stage and sweeper re-enqueue, whatever message woke them.
Prefork workers set tracing up in each child after fork and flush it when the child exits
(voxflow.worker.process); the APIs set it up in their lifespan.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy import Engine


log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Probes and scrapes would be most of the API's traces and say nothing.
EXCLUDED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def tracing_configured() -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter == "none":
        return False
    if exporter != "otlp":
        log.warning(
            "OTEL_TRACES_EXPORTER=%s is not supported (only otlp); tracing is off", exporter
        )
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


@dataclass(frozen=True)
class _Installed:
    provider: TracerProvider
    service_name: str
    pid: int


_lock = threading.Lock()
_installed: _Installed | None = None


def _provider() -> TracerProvider | None:
    installed = _installed
    # A provider inherited through fork has no export thread: it is not this process's.
    if installed is None or installed.pid != os.getpid():
        return None
    return installed.provider


class _ProcessTracer(trace.Tracer):
    """A tracer that follows this process's current provider (none: spans are no-ops)."""

    def __init__(
        self, name: str, version: str | None, schema_url: str | None, attributes: Attributes
    ) -> None:
        self._scope = (name, version, schema_url, attributes)
        self._for: TracerProvider | None = None
        self._tracer: trace.Tracer = trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        provider = _provider()
        if provider is not self._for:
            self._tracer = (
                provider.get_tracer(*self._scope) if provider is not None else trace.NoOpTracer()
            )
            self._for = provider
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        """Start a span with the current provider's tracer."""
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        """Start a current span with the current provider's tracer."""
        return self._current().start_as_current_span(*args, **kwargs)


class _ProcessTracerProvider(trace.TracerProvider):
    """The global provider, installed once: its tracers follow `setup_tracing`'s provider.

    OpenTelemetry lets a process set its global provider only once, and instrumentations keep
    the tracers they were given; forwarding lets a forked child or a test start afresh.
    """

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        """A tracer for an instrumentation scope."""
        return _ProcessTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


_GLOBAL_PROVIDER = _ProcessTracerProvider()
_tracer = trace.get_tracer("voxflow")


def setup_tracing(service_name: str, *, exporter: SpanExporter | None = None) -> bool:
    """Install this process's tracer provider and instrumentations; False when tracing is off.

    Idempotent per process: later calls keep the provider (and service name) of the first.
    `exporter` is the test hook: it replaces any provider with one that hands each span to
    `exporter` as it ends, whatever the environment says.
    """
    global _installed  # noqa: PLW0603 (one provider per process)
    with _lock:
        current = _provider()
        if exporter is None:
            if current is not None:
                return True
            if not tracing_configured():
                return False
        elif current is not None:
            _stop(current)
        from voxflow.observability import _sdk as sdk

        provider = sdk.build_provider(service_name, exporter)
        _installed = _Installed(provider, service_name, os.getpid())
        if trace.get_tracer_provider() is not _GLOBAL_PROVIDER:
            trace.set_tracer_provider(_GLOBAL_PROVIDER)
            if trace.get_tracer_provider() is not _GLOBAL_PROVIDER:
                log.warning("another tracer provider was installed first; spans may be lost")
        sdk.instrument_libraries()
    log.info("tracing on for %s (pid %d)", service_name, os.getpid())
    return True


def instrument_engine(engine: Engine) -> None:
    """Trace this engine's statements if tracing is on (engines are made after setup)."""
    if _provider() is not None:
        from voxflow.observability import _sdk as sdk

        sdk.instrument_engine(engine)


def tracing_enabled() -> bool:
    """Whether this process has a tracer provider (set up and not shut down)."""
    return _provider() is not None


def flush_tracing(timeout_millis: int = 10_000) -> bool:
    """Export the spans buffered so far; True when done (or nothing to do)."""
    provider = _provider()
    return True if provider is None else provider.force_flush(timeout_millis)


def shutdown_tracing() -> None:
    """Export what is buffered and stop this process's provider (a worker child's exit)."""
    global _installed  # noqa: PLW0603
    with _lock:
        current = _provider()
        _installed = None
    if current is not None:
        _stop(current)


def _stop(provider: TracerProvider) -> None:
    # Prefork children leave by os._exit: no atexit hook would export their last spans.
    provider.force_flush(10_000)
    provider.shutdown()


def trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`), to store on a job row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def job_span(
    name: str, carrier: Mapping[str, str] | None, attributes: Attributes = None
) -> Iterator[Span]:
    """Run a block in a span of the job's trace, whatever context this process is in.

    The parent is the current span when it already belongs to the job's trace (the message
    carried it); otherwise the context stored on the job row, linked to the current span
    (a message the sweeper re-published, or one sent by an untraced publisher).
    """
    stored = propagate.extract(dict(carrier or {}))
    job_trace = trace.get_current_span(stored).get_span_context()
    current = trace.get_current_span().get_span_context()
    parent: Context | None = None
    links: list[Link] = []
    if job_trace.is_valid and job_trace.trace_id != current.trace_id:
        parent = stored
        if current.is_valid:
            links.append(Link(current, {"voxflow.link": "message"}))
    with _tracer.start_as_current_span(
        name, context=parent, links=links, attributes=attributes
    ) as span:
        yield span


def _excluded(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in EXCLUDED_PATHS


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own request spans, from the provider `setup_tracing` installs.

    FastAPI traces requests natively (server span, route, status) once a global provider
    exists; we skip probes and scrapes, and never let it configure exporters itself.
    """
    return {"exclude": _excluded, "auto_configure": False, "metrics": False, "logs": False}


@contextmanager
def database_span(statement: str) -> Iterator[None]:
    """A client span for SQL sent to a driver directly (SQLAlchemy's own are traced by its
    instrumentation): named by the statement's verb, with the statement as an attribute."""
    if _provider() is None:
        yield
        return
    verb = statement.split(None, 1)[0].upper() if statement else "SQL"
    attributes = {"db.system": "postgresql", "db.statement": statement}
    with _tracer.start_as_current_span(verb, kind=trace.SpanKind.CLIENT, attributes=attributes):
        yield
