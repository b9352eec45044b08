"""OpenAI's route against the job API: the same voice notes, the same stack, one run.

    uv run python -m scripts.benchmarks.openai_route [--notes 40] [--concurrency 4,16]

One embedded stack (`voxflow run`: both APIs, one transcription worker). For each
concurrency, the same notes go through, in alternating order so drift hits both alike:

* the job API, as a client that must have the transcript does it: upload
  (`POST /v1/jobs`), poll the job until it ends, fetch the text; `concurrency` clients,
  each starting its next note when the last one is back;
* OpenAI's route, through the `openai` SDK: `audio.transcriptions.create`, which waits for
  the job and answers with the text; `concurrency` SDK callers.

Reported: notes per second, first upload to last transcript, per-note latency (p50, p95),
the ratio of the route to the job API (target: at least 0.95), and the worker passes the
notes took (fewer passes than notes: micro-batching kept working).

Then streaming: `--long` recordings of about 5 minutes (corpus.py), each sent once with
`stream=true` and once without, alternating which goes first. Reported per recording: when
the first `transcript.text.delta` came, when `transcript.text.done` came, and when the plain
request answered, all from the start of the request; the first delta's share of the plain
answer's time (target: at most 25%), and what streaming cost (done over plain). Writes
`.voxflow/bench/openai.json`.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any

import openai
import typer

from scripts.benchmarks.corpus import Recording, five_minute_recordings
from scripts.benchmarks.harness import (
    RESULTS,
    SAMPLES,
    VOICE_NOTE,
    FiguresPath,
    RunningStack,
    console,
    git_revision,
    int_list,
    new_table,
    normalise,
    percentile,
    progress,
    started_stack,
    write_json,
)

if TYPE_CHECKING:
    from rich.table import Table

SCRIPT = SAMPLES / "voice_note.txt"
OUT = RESULTS / "openai.json"
TARGET = 0.95
FIRST_DELTA_TARGET = 0.25  # of the plain request's time


def _via_job_api(running: RunningStack) -> Callable[[int], tuple[str, str, float]]:
    def one(_: int) -> tuple[str, str, float]:
        began = time.perf_counter()
        job_id = str(running.client.submit(VOICE_NOTE, {})["id"])
        running.client.wait(job_id, poll=0.1)
        text = running.client.transcript(job_id)
        return job_id, text, time.perf_counter() - began

    return one


def _via_openai(running: RunningStack) -> Callable[[int], tuple[str, str, float]]:
    client = _sdk(running)

    def one(_: int) -> tuple[str, str, float]:
        began = time.perf_counter()
        with VOICE_NOTE.open("rb") as audio:
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
    latencies = [seconds for _, _, seconds in done]
    reference = normalise(SCRIPT.read_text())
    wer = statistics.mean(jiwer.wer(reference, normalise(text)) for _, text, _ in done)
    return {
        "route": name, "concurrency": concurrency, "notes": notes, "wall_seconds": wall,
        "notes_per_second": notes / wall, "p50_seconds": statistics.median(latencies),
        "p95_seconds": percentile(latencies, 0.95), "mean_wer": wer,
        "worker_passes": _passes(running, [job_id for job_id, _, _ in done]),
    }  # fmt: skip


def _sdk(running: RunningStack) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=running.client.api_key, base_url=f"{running.info.ingest_url}/v1", max_retries=0,
        timeout=600,
    )  # fmt: skip


def _streamed(client: openai.OpenAI, running: RunningStack, recording: Recording) -> dict[str, Any]:
    """One `stream=true` request: seconds to the first delta and to `done`, the text, and
    when the worker started and finished transcribing (from the job's own times)."""
    from datetime import datetime

    began = time.perf_counter()
    first = done = None
    text = ""
    with recording.path.open("rb") as audio:
        answer = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=audio, stream=True
        )
        accepted = time.perf_counter() - began  # the upload is stored and queued
        for event in answer.parse():
            if event.type == "transcript.text.delta" and first is None:
                first = time.perf_counter() - began
            elif event.type == "transcript.text.done":
                done, text = time.perf_counter() - began, event.text
    if first is None or done is None:
        raise RuntimeError(f"{recording.name}: the stream ended without a delta or without done")
    job = running.client.job(answer.headers["X-Voxflow-Job-Id"])
    created = datetime.fromisoformat(job["created_at"])

    def since_created(field: str) -> float:
        return (datetime.fromisoformat(job[field]) - created).total_seconds()

    return {
        "first_delta_seconds": first, "done_seconds": done, "text": text,
        "accepted_seconds": accepted,
        "worker_started_seconds": since_created("transcription_started_at"),
        "transcribed_seconds": since_created("transcribed_at"),
    }  # fmt: skip


