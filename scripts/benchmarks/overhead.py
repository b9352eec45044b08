"""Per-job overhead of the Voxflow pipeline compared with faster-whisper called directly.

    uv run python -m scripts.benchmarks.overhead [--runs 5] [--json out.json] [--samples a.ogg ...]

One run measures both sides, so their ratio means something on a small, noisy machine:

1. Baseline: the worker's own `WhisperEngine` (default `TranscriptionSettings`, bundled tiny.en)
   transcribes each sample `--runs` times in this process, after one warm-up.
2. Pipeline: an embedded stack (`Stack`) in a temporary data directory on free ports gets one
   warm-up job, then the same samples `--runs` times, one job at a time, transcription only
   (`tasks=[]`). A job's end-to-end time runs from the ingest API's answer (upload accepted)
   to the status poll (every 0.05 s; --poll) that sees it completed. The job's row and
   transcript in PostgreSQL split that time into queue wait, transcription inside the worker
   (`processing_seconds`) and the rest.
3. One more job asks for summary, diary and action_items (local provider): the LLM stage.

By default raw runs and jobs alternate (raw, job, raw, job...; the stack is up and idle during
raw runs), so load from elsewhere on the machine hits both sides alike; --no-interleave does
every raw run before starting the stack.

Overhead = pipeline end-to-end median - raw faster-whisper median. Real-time factor (RTF) =
seconds of processing per second of audio (lower is faster).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from scripts.benchmarks.harness import (
    SAMPLES,
    VOICE_NOTE,
    console,
    loadavg,
    machine,
    new_table,
    no_progress,
    progress,
    started_stack,
    write_json,
)

DEFAULT_SAMPLES = [VOICE_NOTE, SAMPLES / "meeting.ogg"]
LLM_TASKS = ["summary", "diary", "action_items"]
POLL_SECONDS = 0.05


@dataclass
class RawRun:
    """One direct faster-whisper transcription."""

    sample: str
    seconds: float
    audio_seconds: float


@dataclass
class JobRun:
    """One job through the pipeline, timed by the client and by the database."""

    sample: str
    tasks: list[str]
    audio_seconds: float
    upload_seconds: float  # POST /v1/jobs until the ingest API answered
    e2e_seconds: float  # ingest API answered until a poll saw `completed`
    queue_seconds: float  # job row committed until a transcription worker claimed it
    transcription_stage_seconds: float  # claimed until the transcript was committed
    in_worker_seconds: float  # Transcript.processing_seconds (faster-whisper in the worker)
    seen_lag_seconds: float  # job finished in the database until the client saw it
    llm_queue_seconds: float | None = None  # transcribed until an LLM worker claimed it
    llm_stage_seconds: float | None = None  # claimed until the notes were committed
    llm_provider_seconds: float | None = None  # sum of the results' provider latency

    @property
    def worker_other_seconds(self) -> float:
        """Transcription stage minus faster-whisper: storage copy and database writes."""
        return self.transcription_stage_seconds - self.in_worker_seconds


@dataclass
class Measurements:
    """Everything one benchmark run measured."""

    runs: int
    samples: list[Path]
    model_load_seconds: float = 0.0
    raw: list[RawRun] = field(default_factory=list)
    load_average: dict[str, list[float]] = field(default_factory=dict)  # 1, 5, 15 minutes
    startup_seconds: float = 0.0
    warmup_job: JobRun | None = None
    jobs: list[JobRun] = field(default_factory=list)
    llm_job: JobRun | None = None
    poll_seconds: float = POLL_SECONDS
    log_dir: Path | None = None  # where the stack's services write (default: a temporary dir)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Baseline:
    """faster-whisper called directly, the way the transcription worker's engine calls it."""

    def __init__(self) -> None:
        from transcription_worker.engine import WhisperEngine
        from transcription_worker.settings import TranscriptionWorkerSettings

        self.settings = TranscriptionWorkerSettings()
        self.engine = WhisperEngine(self.settings, self.settings)
        started = time.perf_counter()
        self.engine.preload()
        self.load_seconds = time.perf_counter() - started

    def run(self, path: Path) -> RawRun:
        """Transcribe `path` once and time it."""
        from ingest_api.audio_probe import probe_file
        from transcription_worker.options import DecodeOptions

        # The same decoding options the worker resolves for a job with no overrides.
        duration = probe_file(path, max_seconds=float("inf")).duration_seconds
        options = DecodeOptions.resolve(self.settings, {}, duration)
        began = time.perf_counter()
        out = self.engine.transcribe(
            path, model_name=self.settings.whisper_model, options=options, on_segment=no_progress
        )
        return RawRun(path.name, time.perf_counter() - began, out.duration_seconds)


