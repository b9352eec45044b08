"""Throughput of Voxflow against faster-whisper called directly, on the same files in one run.

    uv run python scripts/benchmarks/throughput.py [--quick] [--workloads long,notes]
        [--skip-memory] [--json PATH] [--markdown PATH]

Workloads (generated and cached by corpus.py: espeak-ng speech with reference texts):
long recordings (10 x ~5 min) and voice notes (100 x ~15 s); --quick uses 2 x ~1 min and
16 notes. Phases, each on every file of a workload:

1. raw sequential / raw batched: a fresh process (raw_whisper.py) loads the worker's
   `WhisperEngine` once with `whisper_mode` forced and window trimming off (faster-whisper's
   own batched pipeline, every clip padded to 30 s), transcribes a warm-up file untimed,
   then each file one at a time. Wall = the sum of the per-file transcription times.
   Voice notes also run raw micro-batched: groups of 8 files decoded and passed to the
   engine's `transcribe_batch` (the call the worker's micro-batches make), which shows how
   much the approach itself gains on this machine, apart from the platform around it.
   Raw batched runs again after Voxflow's phases ("raw batched, again"): the machine's
   speed drifts over a run, so the baseline is the mean of the two.
2. Voxflow: an embedded stack (`Stack`: one transcription worker process, concurrency 1, the
   same model) in a temporary directory gets one warm-up job, then every file of the
   workload at once (uploads from a thread pool), transcription only (`tasks=[]`). Wall =
   first upload started -> last job `finished_at` in the database (the same clock). Voice
   notes run twice, on a fresh stack each: micro-batching off (VOXFLOW_MICROBATCH_MAX_JOBS=1)
   and on (8 jobs, 30 s, no wait); long recordings run with the default settings.
3. Memory: peak RSS (the kernel's high-water mark) of a raw batched process transcribing a
   ~5-minute file and the 1-hour file (--quick: the 5-minute one only), each in its own
   process, against the transcription worker's pool process (the one running the task;
   Celery's main process is reported too) on a fresh stack given the same files in turn
   (its peak after the 1-hour job covers everything the process did, as the raw one's does).

Throughput = audio seconds / wall seconds (x real time); each Voxflow figure is also given as
a ratio to raw batched on the same workload. WER: lower-cased, punctuation removed, then
jiwer over the whole workload (all reference words at once: total edits / total reference
words, so long files weigh more); the mean of per-file WERs is in the JSON too.

Targets (from the "Transcription engine" issue): long recordings >= 0.9x raw batched; voice
notes >= 1.0x raw batched without micro-batching and >= 2x with it; Voxflow's WER no worse
than raw batched; worker peak RSS within 150 MB of raw batched (5-minute and 1-hour files;
taken as 150 MiB, the unit of the report).

Peak RSS is the kernel's high-water mark (VmHWM; ru_maxrss for the raw process). It counts
file-backed pages too (a memory-mapped file the process has read), which the kernel can drop
under pressure; "peak anon" is the largest anonymous RSS seen by sampling every 0.1 s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:  # mypy names modules by their path from the repository root
    from scripts.benchmarks.common import (
        ROOT,
        RunningStack,
        console,
        git_revision,
        loadavg,
        machine,
        normalise,
        progress,
        started_stack,
    )
    from scripts.benchmarks.corpus import DEFAULT_DIR, Corpus, CorpusSpec, Recording, build
else:  # run as a script, whose own directory is on sys.path
    from common import (
        ROOT,
        RunningStack,
        console,
        git_revision,
        loadavg,
        machine,
        normalise,
        progress,
        started_stack,
    )
    from corpus import DEFAULT_DIR, Corpus, CorpusSpec, Recording, build

HERE = Path(__file__).resolve().parent
WARMUP = ROOT / "samples" / "voice_note.ogg"
DEFAULT_JSON = ROOT / ".voxflow" / "bench" / "throughput.json"
DEFAULT_MARKDOWN = ROOT / ".voxflow" / "bench" / "throughput.md"
MIB = 1024 * 1024
# How often the benchmark asks the database whether the jobs ended. Wall times come from the
# jobs' own timestamps, so this only bounds how late the end is noticed; polling faster takes
# CPU from the worker under test on a 2-core machine.
POLL_SECONDS = 0.5
# How often the memory sampler looks for the worker's pool processes again (listing a
# process's children scans all of /proc).
POOL_REFRESH_SECONDS = 2.0
TERMINAL = ("completed", "failed", "canceled")

RAW_SEQUENTIAL = "raw sequential"
RAW_BATCHED = "raw batched"
RAW_BATCHED_AGAIN = "raw batched, again"
RAW_MICROBATCH = "raw micro-batched"
VOXFLOW = "voxflow"
VOXFLOW_MB_OFF = "voxflow, micro-batching off"
VOXFLOW_MB_ON = "voxflow, micro-batching on"

LONG_TARGET = 0.9
NOTES_OFF_TARGET = 1.0
NOTES_ON_TARGET = 2.0
RSS_MARGIN_BYTES = 150 * MIB


@dataclass
class FileResult:
    """One file of a phase: its time (raw only), reference and transcript, and WER."""

    name: str
    audio_seconds: float
    wer: float
    hypothesis: str
    wall_seconds: float | None = None


@dataclass
class Phase:
    """One mode on one workload."""

    workload: str
    mode: str
    audio_seconds: float
    wall_seconds: float
    wer: float
    mean_file_wer: float
    peak_rss_bytes: int | None  # high-water mark
    peak_anon_bytes: int | None  # sampled anonymous RSS
    reference_words: int
    files: list[FileResult]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def word_errors(self) -> float:
        """Substitutions, deletions and insertions over the workload."""
        return self.wer * self.reference_words

    @property
    def throughput(self) -> float:
        """Audio seconds per wall second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else float("nan")


