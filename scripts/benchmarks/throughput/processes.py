"""Memory and CPU of the processes under test: sampled RSS, high-water marks, what else ran."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How often the memory sampler looks for the worker's pool processes again (listing a
# process's children scans all of /proc).
POOL_REFRESH_SECONDS = 2.0

MEMORY_FIELDS = {"VmHWM": "hwm", "VmRSS": "rss", "RssAnon": "anon", "RssFile": "file",
                 "RssShmem": "shmem"}  # fmt: skip


def memory_status(pid: int) -> dict[str, int] | None:
    """A live process's memory figures in bytes (/proc/PID/status), or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = dict(re.findall(r"^(\w+):\s+(\d+)\s+kB", status, re.MULTILINE))
    return {key: int(found[name]) * 1024 for name, key in MEMORY_FIELDS.items() if name in found}


def high_water_mark(pid: int) -> int | None:
    """A live process's peak RSS in bytes (VmHWM), or None if it is gone."""
    status = memory_status(pid)
    return status.get("hwm") if status else None


class RssSampler:
    """Samples the memory of some processes in a thread; keeps each figure's maximum."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.peaks: dict[int, dict[str, int]] = {}  # pid -> rss / anon / file / shmem peaks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids():
                status = memory_status(pid)
                if status is None:
                    continue
                peaks = self.peaks.setdefault(pid, {})
                for key, value in status.items():
                    if key != "hwm":
                        peaks[key] = max(value, peaks.get(key, 0))
            self._stop.wait(self.interval)

    def anon_peak(self, pids: list[int]) -> int | None:
        """The largest sampled anonymous RSS among `pids`."""
        values = [self.peaks[p]["anon"] for p in pids if "anon" in self.peaks.get(p, {})]
        return max(values) if values else None

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def process_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every process on the machine, by pid."""
    import psutil

    seconds = {}
    for process in psutil.process_iter(["cpu_times"]):
        times = process.info["cpu_times"]
        if times is not None:
            seconds[process.pid] = times.user + times.system
    return seconds


def steal_seconds() -> float:
    """CPU seconds the hypervisor has given to other guests (0 where not reported)."""
    import psutil

    return float(getattr(psutil.cpu_times(), "steal", 0.0))


@dataclass
class Contention:
    """What else used the CPU during a phase: other processes, and the hypervisor (steal).

    On 2 cores faster-whisper keeps both busy, so any other process (the stack's services,
    the database, this script) or a busy hypervisor slows it directly.
    """

    before: dict[int, float] = field(default_factory=process_cpu)
    steal: float = field(default_factory=steal_seconds)

    def since(self, measured: set[int]) -> dict[str, Any]:
        """CPU seconds since construction, leaving out the measured processes."""
        now = process_cpu()
        used = {pid: cpu - self.before.get(pid, 0.0) for pid, cpu in now.items()
                if pid not in measured}  # fmt: skip
        top = sorted(((cpu, pid) for pid, cpu in used.items() if cpu >= 0.5), reverse=True)
        largest = [{"pid": pid, "name": _name(pid), "cpu": round(cpu, 2)} for cpu, pid in top[:5]]
        return {
            "others": round(sum(max(cpu, 0.0) for cpu in used.values()), 2),
            "steal": round(steal_seconds() - self.steal, 2),
            "largest": largest,
        }


def _name(pid: int) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline()[:3])[:80]
    except psutil.Error:
        return "?"


@dataclass
class WorkerProcesses:
    """The transcription worker: Celery's main process and its prefork pool process(es)."""

    main: int
    _cached: list[int] = field(default_factory=list)
    _cached_at: float = float("-inf")

    def pool(self) -> list[int]:
        """The pool processes (one with concurrency 1)."""
        import psutil

        try:
            return [child.pid for child in psutil.Process(self.main).children()]
        except psutil.Error:
            return []

    def all(self) -> list[int]:
        """Main process first, then the pool."""
        return [self.main, *self.pool()]

    def sampled(self) -> list[int]:
        """`all()`, listed again at most every POOL_REFRESH_SECONDS (for the RSS sampler)."""
        now = time.monotonic()
        if now - self._cached_at >= POOL_REFRESH_SECONDS:
            self._cached, self._cached_at = self.all(), now
        return self._cached

    def cpu_seconds(self) -> float:
        """CPU time used so far by the main and pool processes and their reaped children."""
        import psutil

        total = 0.0
        for pid in self.all():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def snapshot(self, sampler: RssSampler | None = None) -> dict[str, Any]:
        """Peak RSS (high-water mark) of each process, and the sampled peaks."""
        pool = self.pool()
        return {
            "main_pid": self.main,
            "pool_pids": pool,
            "main_peak_rss_bytes": high_water_mark(self.main),
            "pool_peak_rss_bytes": [high_water_mark(pid) for pid in pool],
            "sampled_peaks_bytes": dict(sampler.peaks) if sampler else None,
        }

    @staticmethod
    def pool_peak(snapshot: dict[str, Any]) -> int | None:
        """The largest pool process's peak in a snapshot."""
        peaks = [p for p in snapshot["pool_peak_rss_bytes"] if p is not None]
        return max(peaks) if peaks else None
