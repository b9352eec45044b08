"""faster-whisper called directly, in a process of its own (the throughput benchmark's baseline).

    uv run python -m scripts.benchmarks.raw_whisper --mode batched --out result.json \
        [--warmup samples/voice_note.ogg] FILE...

Loads the worker's `WhisperEngine` once (settings from the environment, as the worker reads
them, with `whisper_mode` forced to `--mode`, Voxflow's window trimming off and the
library's default batch of 8 encoded whole, so the batched pipeline is faster-whisper's
own; batches.py sets other batch sizes), transcribes the warm-up file untimed, then each
FILE one at a time, and writes per-file wall times and texts plus this process's peak RSS
(`ru_maxrss`, the kernel's high-water mark) as JSON. It imports only what transcribing needs
(nothing of the benchmarks' harness), so its memory is the baseline the worker's is compared
with.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

# BatchedInferencePipeline.transcribe's default batch_size.
LIBRARY_BATCH_SIZE = 8


def _ignore(_fraction: float) -> None:
    return None


def _microbatches(
    engine: Any, model: str, options: Any, files: list[Path], group: int
) -> list[dict[str, Any]]:
    """The files in groups, each group decoded and transcribed as one batched pass.

    The library-level counterpart of the worker's micro-batching (the same engine call),
    so the benchmark can tell the approach's own gain from what the platform adds or loses.
    Each file's time is its share, by duration, of its group's time.
    """
    from faster_whisper import decode_audio

    results: list[dict[str, Any]] = []
    for start in range(0, len(files), group):
        paths = files[start : start + group]
        began = time.perf_counter()
        parts = [decode_audio(str(path)) for path in paths]
        outs = engine.transcribe_batch(parts, model_name=model, options=options)
        elapsed = time.perf_counter() - began
        total = sum(out.duration_seconds for out in outs) or 1.0
        results += [
            {
                "path": str(path),
                "wall_seconds": elapsed * out.duration_seconds / total,
                "audio_seconds": out.duration_seconds,
                "text": out.text,
            }
            for path, out in zip(paths, outs, strict=True)
        ]
    return results


def run(
    mode: str,
    files: list[Path],
    warmup: Path | None,
    group: int = 8,
    *,
    batch_size: int = LIBRARY_BATCH_SIZE,
    encode_batch_size: int = 0,
) -> dict[str, Any]:
    """Transcribe `files` one at a time (or in micro-batches) with one loaded model.

    `batch_size` and `encode_batch_size` are for batches.py; the defaults are faster-whisper's.
    """
    from transcription_worker.engine import WhisperEngine
    from transcription_worker.options import DecodeOptions
    from transcription_worker.settings import TranscriptionWorkerSettings

    forced = "batched" if mode == "microbatch" else mode
    # Raw means faster-whisper's own pipeline: every clip padded to a full 30 s window, in
    # batches of the library's default size (8), each encoded whole (unless asked otherwise).
    settings = TranscriptionWorkerSettings().model_copy(
        update={
            "whisper_mode": forced,
            "whisper_trim_windows": False,
            "whisper_batch_size": batch_size,
            "whisper_encode_batch_size": encode_batch_size,
        }
    )
    engine = WhisperEngine(settings, settings)
    began = time.perf_counter()
    engine.preload()
    load_seconds = time.perf_counter() - began
    options = DecodeOptions.resolve(settings, {}, 0.0)  # the mode is forced: no duration rule
    model = settings.whisper_model
    warmup_seconds = None
    if warmup is not None:
        began = time.perf_counter()
        engine.transcribe(warmup, model_name=model, options=options, on_segment=_ignore)
        warmup_seconds = time.perf_counter() - began
    results: list[dict[str, Any]] = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    if mode == "microbatch":
        results = _microbatches(engine, model, options, files, group)
    for path in files if mode != "microbatch" else []:
        began = time.perf_counter()
        out = engine.transcribe(path, model_name=model, options=options, on_segment=_ignore)
        results.append(
            {
                "path": str(path),
                "wall_seconds": time.perf_counter() - began,
                "audio_seconds": out.duration_seconds,
                "text": out.text,
            }
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": mode,
        "model": model,
        "decode_options": {
            "mode": options.mode,
            "batch_size": options.batch_size,
            "encode_batch_size": encode_batch_size,
            "beam_size": options.beam_size,
        },
        "device": list(engine.device()),
        "load_seconds": load_seconds,
        "warmup_seconds": warmup_seconds,
        "files": results,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports kilobytes
        # CPU time of the timed transcriptions only (no model load, no warm-up).
        "cpu_seconds": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime,
    }


def main() -> None:
    """Parse the arguments, transcribe, write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("sequential", "batched", "microbatch"), required=True)
    parser.add_argument("--group", type=int, default=8, help="Files per micro-batch.")
    parser.add_argument("--out", type=Path, required=True, help="Where to write the JSON.")
    parser.add_argument("--warmup", type=Path, help="Transcribed once first, not timed.")
    parser.add_argument("--batch-size", type=int, default=LIBRARY_BATCH_SIZE)
    parser.add_argument("--encode-batch-size", type=int, default=0, help="0: the whole batch.")
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    result = run(
        args.mode, args.files, args.warmup, args.group,
        batch_size=args.batch_size, encode_batch_size=args.encode_batch_size,
    )  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
