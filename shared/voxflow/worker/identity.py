"""Who a worker is, for lease ownership and the job timeline."""

from __future__ import annotations

import os
import socket


def worker_id(kind: str, task_id: str | None = None) -> str:
    """A lease owner name unique to this process (and task delivery)."""
    base = f"{kind}@{socket.gethostname()}:{os.getpid()}"
    return f"{base}/{task_id}" if task_id else base
