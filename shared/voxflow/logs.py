"""Logging shared by every process: readable lines in development, JSON lines in production.

`VOXFLOW_LOG_FORMAT=json` writes one JSON object per line to stderr: `timestamp` (UTC,
ISO 8601), `level`, `service`, `logger`, `message`, then when known `job_id` (the job the
code is working on), `trace_id` and `span_id` (the current OpenTelemetry span, so a log line
leads to its trace), `exc_info` and any `extra=` fields. `console` (the default) writes
`time service LEVEL logger: message [job …]`. The container images set `json`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from pythonjsonlogger.json import JsonFormatter

try:  # tracing is optional here: logs work the same without it
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover
    _otel_trace = None  # type: ignore[assignment]

HANDLER_NAME = "voxflow"
FORMATS = ("console", "json")
# uvicorn logs through loggers of its own that do not reach the root logger's handler.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

_job_id: ContextVar[str | None] = ContextVar("voxflow_job_id", default=None)


def bind_job_id(job_id: uuid.UUID | str | None) -> Token[str | None]:
    """Tag the logs of the current context (a request's task) with a job id.

    The tag stays until the context ends or `unbind_job_id(token)`; in code that does not
    run in a context of its own (a thread pool's worker), prefer `job_context`.
    """
    return _job_id.set(str(job_id) if job_id is not None else None)


def unbind_job_id(token: Token[str | None]) -> None:
    """Undo a `bind_job_id`."""
    _job_id.reset(token)


@contextmanager
def job_context(job_id: uuid.UUID | str) -> Iterator[None]:
    """Tag the logs written inside the block with a job id."""
    token = _job_id.set(str(job_id))
    try:
        yield
    finally:
        _job_id.reset(token)


def current_job_id() -> str | None:
    """The job id the current context's logs carry."""
    return _job_id.get()


class ContextFilter(logging.Filter):
    """Adds `service`, `job_id`, `trace_id` and `span_id` to every record it sees."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record (never drops one)."""
        record.service = self.service
        job_id = _job_id.get()
        if job_id is not None and not hasattr(record, "job_id"):
            record.job_id = job_id
        if _otel_trace is not None:
            context = _otel_trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True


class ConsoleFormatter(logging.Formatter):
    """The development format, with the job id at the end when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(service)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """One readable line (plus a traceback)."""
        text = super().format(record)
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [job {job_id}]{newline}{rest}"


def json_formatter() -> JsonFormatter:
    """One JSON object per record, with the field names documented above."""
    return JsonFormatter(
        ["levelname", "service", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def log_format() -> str:
    """The configured format: VOXFLOW_LOG_FORMAT, `console` or `json`."""
    chosen = os.environ.get("VOXFLOW_LOG_FORMAT", "console").strip().lower() or "console"
    if chosen not in FORMATS:
        raise ValueError(f"VOXFLOW_LOG_FORMAT={chosen!r}: use one of {', '.join(FORMATS)}")
    return chosen


def configure_logging(service: str, level: str | int | None = None) -> None:
    """Log to stderr as `service`, in VOXFLOW_LOG_FORMAT at VOXFLOW_LOG_LEVEL (default INFO).

    Idempotent: a second call replaces the handler the first installed. Handlers others
    installed on the root logger (a test runner's) are left alone.
    """
    chosen = log_format()
    resolved = os.environ.get("VOXFLOW_LOG_LEVEL") or level or "INFO"
    handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(json_formatter() if chosen == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(resolved.upper() if isinstance(resolved, str) else resolved)
    if chosen == "json":
        # Every line of the process in one format: uvicorn's own lines go through ours.
        for name in _UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