@dataclass
class Pipeline:
    """Jobs submitted to a running stack, one at a time."""

    client: Any  # VoxflowClient
    sessions: Any  # sessionmaker on the stack's database
    poll_seconds: float = POLL_SECONDS

    def run(self, path: Path, tasks: list[str]) -> JobRun:
        """Submit `path`, wait for it to complete, and read its timings back."""
        from voxflow.db import session_scope
        from voxflow.jobs import repository

        began = time.perf_counter()
        accepted = self.client.submit(path, {"tasks": tasks})
        accepted_at = time.perf_counter()
        job = self.client.wait(str(accepted["id"]), poll=self.poll_seconds)
        seen_at = time.perf_counter()
        seen_wall = time.time()  # the same clock as PostgreSQL's now() on this machine
        if job["status"] != "completed":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        job_id = uuid.UUID(str(accepted["id"]))
        with session_scope(self.sessions) as session:
            row = repository.get_job(session, job_id)
            transcript = repository.get_transcript(session, job_id)
            results = repository.list_llm_results(session, job_id)
            if row is None or transcript is None:
                raise RuntimeError(f"job {job_id} has no row or transcript")
            assert row.transcription_started_at is not None
            assert row.transcribed_at is not None
            assert row.finished_at is not None
            created = row.created_at.timestamp()
            started = row.transcription_started_at.timestamp()
            transcribed = row.transcribed_at.timestamp()
            finished = row.finished_at.timestamp()
            run = JobRun(
                sample=path.name,
                tasks=tasks,
                audio_seconds=float(accepted["duration_seconds"]),
                upload_seconds=accepted_at - began,
                e2e_seconds=seen_at - accepted_at,
                queue_seconds=started - created,
                transcription_stage_seconds=transcribed - started,
                in_worker_seconds=transcript.processing_seconds,
                seen_lag_seconds=seen_wall - finished,
            )
            if tasks and row.generation_started_at is not None:
                generation = row.generation_started_at.timestamp()
                run.llm_queue_seconds = generation - transcribed
                run.llm_stage_seconds = finished - generation
                run.llm_provider_seconds = sum(r.latency_ms for r in results) / 1000.0
        return run


@contextmanager
def running_stack(
    log_dir: Path | None, poll_seconds: float = POLL_SECONDS
) -> Iterator[tuple[Pipeline, float]]:
    """An embedded stack in a temporary data directory on free ports, and its start-up time."""
    with started_stack(log_dir, purpose="overhead benchmark") as running:
        yield Pipeline(running.client, running.sessions, poll_seconds), running.startup_seconds


def measure(result: Measurements, *, interleave: bool) -> None:
    """Run both sides: interleaved (raw, job, raw, job...) or all raw runs first."""
    first = result.samples[0]
    baseline = Baseline()
    result.model_load_seconds = baseline.load_seconds
    progress.print(f"[dim]baseline: warm-up on {first.name}")
    baseline.run(first)
    paired = baseline if interleave else None
    if not interleave:
        for run in range(result.runs):
            for path in result.samples:  # samples alternate, so drift hits each alike
                raw = baseline.run(path)
                result.raw.append(raw)
                progress.print(f"[dim]raw {run + 1}/{result.runs} {path.name}: {raw.seconds:.3f}s")
        del baseline  # free the model's memory and threads before the stack starts
        gc.collect()
    with running_stack(result.log_dir, result.poll_seconds) as (pipeline, startup):
        result.startup_seconds = startup
        progress.print(f"[dim]pipeline: warm-up job on {first.name} (worker loads its model)")
        result.warmup_job = pipeline.run(first, [])
        for run in range(result.runs):
            for path in result.samples:
                note = ""
                if paired is not None:
                    raw = paired.run(path)
                    result.raw.append(raw)
                    note = f"raw {raw.seconds:.3f}s, "
                job = pipeline.run(path, [])
                result.jobs.append(job)
                progress.print(
                    f"[dim]run {run + 1}/{result.runs} {path.name}: {note}"
                    f"e2e {job.e2e_seconds:.3f}s, in worker {job.in_worker_seconds:.3f}s"
                )
        progress.print(f"[dim]pipeline: one job with {', '.join(LLM_TASKS)}")
        result.llm_job = pipeline.run(first, LLM_TASKS)


