"""What every API command shares: connection options, the client, error reporting, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from voxflow_cli.client import ApiCallError, VoxflowClient

# stdout carries results (what a script pipes on); stderr carries progress and errors.
console = Console()
err = Console(stderr=True)

CONNECTION = "Connection"
ApiKey = Annotated[
    str,
    typer.Option(
        envvar="VOXFLOW_API_KEY", show_default=False, rich_help_panel=CONNECTION,
        help="API key (create one with `voxflow keys create --tenant NAME`).",
    ),
]  # fmt: skip
IngestUrl = Annotated[
    str,
    typer.Option(envvar="VOXFLOW_INGEST_URL", rich_help_panel=CONNECTION, help="Ingestion API."),
]
StatusUrl = Annotated[
    str, typer.Option(envvar="VOXFLOW_STATUS_URL", rich_help_panel=CONNECTION, help="Status API.")
]
Json = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON (one document) instead of a view.")
]


class TranscriptFormat(StrEnum):
    """Transcript formats of the status API."""

    TXT = "txt"
    SRT = "srt"
    VTT = "vtt"
    JSON = "json"
    VERBOSE_JSON = "verbose_json"


INGEST_URL = "http://127.0.0.1:8000"
STATUS_URL = "http://127.0.0.1:8001"
HOW_TO_GET_A_KEY = (
    "Create one where Voxflow runs with `voxflow keys create --tenant NAME`, then "
    "`export VOXFLOW_API_KEY=...` (or pass --api-key)."
)


def connect(api_key: str, status_url: str, ingest_url: str = INGEST_URL) -> VoxflowClient:
    """A client for the APIs, or exit 2 saying how to get a key when none was given."""
    if not api_key.strip():
        fail("missing_api_key", f"No API key: VOXFLOW_API_KEY is not set. {HOW_TO_GET_A_KEY}", 2)
    return VoxflowClient(ingest_url.rstrip("/"), status_url.rstrip("/"), api_key.strip())


def fail(code: str, message: str, exit_code: int = 1) -> NoReturn:
    """Print `error: code: message` on stderr and exit (1 by default)."""
    err.print(f"[red]error:[/] [bold]{code}[/]: {escape(message)}", soft_wrap=True)
    raise typer.Exit(exit_code)


@contextmanager
def reporting(client: VoxflowClient) -> Iterator[VoxflowClient]:
    """Turn the API's error answers and unreachable servers into one line on stderr and exit 1.

    The client's connections are closed when the block ends, however it ends.
    """
    try:
        yield client
    except ApiCallError as exc:
        hint = f" {HOW_TO_GET_A_KEY}" if exc.status == 401 else ""
        fail(exc.code, exc.message + hint)
    except httpx.TransportError as exc:
        where = exc.request.url if _has_request(exc) else "the API"
        fail("unreachable", f"Cannot reach {where}: {exc}")
    finally:
        client.close()


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018  (httpx raises RuntimeError when the error has no request)
    except RuntimeError:
        return False
    return True


def print_json(document: Any) -> None:
    """Write one JSON document on stdout, as is (no markup, no wrapping)."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def when(value: str | None) -> datetime | None:
    """An API timestamp as a datetime (None stays None)."""
    return datetime.fromisoformat(value) if value else None


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago an API timestamp was, in its largest whole unit, as kubectl shows it
    ("45s", "12m", "3h", "5d"): short enough for a table's narrow column."""
    moment = when(value)
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock(seconds: float | None) -> str:
    """A length of audio as m:ss or h:mm:ss."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


STATUS_STYLES = {
    "queued": "yellow", "transcribing": "cyan", "transcribed": "cyan", "generating": "cyan",
    "completed": "green", "failed": "red", "canceled": "magenta",
}  # fmt: skip


def styled_status(status: str) -> str:
    """A job status as rich markup, coloured by how it stands."""
    return f"[{STATUS_STYLES.get(status, 'white')}]{status}[/]"
