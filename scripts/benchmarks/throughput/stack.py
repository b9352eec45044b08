"""Voxflow's phases: an embedded stack given every file of a workload at once, and the
memory phase (one worker given the memory files in turn)."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.benchmarks.corpus import Recording
from scripts.benchmarks.harness import VOICE_NOTE, RunningStack, progress, started_stack
from scripts.benchmarks.throughput.phases import (
    RAW_BATCHED,
    VOXFLOW,
    Phase,
    contention_text,
    make_phase,
    mib,
)
from scripts.benchmarks.throughput.processes import Contention, RssSampler, WorkerProcesses
from scripts.benchmarks.throughput.raw import run_raw

# How often the benchmark asks the database whether the jobs ended. Wall times come from the
# jobs' own timestamps, so this only bounds how late the end is noticed; polling faster takes
# CPU from the worker under test on a 2-core machine.
POLL_SECONDS = 0.5
TERMINAL = ("completed", "failed", "canceled")


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
    accepted = running.client.submit(VOICE_NOTE, {"tasks": []})
    job = running.client.wait(str(accepted["id"]), poll=POLL_SECONDS)
    if job["status"] != "completed":
        raise RuntimeError(f"warm-up job ended {job['status']}: {job.get('error')}")
    return time.perf_counter() - began


def _effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """The transcription settings a worker started with `env` reads (micro-batching ones)."""
    from transcription_worker.settings import TranscriptionSettings

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
    phase = make_phase(
        workload, mode, recordings, texts, facts["last_finished"] - began,
        WorkerProcesses.pool_peak(snapshot), sampler.anon_peak(snapshot["pool_pids"]), None,
        details,
    )  # fmt: skip
    progress.print(
        f"[dim]  {phase.audio_seconds:.0f}s of audio in {phase.wall_seconds:.1f}s: "
        f"{phase.throughput:.1f}x real time, WER {phase.wer:.3f}, worker pool peak RSS "
        f"{mib(phase.peak_rss_bytes)} MiB; {facts['passes']} transcription pass(es) for "
        f"{len(recordings)} jobs (largest {facts['largest_pass']}), modes "
        f"{facts['transcript_modes']}; {contention_text(phase)}"
    )
    return phase


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
            phase = make_phase(
                _memory_label(recording), VOXFLOW, [recording], [text],
                facts["last_finished"] - submitted[0].began, WorkerProcesses.pool_peak(snapshot),
                sampler.anon_peak(snapshot["pool_pids"]), None,
                {"worker": snapshot, "warmup_job_seconds": warmup,
                 "settings": _effective_settings(env),
                 "transcript_modes": facts["transcript_modes"]},
            )  # fmt: skip
            progress.print(
                f"[dim]  {recording.name} ({recording.duration:.0f}s): worker pool peak RSS "
                f"{mib(phase.peak_rss_bytes)} MiB (anon {mib(phase.peak_anon_bytes)}), main "
                f"{mib(snapshot['main_peak_rss_bytes'])} MiB; {phase.throughput:.1f}x real time"
            )
            phases.append(phase)
    return phases


def _memory_label(recording: Recording) -> str:
    minutes = recording.duration / 60
    return f"memory {minutes / 60:.0f} h" if minutes >= 50 else f"memory {minutes:.0f} min"
