"""The offline diarizer: accuracy, speed, its cost next to transcription, and one hour of audio.

    uv run python -m scripts.benchmarks.diarization [--files 32] [--seconds 60] [--seed 3]
        [--step 0.6] [--runtime onnx] [--hour 3600] [--no-whisper]

On generated conversations of 1-4 speakers (diarization_corpus.py; seed 3 was never used
to tune the diarizer), each file decoded once, `OfflineDiarizer` (model loaded and warmed
up first) reports the pooled diarization error rate with a +-0.25 s collar (pyannote's
`collar=0.5` is the total width), how many files got the right speaker count, and its
speed in x real time. `tiny.en` (the worker's `WhisperEngine`, batched, default settings)
then transcribes the same files in the same run, for diarization time as a share of
transcription time. `--hour` runs a fresh process on that many seconds of the corpus's
audio laid end to end (a voice is the same speaker in every file it appears in): time,
peak RSS (the process's VmHWM, the audio itself included), windows embedded and
clustered, speakers found and the DER on it. Targets on 2 cores: DER <= 10%, right count
on >= 90% of files, diarization <= 25% of transcription, the hour < 2 min and < 1 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

# The harness is imported only where the parent process needs it: the `--hour-only` child
# measures its own peak memory, and the harness brings rich along.
from scripts.benchmarks.diarization_corpus import DEFAULT_DIR, RATE, Conversation, build

COLLAR = 0.5  # pyannote's collar is the total width: +-0.25 s around each reference boundary


def reference(rttm: Path, offset: float = 0.0, names: list[str] | None = None) -> Any:
    """An RTTM file as a pyannote Annotation (speakers renamed by `names`, times shifted)."""
    from pyannote.core import Annotation, Segment  # type: ignore[import-untyped, unused-ignore]

    annotation = Annotation()
    for line in rttm.read_text().splitlines():
        fields = line.split()
        start, length, speaker = float(fields[3]), float(fields[4]), fields[7]
        label = names[int(speaker.removeprefix("spk"))] if names else speaker
        annotation[Segment(offset + start, offset + start + length)] = label
    return annotation


def hypothesis(turns: list[Any]) -> Any:
    """The diarizer's turns as a pyannote Annotation."""
    from pyannote.core import Annotation, Segment  # type: ignore[import-untyped, unused-ignore]

    annotation = Annotation()
    for turn in turns:
        annotation[Segment(turn.start, turn.end)] = f"S{turn.speaker}"
    return annotation


def make_diarizer(step: float, runtime: str) -> Any:
    """An `OfflineDiarizer` with this window step and LSTM runtime."""
    from transcription_worker.diarization.offline import OfflineDiarizer, OfflineOptions

    return OfflineDiarizer(OfflineOptions(step_seconds=step, runtime=runtime))  # type: ignore[arg-type]


def transcription_seconds(samples: list[Any]) -> float:
    """Wall time of tiny.en (the worker's engine, batched) over every recording."""
    from scripts.benchmarks.harness import no_progress, worker_engine
    from transcription_worker.options import DecodeOptions

    engine, config = worker_engine()
    total = 0.0
    for index, pcm in enumerate(samples):
        options = DecodeOptions.resolve(config, {"mode": "batched"}, len(pcm) / RATE)
        began = time.perf_counter()
        engine.transcribe(pcm, model_name=config.whisper_model, options=options,
                          on_segment=no_progress)  # fmt: skip
        if index:  # the first file warms the model up
            total += time.perf_counter() - began
    return total


