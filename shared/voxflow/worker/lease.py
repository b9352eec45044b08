"""A background heartbeat that keeps a running stage's lease and writes its progress."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from datetime import timedelta
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.errors import LeaseLostError
from voxflow.jobs.states import JobStatus

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews a lease from a thread, so slow steps (model load, long segments) keep it.

    The task thread only sets `progress` and `publish`es decoded segments; the heartbeat
    thread writes them at most every `progress_interval` seconds, in the transaction that
    renews the lease, and otherwise renews the lease every `interval` seconds. When the
    lease is lost, `check()` raises in the task thread at its next call.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: uuid.UUID,
        running: JobStatus,
        owner: str,
        *,
        lease: timedelta,
        interval: float,
        progress_interval: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.running = running
        self.owner = owner
        self.lease = lease
        self.interval = interval
        self.progress_interval = progress_interval
        self.progress: int | None = None
        self.lost = False
        self._written: int | None = None
        self._segments: list[tuple[int, dict[str, Any]]] = []  # published, not yet written
        self._segments_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by publish() and on exit
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def check(self) -> None:
        """Raise LeaseLostError if another worker or the sweeper took the job."""
        if self.lost:
            raise LeaseLostError(f"lease on job {self.job_id} was lost")

    def publish(self, position: int, segment: dict[str, Any]) -> None:
        """Queue a decoded segment for the job's live streams.

        It is written at once when nothing was written in the last `progress_interval`
        (the first words reach a listener without waiting a tick), else at the next beat.
        """
        with self._segments_lock:
            self._segments.append((position, segment))
        self._wake.set()

    def _beat(self) -> None:
        progress = self.progress if self.progress != self._written else None
        with self._segments_lock:
            segments = list(self._segments)
        with session_scope(self.sessions) as session:
            service.heartbeat(session, self.job_id, self.running, self.owner, self.lease,
                              progress, segments)  # fmt: skip
        if progress is not None:
            self._written = progress
        with self._segments_lock:
            del self._segments[: len(segments)]

    def _pending(self) -> bool:
        return self.progress != self._written or bool(self._segments)

    def _run(self) -> None:
        last_beat = time.monotonic()  # the claim has just set the lease
        last_write = -math.inf  # of progress or segments
        pause = min(self.progress_interval, self.interval)
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            due = now - last_beat >= self.interval
            wait_more = self.progress_interval - (now - last_write)
            pause = min(self.progress_interval, self.interval)
            if not due and (not self._pending() or wait_more > 0):
                if self._pending():
                    pause = wait_more  # written as soon as the interval allows
                continue
            try:
                self._beat()
                last_beat = last_write = time.monotonic()
            except LeaseLostError:
                self.lost = True
                return
            except Exception:
                # A transient database error: keep trying until the lease runs out.
                log.warning("heartbeat for job %s failed; retrying", self.job_id, exc_info=True)
