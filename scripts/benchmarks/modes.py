"""Which decoding mode per audio length, and how far micro-batching can go on this machine.

    uv run python -m scripts.benchmarks.modes [--short 30] [--notes 30] [--long 3]

Part 1 (mode per length) transcribes three workloads with the worker's `WhisperEngine`,
model loaded once, one file at a time (decoded to samples first, as the worker does), in
`sequential` mode, in `batched` mode as faster-whisper runs it (every clip padded to a
30 s window) and in `batched` mode with Voxflow's trimmed windows for audio within one
window (`transcription_worker.batched_pipelines`; longer audio is decoded as faster-whisper does):
voice notes of about 5 s and 15 s, and recordings of about 5 minutes. It reports
throughput (audio seconds per wall second), WER, and how much of the reference's
punctuation survives (WER ignores it; readers and the note-taking LLMs do not): what the
default mode is chosen from.

Part 2 (micro-batching ceiling) decodes the 15 s notes in groups of 1, 4 and 8 with the
batched pipeline (one clip per note, `clip_timestamps`), with full and with trimmed
windows, timing the encoder and the decoder separately. With full windows the encoder
sees a whole 30 s window per note, so its cost per note does not depend on the note's
length, and on a CPU it does not shrink with the batch either: `ceiling` is the throughput
with a decoder that costs nothing.

Writes `.voxflow/bench/modes.json` and `modes.md`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jiwer
import typer

from scripts.benchmarks.corpus import (
    DEFAULT_DIR,
    CorpusDirOption,
    Recording,
    five_minute_recordings,
    notes_of,
)
from scripts.benchmarks.harness import (
    PUNCTUATION,
    RESULTS,
    SAMPLE_RATE,
    decoded,
    git_revision,
    loadavg,
    machine,
    no_progress,
    plain_words,
    punctuation_kept,
    write_json,
)


def _words(text: str) -> str:
    return " ".join(plain_words(text))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over a whole workload (lower-cased, punctuation removed)."""
    return float(jiwer.wer(" ".join(map(_words, references)), " ".join(map(_words, hypotheses))))


