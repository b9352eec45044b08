"""`python -m scripts.benchmarks.throughput`: options, the corpus, the phases in order."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from scripts.benchmarks.corpus import DEFAULT_DIR, Corpus, CorpusDirOption, CorpusSpec, build
from scripts.benchmarks.harness import RESULTS, console, loadavg
from scripts.benchmarks.throughput.phases import (
    RAW_BATCHED,
    RAW_BATCHED_AGAIN,
    RAW_MICROBATCH,
    RAW_SEQUENTIAL,
    VOXFLOW,
    VOXFLOW_MB_OFF,
    VOXFLOW_MB_ON,
    Phase,
)
from scripts.benchmarks.throughput.raw import run_raw
from scripts.benchmarks.throughput.report import Reports, print_report
from scripts.benchmarks.throughput.stack import run_memory, run_voxflow

DEFAULT_JSON = RESULTS / "throughput.json"
DEFAULT_MARKDOWN = RESULTS / "throughput.md"


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
    corpus_dir: CorpusDirOption = DEFAULT_DIR,
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