def word_error_rates(references: list[str], hypotheses: list[str]) -> tuple[float, list[float]]:
    """Corpus WER (all words at once) and each pair's WER, after normalising both sides."""
    import jiwer

    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    per_file = [float(jiwer.wer(r, h)) for r, h in zip(refs, hyps, strict=True)]
    return float(jiwer.wer(refs, hyps)), per_file


def _phase(
    workload: str,
    mode: str,
    recordings: list[Recording],
    texts: list[str],
    wall_seconds: float,
    peak_rss: int | None,
    peak_anon: int | None,
    walls: list[float] | None = None,
    details: dict[str, Any] | None = None,
) -> Phase:
    wer, per_file = word_error_rates([r.text for r in recordings], texts)
    files = [
        FileResult(r.name, r.duration, w, t, walls[i] if walls else None)
        for i, (r, w, t) in enumerate(zip(recordings, per_file, texts, strict=True))
    ]
    return Phase(
        workload=workload,
        mode=mode,
        audio_seconds=sum(r.duration for r in recordings),
        wall_seconds=wall_seconds,
        wer=wer,
        mean_file_wer=sum(per_file) / len(per_file),
        peak_rss_bytes=peak_rss,
        peak_anon_bytes=peak_anon,
        reference_words=sum(len(normalise(r.text).split()) for r in recordings),
        files=files,
        details={**(details or {}), "load_average_at_end": loadavg()},
    )


# --- memory --------------------------------------------------------------------------------


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


# --- raw faster-whisper ----------------------------------------------------------------------


def run_raw(workload: str, mode: str, recordings: list[Recording]) -> Phase:
    """Transcribe the files one at a time in a fresh raw_whisper.py process."""
    label = {RAW_SEQUENTIAL: "sequential", RAW_MICROBATCH: "microbatch"}.get(mode, "batched")
    progress.print(f"[bold]{workload}: {mode}[/] ({len(recordings)} files)")
    with tempfile.TemporaryDirectory(prefix="vf-raw-") as tmp:
        out = Path(tmp) / "raw.json"
        command = [
            sys.executable, str(HERE / "raw_whisper.py"), "--mode", label, "--out", str(out),
            "--warmup", str(WARMUP), *(str(r.path) for r in recordings),
        ]  # fmt: skip
        began = time.perf_counter()
        contention = Contention()
        child = subprocess.Popen(command)
        with RssSampler(lambda: [child.pid]) as sampler:
            code = child.wait()
        elapsed = time.perf_counter() - began
        if code != 0:
            raise RuntimeError(f"raw_whisper.py --mode {label} exited with status {code}")
        result = json.loads(out.read_text())
    walls = [float(f["wall_seconds"]) for f in result["files"]]
    phase = _phase(
        workload, mode, recordings, [f["text"] for f in result["files"]], sum(walls),
        int(result["peak_rss_bytes"]), sampler.anon_peak([child.pid]), walls,
        {
            "model": result["model"],
            "device": result["device"],
            "decode_options": result["decode_options"],
            "model_load_seconds": result["load_seconds"],
            "warmup_seconds": result["warmup_seconds"],
            "process_seconds": elapsed,
            "cpu_seconds": result["cpu_seconds"],
            "sampled_peaks_bytes": sampler.peaks.get(child.pid),
            "machine_cpu_seconds": contention.since({child.pid}),
            "whisper_audio_seconds": sum(float(f["audio_seconds"]) for f in result["files"]),
        },
    )  # fmt: skip
    progress.print(
        f"[dim]  {phase.audio_seconds:.0f}s of audio in {phase.wall_seconds:.1f}s: "
        f"{phase.throughput:.1f}x real time, WER {phase.wer:.3f}, "
        f"peak RSS {_mib(phase.peak_rss_bytes)} MiB (anon {_mib(phase.peak_anon_bytes)}); "
        f"{_contention(phase)}"
    )
    return phase