@dataclass
class Timer:
    """Wraps the model's encoder and decoder calls to add up their wall time."""

    encode: float = 0.0
    generate: float = 0.0

    def install(self, model: Any) -> None:
        """Time `WhisperModel.encode` and the CTranslate2 model's `generate`."""
        encode = model.encode
        inner = model.model
        timer = self

        def timed_encode(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return encode(*args, **kwargs)
            finally:
                timer.encode += time.perf_counter() - began

        class TimedModel:
            """The CTranslate2 Whisper model with `generate` timed (a C++ type: no setattr)."""

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def generate(self, *args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return inner.generate(*args, **kwargs)
                finally:
                    timer.generate += time.perf_counter() - began

        model.encode = timed_encode
        model.model = TimedModel()


def run_modes(
    engines: dict[str, Any], settings: Any, name: str, files: list[Recording]
) -> list[dict[str, Any]]:
    """Each mode over one workload, one file at a time."""
    from transcription_worker.options import DecodeOptions

    rows = []
    audio = sum(r.duration for r in files)
    # Decoded first, as the worker hands the engine samples (not timed in any mode).
    samples = decoded(r.path for r in files)
    for label, (engine, mode) in engines.items():
        options = DecodeOptions.resolve(settings, {"mode": mode}, 0.0)
        texts = []
        began = time.perf_counter()
        for pcm in samples:
            out = engine.transcribe(
                pcm, model_name=settings.whisper_model, options=options, on_segment=no_progress
            )
            texts.append(out.text)
        wall = time.perf_counter() - began
        row = {
            "workload": name,
            "mode": label,
            "files": len(files),
            "audio_seconds": round(audio, 1),
            "wall_seconds": round(wall, 2),
            "throughput": round(audio / wall, 2),
            "wer": round(wer([r.text for r in files], texts), 4),
            **punctuation([r.text for r in files], texts),
        }
        print(row, file=sys.stderr)
        rows.append(row)
    return rows


def punctuation(references: list[str], hypotheses: list[str]) -> dict[str, float | int]:
    """How much punctuation survives (WER ignores it, readers and note-takers do not)."""
    return {
        "punctuation_kept": round(punctuation_kept(references, hypotheses), 3),
        "files_without_punctuation": sum(1 for t in hypotheses if not PUNCTUATION.search(t)),
    }


def run_ceiling(
    engine: Any, settings: Any, files: list[Recording], windows: str
) -> list[dict[str, Any]]:
    """The notes decoded in groups of 1, 4 and 8 clips, encoder and decoder timed apart."""
    from transcription_worker.options import DecodeOptions

    loaded = engine._get(settings.whisper_model)
    timer = Timer()
    timer.install(loaded.model)
    samples = decoded(r.path for r in files)
    audio = sum(len(s) for s in samples) / SAMPLE_RATE
    options = DecodeOptions.resolve(settings, {"mode": "batched"}, 0.0)
    rows = []
    for group in (1, 4, 8):
        timer.encode = timer.generate = 0.0
        results = []
        began = time.perf_counter()
        for start in range(0, len(samples), group):
            results += engine.transcribe_batch(
                samples[start : start + group],
                model_name=settings.whisper_model,
                options=dataclasses.replace(options, batch_size=group),
            )
        wall = time.perf_counter() - began
        row = {
            "windows": windows,
            "group": group,
            "notes": len(samples),
            "audio_seconds": round(audio, 1),
            "wall_seconds": round(wall, 2),
            "throughput": round(audio / wall, 2),
            "encoder_seconds": round(timer.encode, 2),
            "decoder_seconds": round(timer.generate, 2),
            "encoder_ms_per_note": round(1000 * timer.encode / len(samples), 1),
            "ceiling": round(audio / timer.encode, 2),
            "wer": round(wer([r.text for r in files], [r.text for r in results]), 4),
        }
        print(row, file=sys.stderr)
        rows.append(row)
    return rows


def markdown(modes: list[dict[str, Any]], ceiling: list[dict[str, Any]]) -> str:
    """The two tables."""
    lines = [
        "| Workload | Mode | Files | Audio s | Wall s | Throughput | vs sequential | WER "
        "| Punctuation kept | Files without any |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["workload"]: r["throughput"] for r in modes if r["mode"] == "sequential"}
    for r in modes:
        ratio = r["throughput"] / base[r["workload"]]
        lines.append(
            f"| {r['workload']} | {r['mode']} | {r['files']} | {r['audio_seconds']} | "
            f"{r['wall_seconds']} | {r['throughput']:.1f}x | {ratio:.2f}x | {r['wer']:.3f} | "
            f"{r['punctuation_kept']:.0%} | {r['files_without_punctuation']} |"
        )
    lines += [
        "",
        "| Windows | Notes per pass | Throughput | vs 1 full | Encoder s | Decoder s "
        "| Encoder ms/note | Ceiling | WER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    one = ceiling[0]["throughput"]
    for r in ceiling:
        lines.append(
            f"| {r['windows']} | {r['group']} | {r['throughput']:.1f}x | "
            f"{r['throughput'] / one:.2f}x | "
            f"{r['encoder_seconds']} | {r['decoder_seconds']} | {r['encoder_ms_per_note']} | "
            f"{r['ceiling']:.1f}x | {r['wer']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(
    short: Annotated[int, typer.Option(min=1, help="Voice notes of about 5 s.")] = 30,
    notes: Annotated[int, typer.Option(min=8, help="Voice notes of about 15 s.")] = 30,
    long: Annotated[int, typer.Option(min=1, help="Recordings of about 5 minutes.")] = 3,
    corpus_dir: CorpusDirOption = DEFAULT_DIR,
    out_dir: Annotated[Path, typer.Option(help="Where modes.json and modes.md go.")] = RESULTS,
) -> None:
    """Measure sequential vs batched per audio length, and the micro-batching ceiling."""
    from transcription_worker.engine import WhisperEngine
    from transcription_worker.options import DecodeOptions
    from transcription_worker.settings import TranscriptionWorkerSettings

    workloads = {
        "notes 5 s": notes_of(5.0, short, corpus_dir),
        "notes 15 s": notes_of(15.0, notes, corpus_dir),
        "long 5 min": five_minute_recordings(long, corpus_dir),
    }
    settings = TranscriptionWorkerSettings()
    full = WhisperEngine(settings.model_copy(update={"whisper_trim_windows": False}), settings)
    trimmed = WhisperEngine(settings.model_copy(update={"whisper_trim_windows": True}), settings)
    engines = {
        "sequential": (full, "sequential"),
        "batched": (full, "batched"),
        "batched, trimmed": (trimmed, "batched"),
    }
    warm = workloads["notes 15 s"][0].path
    for engine, mode in engines.values():
        engine.preload()
        options = DecodeOptions.resolve(settings, {"mode": mode}, 0.0)
        engine.transcribe(warm, model_name=settings.whisper_model, options=options,
                          on_segment=no_progress)  # fmt: skip
    began = time.time()
    load_before = loadavg()
    modes = [
        row
        for name, files in workloads.items()
        for row in run_modes(engines, settings, name, files)
    ]
    fifteen = workloads["notes 15 s"]
    ceiling = run_ceiling(full, settings, fifteen, "full") + run_ceiling(
        trimmed, settings, fifteen, "trimmed"
    )
    report = {
        "machine": machine(),
        "revision": git_revision(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "seconds": round(time.time() - began, 1),
        "model": settings.whisper_model,
        "beam_size": settings.whisper_beam_size,
        "batch_size": settings.whisper_batch_size,
        "min_window_seconds": settings.whisper_min_window_seconds,
        "window_margin_seconds": settings.whisper_window_margin_seconds,
        "modes": modes,
        "ceiling": ceiling,
    }
    write_json(out_dir / "modes.json", report)
    table = markdown(modes, ceiling)
    (out_dir / "modes.md").write_text(table)
    print(table)


if __name__ == "__main__":
    typer.run(main)
