"""Run a function in a small pool of worker processes, safe from crashes and hangs.

Native decoders (FFmpeg through PyAV) can crash the interpreter on hostile input (PyAV
issue #2344) or hang on it. `IsolatedPool.run` runs a picklable function in a pool process
with a time limit: a crash costs that process and a hang gets it killed, never the caller.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

# Start method for pool workers.  "fork" is out: the parent is a uvicorn/FastAPI or Celery
# process with threads, and forking a multi-threaded process can deadlock the child on locks
# held by other threads.  "forkserver" starts one clean, single-threaded server process (via
# exec, like "spawn") the first time it is needed and then forks each worker from it, so
# workers are cheap to (re)create after a crash or timeout kill, and none of them inherit the
# app's threads, sockets or DB connections.  "spawn" is the fallback where forkserver is
# unavailable.  Either way the parent's ``__main__`` must be import-safe.
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class IsolatedCrashError(Exception):
    """The function's process died (crash or kill) on this input, also when run alone."""


class IsolatedTimeoutError(Exception):
    """The function was still running when its time was up; its process was killed."""


class _WorkerDiedError(Exception):
    pass


class _TimedOutError(Exception):
    pass


def _new_executor(max_workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=max_workers, mp_context=multiprocessing.get_context(_START_METHOD)
    )


def _kill_executor(pool: ProcessPoolExecutor) -> None:
    """Kill the executor's workers (a stuck native call cannot be interrupted).

    ``ProcessPoolExecutor`` has no public way to do this before Python 3.14
    (``kill_workers``), so we use its ``_processes`` mapping.
    """
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _await(future: Future[T], timeout: float) -> T:
    """Wait for ``future``; a dead worker becomes ``_WorkerDiedError``."""
    try:
        return future.result(timeout=timeout)
    except BrokenProcessPool as exc:
        raise _WorkerDiedError from exc
    except TimeoutError:
        if future.done():  # the function itself raised TimeoutError: not our timeout
            raise
        raise _TimedOutError from None


def _ping() -> bool:
    return True


def _check_worker_starts(executor: ProcessPoolExecutor, timeout: float) -> None:
    """Fail loudly, without blaming the input, if no worker process can start.

    Typical causes: the parent's ``__main__`` does work at import time without an
    ``if __name__ == "__main__":`` guard, or the system is out of processes or memory.
    """
    try:
        executor.submit(_ping).result(timeout=timeout)
    except (BrokenProcessPool, TimeoutError) as exc:
        raise RuntimeError("an isolated worker process could not be started") from exc


class IsolatedPool:
    """A lazily started process pool whose calls survive crashes and hangs of the callee."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        # At most one call per worker in flight, so that ``timeout`` measures the call's
        # own time rather than time spent queued behind others.
        self._slots = threading.BoundedSemaphore(max_workers)

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = _new_executor(self.max_workers)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Forget ``pool`` (if still current) so the next call gets a fresh one."""
        with self._lock:
            if self._pool is pool:
                self._pool = None

    def run(self, func: Callable[..., T], *args: Any, timeout: float, **kwargs: Any) -> T:
        """Call ``func(*args, **kwargs)`` in a pool process and return its result.

        Exceptions raised by ``func`` come back as they are. A worker that dies breaks the
        whole pool, failing every call in flight, not only the one that crashed, so the
        call is re-run alone in a one-off process: only an input that crashes by itself
        raises ``IsolatedCrashError``. Past ``timeout`` seconds the worker is killed and
        ``IsolatedTimeoutError`` raised. Worst case wall time: about ``2 * timeout``.
        """
        with self._slots:
            pool = self._get()
            try:
                future: Future[T] | None = pool.submit(func, *args, **kwargs)
            except RuntimeError:
                # BrokenProcessPool (a RuntimeError) if a crash broke the pool since we
                # fetched it, or plain RuntimeError if it was shut down meanwhile.
                future = None
            if future is not None:
                try:
                    return _await(future, timeout)
                except _TimedOutError:
                    self._discard(pool)
                    _kill_executor(pool)
                    raise IsolatedTimeoutError from None
                except _WorkerDiedError:
                    pass
            self._discard(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            solo = _new_executor(1)
            try:
                _check_worker_starts(solo, timeout)
                return _await(solo.submit(func, *args, **kwargs), timeout)
            except _TimedOutError:
                _kill_executor(solo)
                raise IsolatedTimeoutError from None
            except _WorkerDiedError:
                raise IsolatedCrashError from None
            finally:
                solo.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop the workers: idle ones exit, one still busy after 2 s is killed."""
        with self._lock:
            pool = self._pool
            self._pool = None
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