# --- Voxflow end to end ---------------------------------------------------------------------


@dataclass
class Submitted:
    """One upload's job id and when it ran (wall clock, comparable with the database's)."""

    recording: Recording
    job_id: str
    began: float
    accepted: float


def _submit_all(
    running: RunningStack, recordings: list[Recording], threads: int
) -> list[Submitted]:
    def submit(recording: Recording) -> Submitted:
        began = time.time()
        accepted = running.client.submit(recording.path, {"tasks": []})
        return Submitted(recording, str(accepted["id"]), began, time.time())

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(recordings)))) as pool:
        return list(pool.map(submit, recordings))


def _wait_all(running: RunningStack, job_ids: list[str], timeout: float) -> float:
    """Poll the database until every job ended; returns when (wall clock) that was seen."""
    from sqlalchemy import select

    from voxflow.db import session_scope
    from voxflow.jobs.models import Job

    ids = [uuid.UUID(j) for j in job_ids]
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(running.sessions) as session:
            statuses = list(session.scalars(select(Job.status).where(Job.id.in_(ids))))
        if len(statuses) == len(ids) and all(s in TERMINAL for s in statuses):
            return time.time()
        if time.monotonic() > deadline:
            counts = Counter(statuses)
            raise TimeoutError(f"jobs not done after {timeout:.0f}s: {dict(counts)}")
        time.sleep(POLL_SECONDS)


def _passes(intervals: list[tuple[float, float]]) -> list[int]:
    """Sizes of groups of overlapping [claimed, transcribed] intervals, in time order.

    With one worker process at concurrency 1, jobs overlap only when transcribed together
    (micro-batching); without it every group has one job.
    """
    groups: list[int] = []
    end = float("-inf")
    for start, stop in sorted(intervals):
        if start < end and groups:
            groups[-1] += 1
            end = max(end, stop)
        else:
            groups.append(1)
            end = stop
    return groups


def _job_facts(running: RunningStack, submitted: list[Submitted]) -> dict[str, Any]:
    """Timestamps, statuses and transcript facts of the jobs, from the database."""
    from sqlalchemy import select

    from voxflow.db import session_scope
    from voxflow.jobs.models import Job, Transcript

    ids = [uuid.UUID(s.job_id) for s in submitted]
    with session_scope(running.sessions) as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
        transcripts = {
            t.job_id: t
            for t in session.scalars(select(Transcript).where(Transcript.job_id.in_(ids)))
        }
        failed = {
            str(j.id): f"{j.status} {j.error_code}: {j.error_message}"
            for j in jobs.values()
            if j.status != "completed"
        }
        finished = [j.finished_at.timestamp() for j in jobs.values() if j.finished_at]
        intervals = [
            (j.transcription_started_at.timestamp(), j.transcribed_at.timestamp())
            for j in jobs.values()
            if j.transcription_started_at and j.transcribed_at
        ]
        first_claim = min((s for s, _ in intervals), default=float("nan"))
        modes = Counter(str(t.decode_options.get("mode")) for t in transcripts.values())
        processing = sum(t.processing_seconds for t in transcripts.values())
        probed = sum(j.duration_seconds for j in jobs.values())
    groups = _passes(intervals)
    return {
        "failed": failed,
        "last_finished": max(finished) if finished else float("nan"),
        "first_claimed": first_claim,
        "transcript_modes": dict(modes),
        "whisper_seconds_in_worker": processing,
        "probed_audio_seconds": probed,
        "passes": len(groups),
        "largest_pass": max(groups, default=0),
        "jobs_in_multi_job_passes": sum(g for g in groups if g > 1),
    }