def summarise(result: Measurements) -> dict[str, Any]:
    """Per-sample medians and derived figures (what the table and the JSON report show)."""
    rows: list[dict[str, Any]] = []
    for path in result.samples:
        name = path.name
        raws = [r for r in result.raw if r.sample == name]
        jobs = [j for j in result.jobs if j.sample == name]
        raw = _median([r.seconds for r in raws])
        e2e = _median([j.e2e_seconds for j in jobs])
        audio = raws[0].audio_seconds
        rows.append(
            {
                "sample": name,
                "audio_seconds": audio,
                "raw_median_seconds": raw,
                "upload_median_seconds": _median([j.upload_seconds for j in jobs]),
                "e2e_median_seconds": e2e,
                "in_worker_median_seconds": _median([j.in_worker_seconds for j in jobs]),
                "overhead_seconds": e2e - raw,
                "overhead_ratio": e2e / raw,
                "rtf_raw": raw / audio,
                "rtf_e2e": e2e / audio,
                "raw_min_seconds": min(r.seconds for r in raws),
                "e2e_min_seconds": min(j.e2e_seconds for j in jobs),
                # Run i of each side, taken back to back when interleaved.
                "paired_overhead_median_seconds": _median(
                    [j.e2e_seconds - r.seconds for r, j in zip(raws, jobs, strict=True)]
                ),
                "paired_ratio_median": _median(
                    [j.e2e_seconds / r.seconds for r, j in zip(raws, jobs, strict=True)]
                ),
                # Everything but faster-whisper, per job: insensitive to whisper's own noise.
                "non_whisper_median_seconds": _median(
                    [j.e2e_seconds - j.in_worker_seconds for j in jobs]
                ),
                "breakdown_median_seconds": {
                    "queue": _median([j.queue_seconds for j in jobs]),
                    "transcription_in_worker": _median([j.in_worker_seconds for j in jobs]),
                    "worker_other": _median([j.worker_other_seconds for j in jobs]),
                    "finished_to_seen": _median([j.seen_lag_seconds for j in jobs]),
                },
            }
        )
    summary: dict[str, Any] = {"samples": rows}
    if result.llm_job is not None:
        llm = result.llm_job
        plain = next(r for r in rows if r["sample"] == llm.sample)
        summary["llm_job"] = {
            "sample": llm.sample,
            "tasks": llm.tasks,
            "e2e_seconds": llm.e2e_seconds,
            "in_worker_seconds": llm.in_worker_seconds,
            "transcription_only_e2e_median_seconds": plain["e2e_median_seconds"],
            "llm_overhead_seconds": llm.e2e_seconds - plain["e2e_median_seconds"],
            # The same, with each side's own transcription time taken out first.
            "llm_overhead_non_whisper_seconds": (llm.e2e_seconds - llm.in_worker_seconds)
            - plain["non_whisper_median_seconds"],
            "llm_queue_seconds": llm.llm_queue_seconds,
            "llm_stage_seconds": llm.llm_stage_seconds,
            "llm_provider_seconds": llm.llm_provider_seconds,
        }
    return summary


