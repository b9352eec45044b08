"""Micro-batch packing: one Whisper window per voice note, or several short notes per window.

Every clip given to faster-whisper's batched pipeline costs a full 30 s encoder window,
however short. Packing consecutive notes into one window (with silence between them) saves
encoder passes; too little silence and Whisper runs neighbouring notes together. This runs
both on the same notes, with the model loaded once, and reports speed and WER.

    uv run python -m scripts.benchmarks.packing --seconds 8 --count 40
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import jiwer
import numpy as np
import typer

from scripts.benchmarks.corpus import notes_of
from scripts.benchmarks.harness import SAMPLE_RATE, decoded, plain_words, whisper_model

WINDOW_LIMIT = 29.5  # seconds of audio one packed clip may span (as the worker packs)


def _normalise(text: str) -> str:
    return " ".join(plain_words(text))


def _groups(audios: list[Any], gap: float, pack: bool) -> list[list[int]]:
    """Consecutive notes per window (one each when not packing)."""
    if not pack:
        return [[i] for i in range(len(audios))]
    groups: list[list[int]] = []
    length = 0.0
    for index, audio in enumerate(audios):
        seconds = len(audio) / SAMPLE_RATE
        if groups and length + gap + seconds <= WINDOW_LIMIT:
            groups[-1].append(index)
            length += gap + seconds
        else:
            groups.append([index])
            length = seconds
    return groups


def run(batched: Any, audios: list[Any], refs: list[str], gap: float, pack: bool) -> str:
    """Transcribe all notes in one batched call; return a report line."""
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    pieces: list[Any] = []
    spans: list[tuple[float, float]] = []
    clips: list[dict[str, float]] = []
    position = 0
    groups = _groups(audios, gap, pack)
    for group in groups:
        start = position
        for index in group:
            if position > start:
                pieces.append(silence)
                position += len(silence)
            spans.append((position / SAMPLE_RATE, (position + len(audios[index])) / SAMPLE_RATE))
            pieces.append(audios[index])
            position += len(audios[index])
        clips.append({"start": start / SAMPLE_RATE, "end": position / SAMPLE_RATE})
        pieces.append(silence)
        position += len(silence)
    started = time.perf_counter()
    # Packed windows need timestamps to tell the notes apart (the worker's batched passes now
    # run without them: one segment per window).
    segments, _ = batched.transcribe(
        np.concatenate(pieces), clip_timestamps=clips, batch_size=8, language="en",
        without_timestamps=not pack,
    )  # fmt: skip
    heard: list[list[str]] = [[] for _ in audios]
    for segment in segments:
        middle = (segment.start + segment.end) / 2
        index = next((i for i, (_, end) in enumerate(spans) if middle < end + gap / 2), -1)
        heard[index].append(segment.text)
    elapsed = time.perf_counter() - started
    wer = jiwer.wer([_normalise(r) for r in refs], [_normalise(" ".join(h)) for h in heard])
    total = sum(len(a) for a in audios) / SAMPLE_RATE
    label = f"packed, {gap:g} s gaps" if pack else "a window per note (as now)"
    return (
        f"{label:27s} windows {len(groups):3d}  {total / elapsed:5.1f}x real time  "
        f"({elapsed:5.1f} s)  WER {wer:.3f}"
    )


def main(
    seconds: Annotated[float, typer.Option(help="Typical note length.")] = 8.0,
    count: Annotated[int, typer.Option(min=1, help="Notes.")] = 40,
    gaps: Annotated[str, typer.Option(help="Silences to try between packed notes.")] = "1,2",
) -> None:
    """Compare a window per note with packed windows on the same notes."""
    from faster_whisper import BatchedInferencePipeline

    notes = notes_of(seconds, count)
    audios = decoded(note.path for note in notes)
    refs = [note.text for note in notes]
    model = whisper_model("tiny.en", "cpu", "int8")
    batched = BatchedInferencePipeline(model)
    run(batched, audios[:4], refs[:4], 0.5, pack=False)  # warm-up
    print(f"{count} notes of about {seconds:g} s, tiny.en, batch 8")
    for gap in (float(g) for g in gaps.split(",")):
        print(run(batched, audios, refs, 0.5, pack=False))
        print(run(batched, audios, refs, gap, pack=True))


if __name__ == "__main__":
    typer.run(main)