def _warm_up(running: RunningStack) -> float:
    began = time.perf_counter()
    accepted = running.client.submit(WARMUP, {"tasks": []})
    job = running.client.wait(str(accepted["id"]), poll=POLL_SECONDS)
    if job["status"] != "completed":
        raise RuntimeError(f"warm-up job ended {job['status']}: {job.get('error')}")
    return time.perf_counter() - began


def _effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """The transcription settings a worker started with `env` reads (micro-batching ones)."""
    from voxflow.settings import TranscriptionSettings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        values = TranscriptionSettings().model_dump(mode="json")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    keys = (
        "whisper_mode", "whisper_batched_min_seconds", "whisper_batch_size",
        "whisper_encode_batch_size", "whisper_trim_windows", "whisper_min_window_seconds",
        "whisper_window_margin_seconds",
    )  # fmt: skip
    chosen = {k: v for k, v in values.items() if k.startswith("microbatch_") or k in keys}
    chosen["microbatch_settings_exist"] = "microbatch_max_jobs" in values
    return chosen


def run_voxflow(
    workload: str,
    mode: str,
    recordings: list[Recording],
    env: dict[str, str],
    *,
    threads: int,
    log_dir: Path | None,
) -> Phase:
    """Start a stack, submit every file at once, wait for all, read transcripts back."""
    progress.print(f"[bold]{workload}: {mode}[/] ({len(recordings)} files at once) env {env}")
    logs = log_dir / f"{workload}-{mode}".replace(" ", "_").replace(",", "") if log_dir else None
    with started_stack(logs, env=env, purpose="throughput benchmark") as running:
        worker = WorkerProcesses(running.stack.children["transcription_worker"].pid)
        warmup = _warm_up(running)
        cpu_before = worker.cpu_seconds()
        contention = Contention()
        with RssSampler(worker.sampled) as sampler:
            submitted = _submit_all(running, recordings, threads)
            seen = _wait_all(running, [s.job_id for s in submitted], _timeout(recordings))
        cpu = worker.cpu_seconds() - cpu_before
        machine = contention.since(set(worker.all()))
        snapshot = worker.snapshot(sampler)
        facts = _job_facts(running, submitted)
        if facts["failed"]:
            raise RuntimeError(f"{len(facts['failed'])} job(s) did not complete: {facts['failed']}")
        texts = [running.client.transcript(s.job_id, "txt") for s in submitted]
        startup = running.startup_seconds
    began = min(s.began for s in submitted)
    details = {
        "env": env,
        "settings": _effective_settings(env),
        "stack_startup_seconds": startup,
        "warmup_job_seconds": warmup,
        "uploads_seconds": max(s.accepted for s in submitted) - began,
        "first_claim_after_seconds": facts["first_claimed"] - began,
        "seen_wall_seconds": seen - began,
        "upload_threads": threads,
        "worker": snapshot,
        "worker_cpu_seconds": cpu,
        "machine_cpu_seconds": machine,
        **{k: v for k, v in facts.items() if k not in ("failed", "last_finished", "first_claimed")},
    }
    phase = _phase(
        workload, mode, recordings, texts, facts["last_finished"] - began,
        WorkerProcesses.pool_peak(snapshot), sampler.anon_peak(snapshot["pool_pids"]), None,
        details,
    )  # fmt: skip
    progress.print(
        f"[dim]  {phase.audio_seconds:.0f}s of audio in {phase.wall_seconds:.1f}s: "
        f"{phase.throughput:.1f}x real time, WER {phase.wer:.3f}, worker pool peak RSS "
        f"{_mib(phase.peak_rss_bytes)} MiB; {facts['passes']} transcription pass(es) for "
        f"{len(recordings)} jobs (largest {facts['largest_pass']}), modes "
        f"{facts['transcript_modes']}; {_contention(phase)}"
    )
    return phase


