"""`voxflow submit` with many recordings: bounded uploads, live job streams, files written.

Uploads run `concurrency` at a time. Each accepted job is then followed through its live
stream (docs/streaming.md), at most `MAX_STREAMS` at once: later jobs wait their turn in the
server's queue anyway, and every open stream costs the status API a read four times a second.
A stream that opens after its job ended replays the history and ends at once, so nothing is
missed by waiting. The threads are daemons: Ctrl-C ends the command without waiting for open
streams, and the jobs already uploaded go on.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from voxflow_cli.client import ApiCallError, VoxflowClient
from voxflow_cli.files import Recording, notes_path
from voxflow_cli.view import BatchView

MAX_STREAMS = 16
UPLOAD_ATTEMPTS = 6  # answers saying "later" (429, 503, key in use) or cut lines, per file
RETRY_LATER = frozenset({"rate_limited", "too_many_active_jobs", "idempotency_key_in_use"})
FAILED = frozenset({"failed", "canceled", "deleted", "refused", "lost"})


@dataclass
class Item:
    """One recording of the batch and what became of it."""

    recording: Recording
    output: Path | None = None  # where its transcript goes (None: not written)
    # The upload's Idempotency-Key: retrying after a cut line cannot create a second job.
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    job_id: str | None = None
    # A job status, or: waiting, uploading, refused (at upload), lost (the stream broke).
    status: str = "waiting"
    progress: int = 0
    error: dict[str, str] | None = None
    written: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the recording did not give what was asked."""
        return self.status in FAILED

    def fail(self, status: str, code: str, message: str) -> None:
        """Record why the recording did not give what was asked."""
        self.status, self.error = status, {"code": code, "message": message}

    def summary(self) -> dict[str, Any]:
        """The item as `submit --json` prints it."""
        return {
            "file": str(self.recording.path),
            "job_id": self.job_id,
            "status": self.status,
            "error": self.error,
            "written": [str(path) for path in self.written],
        }


class _Pool:
    """Daemon threads taking items from a FIFO queue; `join` returns when all are done."""

    def __init__(
        self, size: int, work: Callable[[Item], None], on_crash: Callable[[Item, Exception], None]
    ) -> None:
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._work, self._on_crash, self._size = work, on_crash, size
        for _ in range(size):
            threading.Thread(target=self._run, daemon=True).start()

    def put(self, item: Item) -> None:
        """Queue an item for the next free thread."""
        self._queue.put(item)

    def join(self) -> None:
        """Wait until every queued item has been handled, then let the threads end."""
        self._queue.join()
        for _ in range(self._size):
            self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._work(item)
            except Exception as exc:  # one file's surprise must not stop the others
                self._on_crash(item, exc)
            finally:
                self._queue.task_done()


@dataclass
class Batch:
    """Uploads recordings, follows their jobs and writes their transcripts."""

    client: VoxflowClient
    items: list[Item]
    view: BatchView
    options: dict[str, Any]
    webhook_url: str | None = None
    wait: bool = False
    fmt: str = "txt"
    concurrency: int = 4

    def run(self) -> None:
        """Handle every item; returns when all have ended (or were uploaded, without wait)."""
        streams = _Pool(MAX_STREAMS, self._follow, self._crashed) if self.wait else None
        uploads = _Pool(self.concurrency, lambda item: self._upload(item, streams), self._crashed)
        for item in self.items:
            uploads.put(item)
        uploads.join()  # every accepted job is in the streams' queue by now
        if streams is not None:
            streams.join()

    def _crashed(self, item: Item, exc: Exception) -> None:
        item.fail(
            "lost" if item.job_id else "refused", "client_error", f"{type(exc).__name__}: {exc}"
        )
        self.view.show(item)

    def _upload(self, item: Item, streams: _Pool | None) -> None:
        item.status = "uploading"
        self.view.show(item)
        accepted = self._send(item)
        if accepted is None:
            self.view.show(item)
            return
        item.job_id, item.status = str(accepted["id"]), "queued"
        self.view.show(item)
        if streams is not None:
            streams.put(item)

    def _send(self, item: Item) -> dict[str, Any] | None:
        """Upload, waiting and retrying while the API says "later"; None when refused."""
        path = item.recording.path
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            last = attempt == UPLOAD_ATTEMPTS
            try:
                return self.client.submit(path, self.options, self.webhook_url, item.key)
            except ApiCallError as exc:
                if last or (exc.code not in RETRY_LATER and exc.status != 503):
                    item.fail("refused", exc.code, exc.message)
                    return None
                pause = exc.retry_after or 2.0**attempt
            except httpx.TransportError as exc:
                if last:
                    item.fail("refused", "unreachable", f"{self.client.ingest_url}: {exc}")
                    return None
                pause = 2.0**attempt
            except OSError as exc:
                item.fail("refused", "unreadable_file", str(exc))
                return None
            self.view.show(item, note=f"retrying in {pause:.0f}s")
            time.sleep(min(pause, 60.0))
        return None

    def _follow(self, item: Item) -> None:
        assert item.job_id is not None
        try:
            for event in self.client.watch(item.job_id):
                data = json.loads(event.data)
                if event.event == "progress":
                    item.status, item.progress = data["status"], data["progress"]
                elif event.event == "state":
                    item.status, item.progress = data["to"], 0
                elif event.event == "end":
                    item.status, item.error = data["status"], data.get("error")
                self.view.show(item)
        except (ApiCallError, httpx.TransportError) as exc:
            code = exc.code if isinstance(exc, ApiCallError) else "stream_lost"
            item.fail("lost", code, f"lost track of job {item.job_id}: {exc}")
        if item.status == "completed" and item.output is not None:
            self._write(item, item.output)
        self.view.show(item)

    def _write(self, item: Item, output: Path) -> None:
        """Write the transcript (and the notes, when the job wrote some) as files."""
        assert item.job_id is not None
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(self.client.transcript(item.job_id, self.fmt), encoding="utf-8")
            item.written.append(output)
            if self.options.get("tasks"):
                results = self.client.results(item.job_id)["results"]
                notes = notes_path(output, self.fmt)
                notes.write_text(notes_markdown(results), encoding="utf-8")
                item.written.append(notes)
        except ApiCallError as exc:
            item.fail("failed", exc.code, exc.message)
        except OSError as exc:
            item.fail("failed", "write_failed", str(exc))


def notes_markdown(results: list[dict[str, Any]]) -> str:
    """A job's notes as one Markdown document, a section per task."""
    sections = [
        f"## {result['task']}\n\n_{result['provider']} / {result['model']}_\n\n"
        f"{result['output'].strip()}\n"
        for result in results
    ]
    return "\n".join(sections)
