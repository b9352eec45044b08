"""A smaller first batch for long recordings: how soon the first words come, at what cost.

    uv run python -m scripts.benchmarks.ramp [--long 4] [--firsts 0,1,2,4] [--rounds 2]

The worker's `WhisperEngine` (model loaded once) transcribes 5-minute recordings (corpus.py)
in batched mode, one at a time, decoded to samples first as the worker does: as a job that
asked for live words, with each `whisper_first_batch_size` in `--firsts`, and as any other
job (0: faster-whisper's batches of `batch_size` from the start, the baseline). For each it
reports the wall time, the ratio to the baseline, when the first segment came out (seconds,
and as a share of the recording's wall time: what a listener of the live stream waits for
the first words), and whether the transcripts are the baseline's word for word. The
settings run in order, then in reverse, for `--rounds`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from scripts.benchmarks.corpus import FiveMinutesOption, five_minute_recordings
from scripts.benchmarks.harness import decoded, no_progress, worker_engine


@dataclass
class Setting:
    """One first-batch size and what its runs measured."""

    first: int
    walls: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)  # first segment's share of the wall
    texts: list[str] = field(default_factory=list)


def run(engine: Any, options: Any, model: str, setting: Setting, samples: list[Any]) -> None:
    """Transcribe every recording once with this setting."""
    engine._get(model).live.first_batch = setting.first
    options = dataclasses.replace(options, live=setting.first > 0)
    texts = []
    for pcm in samples:
        began = time.perf_counter()
        first: list[float] = []

        def heard(
            _segment: dict[str, Any], first: list[float] = first, began: float = began
        ) -> None:
            if not first:
                first.append(time.perf_counter() - began)

        out = engine.transcribe(pcm, model_name=model, options=options,
                                on_segment=no_progress, on_decoded=heard)  # fmt: skip
        wall = time.perf_counter() - began
        setting.walls.append(wall)
        setting.firsts.append(first[0] / wall)
        texts.append(out.text)
    setting.texts = texts


def main(
    long: FiveMinutesOption = 4,
    firsts: Annotated[str, typer.Option(help="First-batch sizes; the first is the base.")] = (
        "0,1,2,4"
    ),
    rounds: Annotated[int, typer.Option(help="Runs of each (alternating order).", min=1)] = 2,
) -> None:
    """Compare first-batch sizes on the same recordings."""
    from transcription_worker.options import DecodeOptions

    files = five_minute_recordings(long)
    samples = decoded(f.path for f in files)
    engine, config = worker_engine()
    options = DecodeOptions.resolve(config, {"mode": "batched"}, 300.0)
    settings = [Setting(int(n)) for n in firsts.split(",")]
    audio = sum(f.duration for f in files)
    print(f"{len(files)} recording(s), {audio:.0f} s of audio, batch size {options.batch_size}, "
          f"{rounds} round(s)", flush=True)  # fmt: skip
    run(engine, options, config.whisper_model, Setting(0), samples[:1])  # warm-up
    for round_ in range(rounds):
        for setting in settings if round_ % 2 == 0 else settings[::-1]:
            run(engine, options, config.whisper_model, setting, samples)
    base = settings[0]
    base_wall = sum(base.walls) / rounds
    print(f"{'first batch':<14}{'wall s':>8}{'vs base':>9}{'first words':>13}"
          f"{'(of wall)':>11}  same text as base")  # fmt: skip
    for setting in settings:
        wall = sum(setting.walls) / rounds
        share = sum(setting.firsts) / len(setting.firsts)
        first_s = sum(w * f for w, f in zip(setting.walls, setting.firsts, strict=True))
        first_s /= len(setting.walls)
        label = str(setting.first) if setting.first else f"0 (all {options.batch_size})"
        same = "yes" if setting.texts == base.texts else "no"
        print(f"{label:<14}{wall:8.1f}{base_wall / wall:8.2f}x{first_s:12.1f}s"
              f"{share:10.0%}  {same}")  # fmt: skip


if __name__ == "__main__":
    typer.run(main)
