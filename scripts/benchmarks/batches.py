"""Batch sizes of batched decoding: how many clips decode together, how many encode at once.

    uv run python -m scripts.benchmarks.batches [--long 10] [--hour]
        [--configs 8:0,16:0,16:8,32:8] [--rounds 2]

Each `batch:encode` pair runs in a fresh raw_whisper.py process (faster-whisper's batched
pipeline with Voxflow's `SplitEncoderWhisperModel`; encode 0 is the whole batch, as the
library does), over the same 5-minute recordings (corpus.py), one file at a time, model
loaded once. `8:0` is faster-whisper's default and the baseline. The pairs run in order,
then in reverse order, and so on for `--rounds`; each pair's wall time is its mean, so
drift in the machine's speed spreads over all of them. Reported: throughput, the ratio to
the baseline, WER, peak RSS (the process's high-water mark) and whether the texts are the
baseline's word for word. `--hour` adds the 1-hour recording of the throughput benchmark
(its memory file), where a batch holds up to `batch` of its ~120 chunks.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jiwer
import typer

from scripts.benchmarks.corpus import (
    DEFAULT_DIR,
    FiveMinutesOption,
    Recording,
    five_minute_recordings,
    memory_recording,
)
from scripts.benchmarks.harness import (
    MIB,
    ROOT,
    VOICE_NOTE,
    module_command,
    normalise,
    number_pairs,
)


@dataclass
class Config:
    """One `batch:encode` pair and what its runs measured."""

    batch: int
    encode: int
    walls: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`batch 16, encode 8` (encode 0 reads `whole`)."""
        return f"batch {self.batch}, encode {self.encode or 'whole'}"

    @property
    def wall(self) -> float:
        """Mean wall seconds over the rounds."""
        return sum(self.walls) / len(self.walls)


def run_once(config: Config, files: list[Recording]) -> None:
    """One raw_whisper.py process over `files`; records wall, peak RSS and texts."""
    with tempfile.TemporaryDirectory(prefix="vf-batches-") as tmp:
        out = Path(tmp) / "raw.json"
        command = module_command(
            "raw_whisper", "--mode", "batched", "--batch-size", str(config.batch),
            "--encode-batch-size", str(config.encode), "--warmup", str(VOICE_NOTE),
            "--out", str(out), *(str(f.path) for f in files),
        )  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT)
        result: dict[str, Any] = json.loads(out.read_text())
    config.walls.append(sum(float(f["wall_seconds"]) for f in result["files"]))
    config.peaks.append(int(result["peak_rss_bytes"]))
    config.texts = [str(f["text"]) for f in result["files"]]


def _configs(text: str) -> list[Config]:
    return [Config(int(batch), int(encode)) for batch, encode in number_pairs(text)]


def _measure(name: str, files: list[Recording], configs: list[Config], rounds: int) -> None:
    audio = sum(f.duration for f in files)
    print(f"{name}: {len(files)} file(s), {audio:.0f} s of audio, {rounds} round(s)", flush=True)
    for round_ in range(rounds):
        for config in configs if round_ % 2 == 0 else configs[::-1]:
            run_once(config, files)
            print(f"  {config.label}: {config.walls[-1]:.1f} s", flush=True)
    refs = " ".join(normalise(f.text) for f in files)
    base = configs[0]
    print(f"{'':2}{'config':<24}{'wall s':>8}{'x real':>8}{'vs ' + base.label:>26}"
          f"{'WER':>7}{'peak MiB':>10}  same text as baseline")  # fmt: skip
    for config in configs:
        wer = jiwer.wer(refs, " ".join(normalise(t) for t in config.texts))
        same = "yes" if config.texts == base.texts else "no"
        print(f"  {config.label:<24}{config.wall:8.1f}{audio / config.wall:8.1f}"
              f"{base.wall / config.wall:25.2f}x{wer:7.3f}{max(config.peaks) / MIB:10.0f}  "
              f"{same}")  # fmt: skip


def main(
    long: FiveMinutesOption = 10,
    hour: Annotated[bool, typer.Option(help="Also the 1-hour recording.")] = False,
    configs: Annotated[
        str, typer.Option(help="batch:encode pairs (encode 0: whole batch); the first is the base.")
    ] = "8:0,16:0,16:8,32:8",
    rounds: Annotated[int, typer.Option(help="Runs of each pair (alternating order).", min=1)] = 2,
) -> None:
    """Compare batch sizes on the same recordings; print throughput, WER and peak memory."""
    files = five_minute_recordings(long)
    _measure("5-minute recordings", files, _configs(configs), rounds)
    if hour:
        _measure("1-hour recording", [memory_recording(DEFAULT_DIR.resolve(), 3600.0, 300.0, 0, 2)],
                 _configs(configs), 1)  # fmt: skip


if __name__ == "__main__":
    typer.run(main)
