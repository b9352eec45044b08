"""Probing in isolated worker processes: FFmpeg can crash the interpreter on hostile input.

``probe_isolated`` runs ``probe_file`` in a small process pool (PyAV issue #2344): a
crash or a hang costs one worker process, never the API.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from voxflow.audio.probe import AudioInfo, AudioRejectedError, human_duration, probe_file

# Start method for probe workers.  "fork" is out: the parent is a uvicorn/FastAPI
# process with an event loop and thread pools, and forking a multi-threaded process
# can deadlock the child on locks held by other threads.  "forkserver" starts one
# clean, single-threaded server process (via exec, like "spawn") the first time it
# is needed and then forks each worker from it, so workers are cheap to (re)create
# after a crash or timeout kill, and none of them inherit the app's threads, sockets
# or DB connections.  "spawn" is the fallback where forkserver is unavailable.
# Either way the parent's ``__main__`` must be import-safe (uvicorn's is).
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
_MAX_WORKERS = 2

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
# At most one probe per worker in flight, so that ``timeout`` measures probing
# time rather than time spent queued behind other uploads.
_slots = threading.BoundedSemaphore(_MAX_WORKERS)


class _WorkerDiedError(Exception):
    """The worker process running a probe exited abnormally (crash or kill)."""


def _new_executor(max_workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=max_workers, mp_context=multiprocessing.get_context(_START_METHOD)
    )


def _get_pool() -> ProcessPoolExecutor:
    global _pool  # noqa: PLW0603 - the module-level pool is the point
    with _pool_lock:
        if _pool is None:
            _pool = _new_executor(_MAX_WORKERS)
        return _pool


def _discard_pool(pool: ProcessPoolExecutor) -> None:
    """Forget ``pool`` (if still current) so the next probe gets a fresh one."""
    global _pool  # noqa: PLW0603
    with _pool_lock:
        if _pool is pool:
            _pool = None


def _kill_executor(pool: ProcessPoolExecutor) -> None:
    """Kill the executor's workers (a stuck FFmpeg call cannot be interrupted).

    ``ProcessPoolExecutor`` has no public way to do this before Python 3.14
    (``kill_workers``), so we use its ``_processes`` mapping.
    """
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _await(future: Future[AudioInfo], timeout: float) -> AudioInfo:
    """Wait for ``future``; a dead worker becomes ``_WorkerDiedError``.

    Raises ``TimeoutError`` only when the probe is still running after ``timeout``.
    """
    try:
        return future.result(timeout=timeout)
    except BrokenProcessPool as exc:
        raise _WorkerDiedError from exc
    except TimeoutError:
        if future.done():  # the probe itself raised TimeoutError: not our timeout
            raise
        raise _ProbeTimedOutError from None


class _ProbeTimedOutError(Exception):
    """The probe was still running when its time was up."""


def _timeout_error(timeout: float) -> AudioRejectedError:
    return AudioRejectedError(
        "probe_timeout",
        f"Checking the file took longer than {human_duration(timeout)}; "
        "it may be damaged or unusually complex.",
    )


def _ping() -> bool:
    return True


def _check_worker_starts(executor: ProcessPoolExecutor, timeout: float) -> None:
    """Fail loudly, without blaming the upload, if no worker process can start.

    Typical causes: the parent's ``__main__`` starts probing at import time without an
    ``if __name__ == "__main__":`` guard, or the system is out of processes/memory.
    """
    try:
        executor.submit(_ping).result(timeout=timeout)
    except (BrokenProcessPool, TimeoutError) as exc:
        raise RuntimeError("audio probe worker process could not be started") from exc


def _run_isolated(
    func: Callable[..., AudioInfo], path: Path, *, max_seconds: float, timeout: float
) -> AudioInfo:
    """Run ``func(path, max_seconds=...)`` in a worker; see :func:`probe_isolated`."""
    with _slots:
        pool = _get_pool()
        try:
            future = pool.submit(func, path, max_seconds=max_seconds)
        except RuntimeError:
            # BrokenProcessPool (a RuntimeError) if a crash broke the pool since we
            # fetched it, or plain RuntimeError if it was shut down meanwhile.
            future = None
        if future is not None:
            try:
                return _await(future, timeout)
            except _ProbeTimedOutError:
                _discard_pool(pool)
                _kill_executor(pool)
                raise _timeout_error(timeout) from None
            except _WorkerDiedError:
                pass
        _discard_pool(pool)
        pool.shutdown(wait=False, cancel_futures=True)

        # A dead worker breaks the whole pool, failing every probe in flight, not
        # only the one that crashed.  Re-run this file alone in a one-off process
        # so that only a file that crashes by itself is reported as corrupt.
        solo = _new_executor(1)
        try:
            _check_worker_starts(solo, timeout)
            return _await(solo.submit(func, path, max_seconds=max_seconds), timeout)
        except _ProbeTimedOutError:
            _kill_executor(solo)
            raise _timeout_error(timeout) from None
        except _WorkerDiedError:
            raise AudioRejectedError(
                "corrupt_audio",
                "The file is damaged: the audio decoder crashed while reading it.",
            ) from None
        finally:
            solo.shutdown(wait=False, cancel_futures=True)


def probe_isolated(path: Path, *, max_seconds: float, timeout: float) -> AudioInfo:
    """Like :func:`probe_file`, but in a worker process with a time limit.

    A worker crash becomes ``corrupt_audio`` and a probe running longer than
    ``timeout`` seconds becomes ``probe_timeout`` (the stuck worker is killed); in both
    cases the pool is replaced.  Blocking: call it from a thread (e.g.
    ``run_in_threadpool``) in async code.  At most two probes run at once; further
    callers wait for a free worker before their ``timeout`` starts.  If a probe was
    caught in a pool broken by another file it is retried once in a fresh process, so
    the worst-case wall time is about ``2 * timeout``.
    """
    return _run_isolated(probe_file, Path(path), max_seconds=max_seconds, timeout=timeout)


def shutdown_probe_pool() -> None:
    """Stop the probe workers (call on application shutdown).

    Idle workers exit normally; a worker still busy after a short grace period is
    killed so shutdown never hangs on a stuck decoder.  A later probe starts a new pool.
    """
    global _pool  # noqa: PLW0603
    with _pool_lock:
        pool = _pool
        _pool = None
    if pool is None:
        return
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    workers = list(processes.values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join(timeout=2.0)
