"""Probing in isolated worker processes: FFmpeg can crash the interpreter on hostile input.

``probe_isolated`` runs ``probe_file`` in a small process pool (PyAV issue #2344): a
crash or a hang costs one worker process, never the API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest_api.audio_probe.isolated_pool import (
    IsolatedCrashError,
    IsolatedPool,
    IsolatedTimeoutError,
)
from ingest_api.audio_probe.probe import AudioInfo, AudioRejectedError, human_duration, probe_file

_POOL = IsolatedPool(max_workers=2)


def _run_isolated(
    func: Callable[..., AudioInfo], path: Path, *, max_seconds: float, timeout: float
) -> AudioInfo:
    """Run ``func(path, max_seconds=...)`` in the pool; see :func:`probe_isolated`."""
    try:
        return _POOL.run(func, path, max_seconds=max_seconds, timeout=timeout)
    except IsolatedTimeoutError:
        raise AudioRejectedError(
            "probe_timeout",
            f"Checking the file took longer than {human_duration(timeout)}; "
            "it may be damaged or unusually complex.",
        ) from None
    except IsolatedCrashError:
        raise AudioRejectedError(
            "corrupt_audio", "The file is damaged: the audio decoder crashed while reading it."
        ) from None


def probe_isolated(path: Path, *, max_seconds: float, timeout: float) -> AudioInfo:
    """Like :func:`probe_file`, but in a worker process with a time limit.

    A worker crash becomes ``corrupt_audio`` and a probe running longer than
    ``timeout`` seconds becomes ``probe_timeout`` (the stuck worker is killed); in both
    cases the pool is replaced.  Blocking: call it from a thread (e.g.
    ``run_in_threadpool``) in async code.  At most two probes run at once; further
    callers wait for a free worker before their ``timeout`` starts.
    """
    return _run_isolated(probe_file, Path(path), max_seconds=max_seconds, timeout=timeout)


def shutdown_probe_pool() -> None:
    """Stop the probe workers (call on application shutdown)."""
    _POOL.shutdown()
