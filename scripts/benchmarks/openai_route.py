"""OpenAI's route against the job API: the same voice notes, the same stack, one run.

    uv run python scripts/benchmarks/openai_route.py [--notes 40] [--concurrency 4,16]

One embedded stack (`voxflow run`: both APIs, one transcription worker). For each
concurrency, the same notes go through, in alternating order so drift hits both alike:

* the job API, as a client that must have the transcript does it: upload
  (`POST /v1/jobs`), poll the job until it ends, fetch the text; `concurrency` clients,
  each starting its next note when the last one is back;
* OpenAI's route, through the `openai` SDK: `audio.transcriptions.create`, which waits for
  the job and answers with the text; `concurrency` SDK callers.

Reported: notes per second, first upload to last transcript, per-note latency (p50, p95),
the ratio of the route to the job API (target: at least 0.95), and the worker passes the
notes took (fewer passes than notes: micro-batching kept working). Writes
`.voxflow/bench/openai.json`. The time to the first streamed delta is measured once
streaming exists.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import openai
import typer
from rich.table import Table

if TYPE_CHECKING:  # mypy names modules by their path from the repository root
    from scripts.benchmarks.common import (
        ROOT,
        RunningStack,
        console,
        git_revision,
        normalise,
        progress,
        started_stack,
    )  # fmt: skip
else:  # run as a script, whose own directory is on sys.path
    from common import ROOT, RunningStack, console, git_revision, normalise, progress, started_stack

NOTE = ROOT / "samples" / "voice_note.ogg"
SCRIPT = ROOT / "samples" / "voice_note.txt"
OUT = ROOT / ".voxflow" / "bench" / "openai.json"
TARGET = 0.95


def _via_job_api(running: RunningStack) -> Callable[[int], tuple[str, str, float]]:
    def one(_: int) -> tuple[str, str, float]:
        began = time.perf_counter()
        job_id = str(running.client.submit(NOTE, {})["id"])
        running.client.wait(job_id, poll=0.1)
        text = running.client.transcript(job_id)
        return job_id, text, time.perf_counter() - began

    return one


def _via_openai(running: RunningStack) -> Callable[[int], tuple[str, str, float]]:
    client = openai.OpenAI(
        api_key=running.client.api_key, base_url=f"{running.info.ingest_url}/v1", max_retries=0,
        timeout=600,
    )  # fmt: skip

    def one(_: int) -> tuple[str, str, float]:
        began = time.perf_counter()
        with NOTE.open("rb") as audio:
            answer = client.audio.transcriptions.with_raw_response.create(
                model="whisper-1", file=audio
            )
        return answer.headers["X-Voxflow-Job-Id"], answer.parse().text, time.perf_counter() - began

    return one


def _passes(running: RunningStack, job_ids: list[str]) -> int:
    """Worker passes the jobs took (a micro-batch's leader claims its mates in its name)."""
    from sqlalchemy import select

    from voxflow.jobs.models import JobEvent

    with running.sessions() as session:
        actors = session.scalars(
            select(JobEvent.actor).where(
                JobEvent.job_id.in_([uuid.UUID(j) for j in job_ids]),
                JobEvent.to_status == "transcribing",
            )
        ).all()
    return len(set(actors))


def measure(
    name: str, one: Callable[[int], tuple[str, str, float]], running: RunningStack,
    notes: int, concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    """Send `notes` notes through `one` with `concurrency` callers."""
    import jiwer

    progress.print(f"[dim]{name}: {notes} notes at concurrency {concurrency}")
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(one, range(notes)))
    wall = time.perf_counter() - started
    latencies = sorted(seconds for _, _, seconds in done)
    reference = normalise(SCRIPT.read_text())
    wer = statistics.mean(jiwer.wer(reference, normalise(text)) for _, text, _ in done)
    return {
        "route": name, "concurrency": concurrency, "notes": notes, "wall_seconds": wall,
        "notes_per_second": notes / wall, "p50_seconds": statistics.median(latencies),
        "p95_seconds": latencies[int(0.95 * (len(latencies) - 1))], "mean_wer": wer,
        "worker_passes": _passes(running, [job_id for job_id, _, _ in done]),
    }  # fmt: skip


def main(
    notes: Annotated[int, typer.Option(help="Voice notes per measurement.")] = 40,
    concurrency: Annotated[str, typer.Option(help="Comma-separated levels.")] = "4,16",
    output: Annotated[Path, typer.Option(help="Where to write the figures.")] = OUT,
) -> None:
    """Measure OpenAI's route against the job API on one stack."""
    levels = [int(c) for c in concurrency.split(",") if c]
    results: list[dict[str, Any]] = []
    with started_stack(None, purpose="openai route benchmark") as running:
        routes = {"job API": _via_job_api(running), "OpenAI route": _via_openai(running)}
        for one in routes.values():  # warm-up: models loaded, pools and caches filled
            one(0)
        for index, level in enumerate(levels):
            order = list(routes.items()) if index % 2 == 0 else list(routes.items())[::-1]
            for name, one in order:
                results.append(measure(name, one, running, notes, level))
    table = Table(title=f"{notes} voice notes: OpenAI's route against the job API")
    for column in ("route", "concurrency", "notes/s", "wall s", "p50 s", "p95 s", "WER",
                   "worker passes", "x job API"):  # fmt: skip
        table.add_column(column, justify="left" if column == "route" else "right")
    by_key = {(r["route"], r["concurrency"]): r for r in results}
    for r in results:
        base = by_key[("job API", r["concurrency"])]
        ratio = r["notes_per_second"] / base["notes_per_second"]
        r["ratio_to_job_api"] = ratio
        table.add_row(
            r["route"], str(r["concurrency"]), f"{r['notes_per_second']:.2f}",
            f"{r['wall_seconds']:.1f}", f"{r['p50_seconds']:.2f}", f"{r['p95_seconds']:.2f}",
            f"{r['mean_wer']:.3f}", str(r["worker_passes"]), f"{ratio:.2f}",
        )  # fmt: skip
    console.print(table)
    verdicts = [r["ratio_to_job_api"] >= TARGET for r in results if r["route"] == "OpenAI route"]
    console.print(
        f"OpenAI's route at {TARGET}x the job API or better: "
        + ("[green]met" if all(verdicts) else "[red]not met")
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"git": git_revision(), "results": results}, indent=2))


if __name__ == "__main__":
    typer.run(main)