def _contention(phase: Phase) -> str:
    """CPU seconds other processes and the hypervisor took during a phase."""
    machine = phase.details.get("machine_cpu_seconds") or {}
    largest = ", ".join(f"{p['name']} {p['cpu']}" for p in machine.get("largest", [])[:3])
    return (
        f"other processes {machine.get('others')} CPU s ({largest}), "
        f"stolen {machine.get('steal')} s"
    )


def _timeout(recordings: list[Recording]) -> float:
    return 600.0 + 2.0 * sum(r.duration for r in recordings)


def run_memory(recordings: list[Recording], *, log_dir: Path | None) -> list[Phase]:
    """Raw batched processes vs one worker, on each memory file in turn."""
    phases: list[Phase] = []
    for recording in recordings:
        phases.append(run_raw(_memory_label(recording), RAW_BATCHED, [recording]))
    env: dict[str, str] = {}
    progress.print("[bold]memory: voxflow worker[/] (one stack, the files in turn)")
    logs = log_dir / "memory-voxflow" if log_dir else None
    with started_stack(logs, env=env, purpose="throughput benchmark") as running:
        worker = WorkerProcesses(running.stack.children["transcription_worker"].pid)
        warmup = _warm_up(running)
        for recording in recordings:
            with RssSampler(worker.sampled) as sampler:
                submitted = _submit_all(running, [recording], 1)
                _wait_all(running, [submitted[0].job_id], _timeout([recording]))
            snapshot = worker.snapshot(sampler)
            facts = _job_facts(running, submitted)
            if facts["failed"]:
                raise RuntimeError(f"memory job did not complete: {facts['failed']}")
            text = running.client.transcript(submitted[0].job_id, "txt")
            phase = _phase(
                _memory_label(recording), VOXFLOW, [recording], [text],
                facts["last_finished"] - submitted[0].began, WorkerProcesses.pool_peak(snapshot),
                sampler.anon_peak(snapshot["pool_pids"]), None,
                {"worker": snapshot, "warmup_job_seconds": warmup,
                 "settings": _effective_settings(env),
                 "transcript_modes": facts["transcript_modes"]},
            )  # fmt: skip
            progress.print(
                f"[dim]  {recording.name} ({recording.duration:.0f}s): worker pool peak RSS "
                f"{_mib(phase.peak_rss_bytes)} MiB (anon {_mib(phase.peak_anon_bytes)}), main "
                f"{_mib(snapshot['main_peak_rss_bytes'])} MiB; {phase.throughput:.1f}x real time"
            )
            phases.append(phase)
    return phases


def _memory_label(recording: Recording) -> str:
    minutes = recording.duration / 60
    return f"memory {minutes / 60:.0f} h" if minutes >= 50 else f"memory {minutes:.0f} min"


# --- targets and reports ---------------------------------------------------------------------


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def _find(phases: list[Phase], workload: str, mode: str) -> Phase | None:
    return next((p for p in phases if p.workload == workload and p.mode == mode), None)


def baseline(phases: list[Phase], workload: str) -> float | None:
    """Raw batched throughput on a workload: the mean of its runs before and after Voxflow's.

    This machine's speed drifts by up to 10 % over a run; timing the library on both sides
    of Voxflow's phases keeps that drift out of the ratios (and the two rows show it).
    """
    runs = [p.throughput for p in phases
            if p.workload == workload and p.mode in (RAW_BATCHED, RAW_BATCHED_AGAIN)]  # fmt: skip
    return sum(runs) / len(runs) if runs else None


