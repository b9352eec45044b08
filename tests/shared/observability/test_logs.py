"""Log lines: JSON objects with the job and trace they belong to, or readable console lines."""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from voxflow.logs import HANDLER_NAME, configure_logging, current_job_id, job_context

log = logging.getLogger("voxflow.test")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """Put the root logger back as it was (configure_logging changes it for the process)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(err: str) -> list[dict[str, object]]:
    """Every stderr line, each of which must be one JSON object."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_lines_carry_service_job_and_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOXFLOW_LOG_FORMAT", "json")
    configure_logging("llm_worker")
    job_id = uuid.uuid4()
    span = NonRecordingSpan(
        SpanContext(0x1234, 0xABCD, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    # A context of its own: whatever earlier tests left in this thread's does not leak in.
    contextvars.Context().run(log.info, "outside any job")
    before = current_job_id()
    with job_context(job_id), trace.use_span(span):
        log.warning("inside job %s", "work", extra={"attempt": 2})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed")
    assert current_job_id() == before  # the block's tag is gone

    outside, inside, failed = lines(capsys.readouterr().err)
    assert outside["message"] == "outside any job"
    assert {"job_id", "trace_id", "span_id"}.isdisjoint(outside)
    assert inside["message"] == "inside job work"
    assert (inside["level"], inside["service"], inside["logger"]) == (
        "WARNING",
        "llm_worker",
        "voxflow.test",
    )
    assert inside["job_id"] == str(job_id)
    assert inside["trace_id"] == f"{0x1234:032x}"
    assert inside["span_id"] == f"{0xABCD:016x}"
    assert inside["attempt"] == 2
    assert str(inside["timestamp"]).endswith("+00:00")
    assert "ValueError: boom" in str(failed["exc_info"])
    assert failed["job_id"] == str(job_id)


def test_console_lines_are_readable_and_name_the_job(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VOXFLOW_LOG_FORMAT", raising=False)
    configure_logging("status_api")
    configure_logging("status_api")  # idempotent: still one line per record
    with job_context("job-1"):
        log.info("hello")
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" status_api INFO voxflow.test: hello [job job-1]")


def test_an_unknown_format_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXFLOW_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="VOXFLOW_LOG_FORMAT"):
        configure_logging("sweeper")
