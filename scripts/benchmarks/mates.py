"""Micro-batch mates: the oldest queued notes, or those closest to the leader's length.

    uv run python -m scripts.benchmarks.mates [--lengths 5:24,8:24,12:24,15:24,25:24]
        [--batch 8] [--seed 7] [--model tiny.en --device cpu --compute-type int8]

A micro-batch is encoded over its longest member (trimmed windows,
`transcription_worker.batched_pipelines`), so a 5 s note batched with a 25 s one pays for 26 s. This
queues voice notes of mixed lengths in a shuffled arrival order and forms micro-batches the
way the worker does: the oldest unclaimed note leads and claims `batch - 1` mates, either
the oldest ones (first in, first out) or the closest in length, ties oldest first (the
worker's order, `repository.lock_short_queued`). Both groupings are transcribed with the
same trimmed pipeline; the baseline is raw faster-whisper (its batched pipeline, full
windows, one note at a time). The report gives throughput, WER and the mean encoded window.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import typer

from scripts.benchmarks.corpus import check_tools, notes_of
from scripts.benchmarks.harness import (
    SAMPLE_RATE,
    ComputeTypeOption,
    DeviceOption,
    ModelOption,
    decoded,
    number_pairs,
    runtime,
    whisper_model,
)
from scripts.benchmarks.windows import micro_batched, one_at_a_time, report


def oldest_first(durations: list[float], batch: int) -> list[list[int]]:
    """Groups in arrival order: the leader and the next `batch - 1` notes."""
    return [list(range(i, min(i + batch, len(durations)))) for i in range(0, len(durations), batch)]


def nearest_first(durations: list[float], batch: int) -> list[list[int]]:
    """The oldest unclaimed note leads; its mates are the closest in length, ties oldest first."""
    waiting = list(range(len(durations)))
    groups = []
    while waiting:
        leader = waiting.pop(0)
        waiting.sort(key=lambda i: (abs(durations[i] - durations[leader]), i))
        mates, waiting = waiting[: batch - 1], sorted(waiting[batch - 1 :])
        groups.append([leader, *mates])
    return groups


def grouped(pipeline: Any, audios: list[Any], groups: list[list[int]], batch: int) -> list[str]:
    """Each group transcribed as one micro-batch; texts in arrival order."""
    heard: dict[int, str] = {}
    for group in groups:
        texts = micro_batched(pipeline, [audios[i] for i in group], group=batch)
        heard.update(zip(group, texts, strict=True))
    return [heard[i] for i in range(len(audios))]


def mean_window(groups: list[list[int]], durations: list[float], pipeline: Any) -> float:
    """Mean seconds each note is encoded over (its group's longest + margin, at least minimum)."""
    from transcription_worker.batched_pipelines import FRAMES_PER_SECOND, trimmed_frames

    windows = [
        trimmed_frames(max(durations[i] for i in group), pipeline.min_seconds,
                       pipeline.margin_seconds) / FRAMES_PER_SECOND
        for group in groups
        for _ in group
    ]  # fmt: skip
    return sum(windows) / len(windows)


def main(
    lengths: Annotated[str, typer.Option(help="note seconds:count, ...")] = (
        "5:24,8:24,12:24,15:24,25:24"
    ),
    batch: Annotated[int, typer.Option(help="Notes per micro-batch.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the arrival order.")] = 7,
    rounds: Annotated[int, typer.Option(help="Times each grouping is run (best kept).")] = 2,
    model: ModelOption = "tiny.en",
    device: DeviceOption = "cpu",
    compute_type: ComputeTypeOption = "int8",
) -> None:
    """Transcribe one mixed queue grouped both ways; print throughput, WER and the ratio."""
    from faster_whisper import BatchedInferencePipeline

    from transcription_worker.batched_pipelines import TrimmedBatchedPipeline
    from transcription_worker.settings import TranscriptionSettings

    check_tools()
    settings = TranscriptionSettings()
    whisper = whisper_model(model, device, compute_type)
    pipeline = TrimmedBatchedPipeline(
        whisper,
        min_seconds=settings.whisper_min_window_seconds,
        margin_seconds=settings.whisper_window_margin_seconds,
    )
    notes = [
        note for seconds, count in number_pairs(lengths) for note in notes_of(seconds, int(count))
    ]
    random.Random(seed).shuffle(notes)
    audios = decoded(note.path for note in notes)
    durations = [len(a) / SAMPLE_RATE for a in audios]
    total = sum(durations)
    print(f"{len(notes)} notes of mixed length, {total:.0f} s of audio, batches of {batch}")
    micro_batched(pipeline, audios[:batch], group=batch)  # warm up
    refs = [note.text for note in notes]
    raw = BatchedInferencePipeline(whisper)
    runs: dict[str, tuple[Callable[[], list[str]], list[list[int]] | None]] = {
        "raw batched, one at a time": (lambda: one_at_a_time(raw, audios), None)
    }
    for name, grouping in (("oldest first", oldest_first), ("nearest length", nearest_first)):
        groups = grouping(durations, batch)
        runs[name] = (partial(grouped, pipeline, audios, groups, batch), groups)
    walls: dict[str, float] = {}
    for name, (run, formed) in runs.items():
        texts: list[str] = []
        walls[name] = float("inf")
        for _ in range(rounds):
            began = time.perf_counter()
            texts = run()
            walls[name] = min(walls[name], time.perf_counter() - began)
        window = ""
        if formed is not None:
            window = f"  mean window {mean_window(formed, durations, pipeline):4.1f} s"
        print(f"  {report(name, refs, texts, total, walls[name])}{window}", flush=True)
    raw_wall = walls["raw batched, one at a time"]
    for name in ("oldest first", "nearest length"):
        print(f"{name}: {raw_wall / walls[name]:.2f}x raw batched")
    print(f"nearest length vs oldest first: {walls['oldest first'] / walls['nearest length']:.2f}x")
    print(runtime(model, compute_type, device))


if __name__ == "__main__":
    typer.run(main)
