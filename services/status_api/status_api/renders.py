"""Transcripts rendered lately, kept per process.

Rendering an hour of speech as SRT takes tens of milliseconds of CPU (cue wrapping and
balancing, in Python), and loading its segments a few more; a client that downloads it
again, or a player page that many people open, gets the same bytes. So renderings are kept
by (job, format, line width, the job's `updated_at`) in a least-recently-used cache bounded
in bytes. The job is still looked up on every request (tenant, existence), so a deleted job
is never served. A transcript's text never changes once written, but its speakers' names
can: renaming them touches the job's `updated_at`, so every API process renders it again.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime

from cachetools import LRUCache

from status_api.service import RenderedTranscript

MAX_BYTES = 32 * 2**20  # per API process

Key = tuple[uuid.UUID, str, int, datetime]


class RenderedTranscripts:
    """Renderings by (job id, format, max line chars, job updated at), at most `max_bytes`
    of bodies."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._largest = max_bytes // 8
        self._items: LRUCache[Key, RenderedTranscript] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda rendered: len(rendered.body)
        )
        self._lock = threading.Lock()  # renderings of large transcripts finish in threads

    def get(self, key: Key) -> RenderedTranscript | None:
        """A kept rendering, or None."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Key, rendered: RenderedTranscript) -> None:
        """Keep a rendering (unless it alone would take too much of the cache)."""
        if len(rendered.body) <= self._largest:
            with self._lock:
                self._items[key] = rendered