def main(
    files: Annotated[int, typer.Option(min=2, help="Conversations.")] = 32,
    seconds: Annotated[float, typer.Option(help="Length of each.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Corpus seed (3 was not used for tuning).")] = 3,
    step: Annotated[float, typer.Option(help="Window step, seconds.")] = 0.6,
    runtime: Annotated[str, typer.Option(help="LSTM runtime: onnx or numpy.")] = "onnx",
    hour: Annotated[float, typer.Option(help="Seconds of the long run (0: none).")] = 3600.0,
    whisper: Annotated[bool, typer.Option(help="Time tiny.en on the same files.")] = True,
    directory: Annotated[Path, typer.Option("--dir", help="Corpus cache.")] = DEFAULT_DIR,
    hour_only: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Measure the offline diarizer on a generated corpus (and an hour of it)."""
    if hour_only:
        one_hour(hour, files, seed, seconds, step, runtime, directory)
        return
    from pyannote.metrics.diarization import DiarizationErrorRate  # type: ignore[import-untyped, unused-ignore]

    from scripts.benchmarks.harness import MIB, ROOT, decoded, module_command

    warnings.filterwarnings("ignore", message="'uem' was approximated")
    corpus = build(directory.resolve(), files, seed, seconds)
    samples = decoded(c.path for c in corpus)
    audio = sum(len(s) for s in samples) / RATE
    print(
        f"{len(corpus)} files, {audio:.0f} s of audio, speakers 1-4, step {step} s, "
        f"{runtime} LSTM, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    diarizer = make_diarizer(step, runtime)
    diarizer.diarize(samples[0])  # loads the encoder and the VAD
    metric = DiarizationErrorRate(collar=COLLAR)
    right, spent = 0, 0.0
    for conversation, pcm in zip(corpus, samples, strict=True):
        began = time.perf_counter()
        result = diarizer.diarize(pcm)
        spent += time.perf_counter() - began
        error = metric(reference(conversation.rttm), hypothesis(result.turns))
        right += result.speakers == conversation.speakers
        if result.speakers != conversation.speakers or error > 0.1:
            print(f"  {conversation.path.name}: {conversation.speakers} speaker(s), found "
                  f"{result.speakers}, DER {error:.1%}", flush=True)  # fmt: skip
    print(f"pooled DER (+-0.25 s): {abs(metric):.2%}   right speaker count: {right}/{len(corpus)} "
          f"({right / len(corpus):.0%})   diarization: {spent:.1f} s, {audio / spent:.0f}x real "
          "time", flush=True)  # fmt: skip
    if whisper:
        rest = sum(len(s) for s in samples[1:]) / RATE
        whisper_s = transcription_seconds(samples)
        share = (spent - spent * len(samples[0]) / RATE / audio) / whisper_s
        print(
            f"tiny.en batched (same files but the first): {whisper_s:.1f} s, "
            f"{rest / whisper_s:.0f}x real time; diarization is {share:.0%} of it",
            flush=True,
        )
    if hour > 0:
        command = module_command(
            "diarization", "--hour-only", "--hour", str(hour), "--files", str(files), "--seed",
            str(seed), "--seconds", str(seconds), "--step", str(step), "--runtime", runtime,
            "--dir", str(directory.resolve()),
        )  # fmt: skip
        out = json.loads(subprocess.run(command, check=True, capture_output=True, text=True,
                                        cwd=ROOT).stdout.strip().splitlines()[-1])  # fmt: skip
        print(f"{out['seconds'] / 60:.0f} min recording: {out['wall']:.1f} s "
              f"({out['seconds'] / out['wall']:.0f}x real time), peak RSS "
              f"{out['peak_rss'] / MIB:.0f} MiB (audio alone {out['audio_bytes'] / MIB:.0f} MiB, "
              f"before diarizing {out['rss_before'] / MIB:.0f} MiB), {out['windows']} windows, "
              f"{out['clustered']} clustered, {out['speakers']} of {out['voices']} voices found, "
              f"DER {out['der']:.2%}")  # fmt: skip


def one_hour(
    seconds: float,
    files: int,
    seed: int,
    length: float,
    step: float,
    runtime: str,
    directory: Path,
) -> None:
    """(Run by `main` in a fresh process.) Diarize the corpus laid end to end; print JSON.

    Only what a worker would hold is loaded before the measurement: the audio, decoded into
    one array, and the diarizer; the reference and the metric come after.
    """
    from faster_whisper import decode_audio

    corpus: list[Conversation] = build(directory.resolve(), files, seed, length)
    audio = np.zeros(int(seconds * RATE), np.float32)
    placed: list[tuple[float, Conversation]] = []
    offset = 0
    while offset < len(audio):
        conversation = corpus[len(placed) % len(corpus)]
        pcm = decode_audio(str(conversation.path), sampling_rate=RATE)[: len(audio) - offset]
        audio[offset : offset + len(pcm)] = pcm
        placed.append((offset / RATE, conversation))
        offset += len(pcm)
    rss_before = _current_rss()
    diarizer = make_diarizer(step, runtime)
    began = time.perf_counter()
    result, stats = diarizer.diarize_with_stats(audio)
    wall = time.perf_counter() - began
    peak = _peak_rss()

    from pyannote.core import Segment  # type: ignore[import-untyped, unused-ignore]
    from pyannote.metrics.diarization import DiarizationErrorRate  # type: ignore[import-untyped, unused-ignore]

    warnings.filterwarnings("ignore", message="'uem' was approximated")
    truth = None
    for start, conversation in placed:  # a voice is one speaker in every file
        voices = json.loads(conversation.path.with_suffix(".json").read_text())["voices"]
        part = reference(conversation.rttm, start, voices)
        truth = part if truth is None else truth.update(part)
    assert truth is not None
    truth = truth.crop(Segment(0.0, seconds))
    error = DiarizationErrorRate(collar=COLLAR)(truth, hypothesis(result.turns))
    print(json.dumps({
        "seconds": seconds, "wall": wall, "peak_rss": peak, "rss_before": rss_before,
        "audio_bytes": audio.nbytes, "windows": stats.windows, "clustered": stats.clustered,
        "speakers": result.speakers, "voices": len(truth.labels()), "der": error,
    }))  # fmt: skip


def _peak_rss() -> int:
    """This process's high-water mark of resident memory (bytes).

    VmHWM, not `ru_maxrss`: the latter survives exec, so a child started by a large parent
    would report the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _current_rss() -> int:
    """This process's resident memory now (bytes)."""
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    typer.run(main)