def _plain(client: openai.OpenAI, recording: Recording) -> dict[str, Any]:
    began = time.perf_counter()
    with recording.path.open("rb") as audio:
        text = client.audio.transcriptions.create(model="whisper-1", file=audio).text
    return {"answer_seconds": time.perf_counter() - began, "text": text}


def measure_streaming(running: RunningStack, recordings: list[Recording]) -> list[dict[str, Any]]:
    """Each recording streamed and plain, alternating which goes first."""
    import jiwer

    client = _sdk(running)
    rows = []
    for index, recording in enumerate(recordings):
        progress.print(f"[dim]streaming: {recording.name} ({recording.duration:.0f} s)")
        if index % 2 == 0:
            streamed, plain = _streamed(client, running, recording), _plain(client, recording)
        else:
            plain, streamed = _plain(client, recording), _streamed(client, running, recording)
        rows.append({
            "recording": recording.name, "audio_seconds": recording.duration,
            "first_delta_seconds": streamed["first_delta_seconds"],
            "done_seconds": streamed["done_seconds"], "plain_seconds": plain["answer_seconds"],
            "first_delta_of_done": streamed["first_delta_seconds"] / streamed["done_seconds"],
            "accepted_seconds": streamed["accepted_seconds"],
            "worker_started_seconds": streamed["worker_started_seconds"],
            "transcribed_seconds": streamed["transcribed_seconds"],
            "first_delta_share": streamed["first_delta_seconds"] / plain["answer_seconds"],
            "stream_cost": streamed["done_seconds"] / plain["answer_seconds"],
            "wer": jiwer.wer(normalise(recording.text), normalise(streamed["text"])),
            "same_text": streamed["text"] == plain["text"],
        })  # fmt: skip
    return rows


def _streaming_table(rows: list[dict[str, Any]]) -> Table:
    table = new_table(
        "stream=true on 5-minute recordings (seconds from the request's start)",
        ("recording", "accepted", "worker start", "first delta", "transcribed", "done",
         "plain answer", "first delta share", "of own done", "stream cost", "WER", "same text"),
        left=("recording",),
    )  # fmt: skip
    for r in rows:
        table.add_row(
            r["recording"], f"{r['accepted_seconds']:.1f}", f"{r['worker_started_seconds']:.1f}",
            f"{r['first_delta_seconds']:.1f}", f"{r['transcribed_seconds']:.1f}",
            f"{r['done_seconds']:.1f}", f"{r['plain_seconds']:.1f}",
            f"{r['first_delta_share']:.0%}", f"{r['first_delta_of_done']:.0%}",
            f"{r['stream_cost']:.2f}x", f"{r['wer']:.3f}", "yes" if r["same_text"] else "no",
        )  # fmt: skip
    return table


def main(
    notes: Annotated[int, typer.Option(help="Voice notes per measurement.")] = 40,
    concurrency: Annotated[str, typer.Option(help="Comma-separated levels.")] = "4,16",
    long: Annotated[int, typer.Option(help="5-minute recordings streamed (0: none).")] = 4,
    output: FiguresPath = OUT,
) -> None:
    """Measure OpenAI's route against the job API on one stack, then its streaming."""
    levels = int_list(concurrency)
    results: list[dict[str, Any]] = []
    streaming: list[dict[str, Any]] = []
    recordings: list[Recording] = []
    if long:
        recordings = five_minute_recordings(long)
    with started_stack(None, purpose="openai route benchmark") as running:
        routes = {"job API": _via_job_api(running), "OpenAI route": _via_openai(running)}
        for one in routes.values():  # warm-up: models loaded, pools and caches filled
            one(0)
        for index, level in enumerate(levels):
            order = list(routes.items()) if index % 2 == 0 else list(routes.items())[::-1]
            for name, one in order:
                results.append(measure(name, one, running, notes, level))
        if recordings:
            streaming = measure_streaming(running, recordings)
    table = new_table(
        f"{notes} voice notes: OpenAI's route against the job API",
        ("route", "concurrency", "notes/s", "wall s", "p50 s", "p95 s", "WER", "worker passes",
         "x job API"),
        left=("route",),
    )  # fmt: skip
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
    if streaming:
        console.print(_streaming_table(streaming))
        share = max(r["first_delta_share"] for r in streaming)
        console.print(
            f"First delta within {FIRST_DELTA_TARGET:.0%} of the plain answer's time: "
            + ("[green]met" if share <= FIRST_DELTA_TARGET else "[red]not met")
            + f" (at most {share:.0%})"
        )
    write_json(output, {"git": git_revision(), "results": results, "streaming": streaming})


if __name__ == "__main__":
    typer.run(main)