def evaluate(phases: list[Phase]) -> dict[int, list[dict[str, Any]]]:
    """Targets per phase (by index): what each must reach, its value and whether it did."""
    checks: dict[int, list[dict[str, Any]]] = {}
    for index, phase in enumerate(phases):
        base = _find(phases, phase.workload, RAW_BATCHED)
        raw = baseline(phases, phase.workload)
        if base is None or raw is None or phase.mode.startswith("raw"):
            continue
        found: list[dict[str, Any]] = []
        ratio = phase.throughput / raw
        minimum = {
            ("long", VOXFLOW): LONG_TARGET,
            ("notes", VOXFLOW_MB_OFF): NOTES_OFF_TARGET,
            ("notes", VOXFLOW_MB_ON): NOTES_ON_TARGET,
        }.get((phase.workload, phase.mode))
        if minimum is not None:
            found.append(
                {"kind": "throughput", "target": f"throughput >= {minimum:g}x raw batched",
                 "ratio": round(ratio, 4), "minimum": minimum, "passed": ratio >= minimum}
            )  # fmt: skip
            # Same references on both sides: compare edit counts (WER x reference words).
            extra = round(phase.word_errors - base.word_errors)
            found.append(
                {"kind": "wer", "target": "WER <= raw batched", "wer": round(phase.wer, 5),
                 "raw_batched_wer": round(base.wer, 5), "extra_word_errors": extra,
                 "reference_words": phase.reference_words, "passed": extra <= 0}
            )  # fmt: skip
        if phase.workload.startswith("memory") and phase.peak_rss_bytes and base.peak_rss_bytes:
            over = phase.peak_rss_bytes - base.peak_rss_bytes
            found.append(
                {"kind": "memory", "target": "peak RSS <= raw batched + 150 MiB",
                 "over_raw_mib": round(over / MIB, 1), "passed": over <= RSS_MARGIN_BYTES}
            )  # fmt: skip
        checks[index] = found
    return checks


def _target_text(checks: list[dict[str, Any]]) -> str:
    """Short verdicts with their values: `0.896x ≥ 0.9: FAIL, WER +2 errors: FAIL`."""
    parts = []
    for check in checks:
        verdict = "pass" if check["passed"] else "FAIL"
        if check["kind"] == "memory":
            parts.append(f"RSS {check['over_raw_mib']:+.0f} MiB ≤ +150: {verdict}")
        elif check["kind"] == "wer":
            parts.append(f"WER {check['extra_word_errors']:+d} errors: {verdict}")
        else:
            parts.append(f"{check['ratio']:.3f}x ≥ {check['minimum']:g}: {verdict}")
    return ", ".join(parts)


COLUMNS = ("Workload", "Mode", "Audio s", "Wall s", "Throughput", "vs raw batched", "WER",
           "Peak RSS MiB", "Peak anon MiB", "Target")  # fmt: skip


def table_rows(phases: list[Phase], checks: dict[int, list[dict[str, Any]]]) -> list[list[str]]:
    """The report's rows, as text."""
    rows = []
    for index, phase in enumerate(phases):
        raw = baseline(phases, phase.workload)
        ratio = f"{phase.throughput / raw:.2f}x" if raw else "-"
        rows.append(
            [
                phase.workload,
                phase.mode,
                f"{phase.audio_seconds:.0f}",
                f"{phase.wall_seconds:.1f}",
                f"{phase.throughput:.1f}x",
                ratio,
                f"{phase.wer:.3f}",
                _mib(phase.peak_rss_bytes),
                _mib(phase.peak_anon_bytes),
                _target_text(checks.get(index, [])),
            ]
        )
    return rows


LEGEND = (
    "Throughput = audio s / wall s (x real time). raw: one process, model loaded once, "
    "files one at a time (wall = sum of transcription times); raw batched runs before and "
    'after Voxflow\'s phases, and "vs raw batched" is against the mean of the two. voxflow: '
    "all files uploaded at once, wall = first upload -> last job finished. WER: normalised, "
    'over all words of the workload; target "WER +n errors" counts word errors beyond raw '
    "batched's on the same references. Peak RSS: kernel high-water mark of the raw process "
    "/ the worker's pool process; peak anon: largest anonymous RSS sampled every 0.1 s "
    "(file-backed pages, such as a memory-mapped audio file, left out)."
)


def markdown(rows: list[list[str]], header: str) -> str:
    """A markdown table of the rows, under a one-line header and over the legend."""
    lines = [
        header,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---"] * len(COLUMNS)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", LEGEND]
    return "\n".join(lines) + "\n"