def report(result: Measurements, summary: dict[str, Any], *, interleave: bool) -> None:
    """Print the tables."""
    order = "interleaved" if interleave else "raw runs first"
    table = new_table(
        f"Per-job overhead, tasks=[] (medians of {result.runs} runs, {order})",
        ("sample", "audio s", "raw s", "upload s", "e2e s", "in-worker s", "overhead s",
         "e2e/raw", "RTF raw", "RTF e2e"),
        left=("sample",),
    )  # fmt: skip
    for row in summary["samples"]:
        table.add_row(
            row["sample"],
            f"{row['audio_seconds']:.1f}",
            f"{row['raw_median_seconds']:.3f}",
            f"{row['upload_median_seconds']:.3f}",
            f"{row['e2e_median_seconds']:.3f}",
            f"{row['in_worker_median_seconds']:.3f}",
            f"{row['overhead_seconds']:+.3f}",
            f"{row['overhead_ratio']:.2f}x",
            f"{row['rtf_raw']:.3f}",
            f"{row['rtf_e2e']:.3f}",
        )
    console.print(table)

    parts = new_table(
        "Where the end-to-end time goes (medians, seconds)",
        ("sample", "queue → claim", "whisper in worker", "worker other", "done → seen",
         "e2e - whisper", "paired e2e-raw", "paired e2e/raw", "min raw", "min e2e"),
        left=("sample",),
    )  # fmt: skip
    for row in summary["samples"]:
        b = row["breakdown_median_seconds"]
        parts.add_row(
            row["sample"],
            f"{b['queue']:.3f}",
            f"{b['transcription_in_worker']:.3f}",
            f"{b['worker_other']:.3f}",
            f"{b['finished_to_seen']:.3f}",
            f"{row['non_whisper_median_seconds']:.3f}",
            f"{row['paired_overhead_median_seconds']:+.3f}",
            f"{row['paired_ratio_median']:.2f}x",
            f"{row['raw_min_seconds']:.3f}",
            f"{row['e2e_min_seconds']:.3f}",
        )
    console.print(parts)

    console.print(
        f"stack start-up (embedded PostgreSQL + Redis, migrations, APIs ready): "
        f"{result.startup_seconds:.2f}s; model load in this process: "
        f"{result.model_load_seconds:.2f}s"
    )
    if result.warmup_job is not None:
        console.print(
            f"warm-up job ({result.warmup_job.sample}): e2e {result.warmup_job.e2e_seconds:.3f}s"
        )
    llm = summary.get("llm_job")
    if llm is not None:
        console.print(
            f"LLM job ({llm['sample']}; {', '.join(llm['tasks'])}; local provider): e2e "
            f"{llm['e2e_seconds']:.3f}s (whisper in worker {llm['in_worker_seconds']:.3f}s) vs "
            f"{llm['transcription_only_e2e_median_seconds']:.3f}s without tasks "
            f"({llm['llm_overhead_seconds']:+.3f}s; "
            f"{llm['llm_overhead_non_whisper_seconds']:+.3f}s leaving whisper out); "
            f"LLM queue {llm['llm_queue_seconds']:.3f}s, "
            f"LLM stage {llm['llm_stage_seconds']:.3f}s "
            f"(provider {llm['llm_provider_seconds']:.3f}s)"
        )
    console.print(
        f"load average (1/5/15 min) before {result.load_average['before']}, "
        f"after {result.load_average['after']} on {os.cpu_count()} CPUs"
    )
    console.print(
        f"[dim]e2e: ingest API answered → a status poll (every {result.poll_seconds} s) saw "
        "`completed`. "
        "overhead = e2e - raw. RTF = processing s / audio s. queue → claim, worker other "
        "(stage minus faster-whisper) and done → seen come from the job's database timestamps."
    )


def main(
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per sample and side.")] = 5,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
    ] = None,
    samples: Annotated[
        list[Path] | None,
        typer.Option(
            "--samples", exists=True, dir_okay=False, help="Recordings (repeat the option)."
        ),
    ] = None,
    interleave: Annotated[
        bool,
        typer.Option(
            help="Alternate raw transcriptions and jobs (stack up and idle during raw runs), "
            "so machine load drifts hit both sides; --no-interleave runs all raw ones first."
        ),
    ] = True,
    poll: Annotated[
        float,
        typer.Option(min=0.01, help="Seconds between two status polls while a job runs."),
    ] = POLL_SECONDS,
    logs: Annotated[
        Path | None,
        typer.Option(help="Keep the services' logs in this directory (default: discarded)."),
    ] = None,
) -> None:
    """Measure the platform's per-job overhead against faster-whisper called directly."""
    chosen = [p.resolve() for p in samples] if samples else DEFAULT_SAMPLES
    if len({p.name for p in chosen}) != len(chosen):
        raise typer.BadParameter("samples must have distinct file names", param_hint="--samples")
    result = Measurements(
        runs=runs, samples=chosen, poll_seconds=poll, log_dir=logs.resolve() if logs else None
    )
    result.load_average["before"] = loadavg()
    measure(result, interleave=interleave)
    result.load_average["after"] = loadavg()
    summary = summarise(result)
    console.print()
    report(result, summary, interleave=interleave)
    if json_path is not None:
        document = {
            "command": sys.argv,
            "machine": machine(),
            "runs": runs,
            "interleaved": interleave,
            "poll_seconds": poll,
            "load_average": result.load_average,
            "stack_startup_seconds": result.startup_seconds,
            "model_load_seconds": result.model_load_seconds,
            **summary,
            "warmup_job": dataclasses.asdict(result.warmup_job) if result.warmup_job else None,
            "raw_runs": [dataclasses.asdict(r) for r in result.raw],
            "jobs": [dataclasses.asdict(j) for j in result.jobs],
            "llm_job_run": dataclasses.asdict(result.llm_job) if result.llm_job else None,
        }
        write_json(json_path, document)
        console.print(f"wrote {json_path}")


if __name__ == "__main__":
    typer.run(main)