def print_report(rows: list[list[str]], phases: list[Phase]) -> None:
    """The rich table and notes on what the figures mean."""
    table = Table(title="Throughput: Voxflow vs faster-whisper called directly")
    for column in COLUMNS:
        table.add_column(
            column, justify="left" if column in ("Workload", "Mode", "Target") else "right"
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for phase in phases:
        if phase.mode == VOXFLOW_MB_ON:
            engaged = phase.details["jobs_in_multi_job_passes"] > 0
            if not phase.details["settings"]["microbatch_settings_exist"]:
                console.print("[yellow]micro-batching settings do not exist: 'on' ran like 'off'")
            elif not engaged:
                console.print(
                    "[yellow]micro-batching was asked for but no jobs were transcribed together "
                    f"({phase.details['passes']} passes for {len(phase.files)} jobs)"
                )
            else:
                console.print(
                    f"micro-batching: {phase.details['passes']} passes for {len(phase.files)} "
                    f"jobs (largest {phase.details['largest_pass']})"
                )
    console.print(f"[dim]{LEGEND}")


def _parse_workloads(value: str) -> list[str]:
    chosen = [w.strip() for w in value.split(",") if w.strip()]
    unknown = set(chosen) - {"long", "notes"}
    if unknown or not chosen:
        raise typer.BadParameter("a comma-separated list of: long, notes", param_hint="--workloads")
    return chosen


def measure(
    corpus: Corpus,
    workloads: list[str],
    *,
    threads: int,
    log_dir: Path | None,
    microbatch: dict[str, str],
    on_phase: Callable[[list[Phase]], object],
) -> list[Phase]:
    """Every phase, in order: per workload raw sequential, raw batched, Voxflow; then memory.

    `on_phase` gets the phases so far after each one (the reports are rewritten each time,
    so a failure late in a long run keeps what was measured).
    """
    phases: list[Phase] = []

    def done(*new: Phase) -> None:
        phases.extend(new)
        on_phase(phases)

    if "long" in workloads:
        done(run_raw("long", RAW_SEQUENTIAL, corpus.long))
        done(run_raw("long", RAW_BATCHED, corpus.long))
        done(run_voxflow("long", VOXFLOW, corpus.long, {}, threads=threads, log_dir=log_dir))
        done(run_raw("long", RAW_BATCHED_AGAIN, corpus.long))
    if "notes" in workloads:
        done(run_raw("notes", RAW_SEQUENTIAL, corpus.notes))
        done(run_raw("notes", RAW_BATCHED, corpus.notes))
        done(run_raw("notes", RAW_MICROBATCH, corpus.notes))
        off = {"VOXFLOW_MICROBATCH_MAX_JOBS": "1"}
        done(run_voxflow("notes", VOXFLOW_MB_OFF, corpus.notes, off, threads=threads,
                         log_dir=log_dir))  # fmt: skip
        done(run_voxflow("notes", VOXFLOW_MB_ON, corpus.notes, microbatch, threads=threads,
                         log_dir=log_dir))  # fmt: skip
        done(run_raw("notes", RAW_BATCHED_AGAIN, corpus.notes))
    if corpus.memory:
        done(*run_memory(corpus.memory, log_dir=log_dir))
    return phases


@dataclass
class Reports:
    """Writes the JSON and markdown reports (after every phase, and at the end)."""

    json_path: Path
    markdown_path: Path
    spec: CorpusSpec
    corpus_dir: Path
    corpus_seconds: float
    started: float = field(default_factory=time.perf_counter)
    load_before: list[float] = field(default_factory=loadavg)
    machine: dict[str, Any] = field(default_factory=machine)
    git: dict[str, Any] = field(default_factory=git_revision)

    def write(self, phases: list[Phase], *, complete: bool) -> list[list[str]]:
        """Write both files; returns the table rows."""
        load_after = loadavg()
        elapsed = time.perf_counter() - self.started
        checks = evaluate(phases)
        rows = table_rows(phases, checks)
        today = datetime.now(UTC).date().isoformat()
        command = " ".join(["uv run python scripts/benchmarks/throughput.py", *sys.argv[1:]])
        header = (
            f"`{command}` on {today}, {os.cpu_count()} CPU cores, tiny.en on CPU (int8); "
            f"load average {self.load_before[0]:.1f} before, {load_after[0]:.1f} after; the "
            f"phases took {elapsed / 60:.0f} min."
        )
        if not complete:
            header += " **Incomplete: the run stopped early.**"
        document = {
            "complete": complete,
            "command": sys.argv,
            "date": today,
            "machine": self.machine,
            "git": self.git,
            "corpus": dataclasses.asdict(self.spec) | {"dir": str(self.corpus_dir)},
            "wer_method": "normalised (lower case, no punctuation); jiwer.wer over all "
            "reference words of the workload at once (mean of per-file WERs: mean_file_wer)",
            "load_average": {"before": self.load_before, "after": load_after},
            "elapsed_seconds": elapsed,  # the phases, without generating the corpus
            "corpus_seconds": self.corpus_seconds,
            "phases": [
                dataclasses.asdict(p) | {"throughput": p.throughput, "targets": checks.get(i, [])}
                for i, p in enumerate(phases)
            ],
            "all_targets_met": all(c["passed"] for cs in checks.values() for c in cs),
        }
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(document, indent=2) + "\n")
        self.markdown_path.parent.mkdir(parents=True, exist_ok=True)
        self.markdown_path.write_text(markdown(rows, header))
        return rows


def main(
    quick: Annotated[
        bool, typer.Option(help="2 long of ~1 min, 16 notes, a 5-minute memory file.")
    ] = False,
    workloads: Annotated[str, typer.Option(help="Comma-separated: long, notes.")] = "long,notes",
    skip_memory: Annotated[bool, typer.Option(help="Leave out the memory phase.")] = False,
    json_path: Annotated[Path, typer.Option("--json", help="JSON results.")] = DEFAULT_JSON,
    markdown_path: Annotated[
        Path, typer.Option("--markdown", help="Markdown table.")
    ] = DEFAULT_MARKDOWN,
    corpus_dir: Annotated[Path, typer.Option(help="Corpus cache.")] = DEFAULT_DIR,
    long: Annotated[int | None, typer.Option(min=1, help="Long recordings (10; 2 quick).")] = None,
    notes: Annotated[int | None, typer.Option(min=1, help="Voice notes (100; 16 quick).")] = None,
    memory_seconds: Annotated[
        float | None, typer.Option(help="Long memory file length (3600; quick: 5-min only).")
    ] = None,
    upload_threads: Annotated[int, typer.Option(min=1, help="Concurrent uploads.")] = 8,
    microbatch_jobs: Annotated[int, typer.Option(min=2, help="'on': MICROBATCH_MAX_JOBS.")] = 8,
    microbatch_max_seconds: Annotated[float, typer.Option(help="'on': MAX_SECONDS.")] = 30.0,
    microbatch_wait_seconds: Annotated[float, typer.Option(help="'on': WAIT_SECONDS.")] = 0.0,
    logs: Annotated[
        Path | None, typer.Option(help="Keep the stacks' service logs here (default: discarded).")
    ] = None,
) -> None:
    """Measure Voxflow's throughput, WER and worker memory against raw faster-whisper."""
    started = time.perf_counter()
    chosen = _parse_workloads(workloads)
    spec = CorpusSpec.quick() if quick else CorpusSpec()
    spec = dataclasses.replace(
        spec,
        long_count=long or spec.long_count,
        note_count=notes or spec.note_count,
        memory_seconds=memory_seconds or spec.memory_seconds,
    )
    corpus = build(spec, corpus_dir.resolve(), workers=os.cpu_count() or 1, memory=not skip_memory)
    corpus_seconds = time.perf_counter() - started
    corpus = Corpus(
        long=corpus.long if "long" in chosen else [],
        notes=corpus.notes if "notes" in chosen else [],
        memory=corpus.memory,
    )
    microbatch = {
        "VOXFLOW_MICROBATCH_MAX_JOBS": str(microbatch_jobs),
        "VOXFLOW_MICROBATCH_MAX_SECONDS": f"{microbatch_max_seconds:g}",
        "VOXFLOW_MICROBATCH_WAIT_SECONDS": f"{microbatch_wait_seconds:g}",
    }
    reports = Reports(json_path, markdown_path, spec, corpus_dir.resolve(), corpus_seconds)
    phases = measure(
        corpus, chosen, threads=upload_threads, log_dir=logs.resolve() if logs else None,
        microbatch=microbatch, on_phase=lambda so_far: reports.write(so_far, complete=False),
    )  # fmt: skip
    rows = reports.write(phases, complete=True)
    console.print()
    print_report(rows, phases)
    console.print(
        f"load average (1/5/15 min) before {reports.load_before}, after {loadavg()}; phases "
        f"took {time.perf_counter() - reports.started:.0f}s (+{corpus_seconds:.0f}s corpus)"
    )
    console.print(f"wrote {json_path} and {markdown_path}")


if __name__ == "__main__":
    typer.run(main)
