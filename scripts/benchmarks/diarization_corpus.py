"""Synthetic conversations of 1-4 speakers with ground-truth RTTM, for diarization tests.

    uv run python -m scripts.benchmarks.diarization_corpus generate [--files 24] [--seed 0]
    uv run python -m scripts.benchmarks.diarization_corpus voices    # voices GE2E tells apart
    uv run python -m scripts.benchmarks.diarization_corpus test-set  # the committed test files

Each conversation gives every speaker its own text-to-speech voice (espeak-ng variants and
flite's diphone/cluster voices, from `VOICES`), speaking sentences from corpus.py's generator
in turns of one to three sentences (and short replies such as "Right, I agree."), with
pauses between turns and, now and then, the next speaker starting a little before the last
one stops. Each sentence is trimmed to its voiced part, so the RTTM (one line per sentence)
says exactly where each voice is; pauses inside a sentence (commas) count as speech, as a
human annotator would mark them. Light noise is added at 28-40 dB below the speech.

Output: `name.ogg` (16 kHz mono Ogg Vorbis, written with `sox -R`, so runs are identical),
`name.rttm` and `name.json` (voices, speaker count, duration). A file depends only on its
index, seed and length, so the files are cached under `--dir` and a larger run reuses a
smaller one's. Requires espeak-ng, flite and sox (`apt-get install espeak-ng flite sox
libsox-fmt-all`).

Voices: `voices` renders a dozen sentences per candidate and reports, for every pair, how
many 1.6 s windows the GE2E encoder assigns to the wrong voice's centroid. Some pairs that
sound different are close for GE2E (FIELD-NOTES: en-us and en-gb+f3); `VOICES` keeps the
candidates whose every pair separates, checked with this command.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import typer

from scripts.benchmarks.corpus import sentence

# Not the harness's ROOT: the diarization benchmark's child process, which measures its own
# memory, imports this module, and the harness brings rich along.
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".voxflow" / "bench-diarization"
TEST_SET_DIR = ROOT / "tests" / "services" / "transcription_worker" / "data" / "diarization"
RATE = 16_000
VORBIS_QUALITY = 0  # about 24 kbit/s: plenty for 16 kHz speech, keeps the test set small
Audio = npt.NDArray[np.float32]

# Candidates for `voices`: engine, voice, words a minute (espeak-ng), pitch (espeak-ng).
CANDIDATES: dict[str, tuple[str, str, int, int]] = {
    "en-us": ("espeak-ng", "en-us", 160, 50),
    "en-us+f3": ("espeak-ng", "en-us+f3", 160, 60),
    "en-us+m3": ("espeak-ng", "en-us+m3", 150, 40),
    "en-us+f5": ("espeak-ng", "en-us+f5", 165, 70),
    "en-gb": ("espeak-ng", "en-gb", 155, 45),
    "en-gb+f3": ("espeak-ng", "en-gb+f3", 160, 60),
    "en-gb+m7": ("espeak-ng", "en-gb+m7", 145, 30),
    "en-gb-scotland+m1": ("espeak-ng", "en-gb-scotland+m1", 150, 35),
    "en-029+f2": ("espeak-ng", "en-029+f2", 160, 65),
    "flite-slt": ("flite", "slt", 0, 0),
    "flite-rms": ("flite", "rms", 0, 0),
    "flite-awb": ("flite", "awb", 0, 0),
    "flite-kal16": ("flite", "kal16", 0, 0),
}
# The candidates that GE2E separates pairwise, with centroid cosines of at most 0.82 (see
# `voices`: en-gb, en-gb+f3 and en-gb+m7 sat at 0.96-1.00 from en-us and mixed up to 39% of
# their windows).
VOICES = (
    "flite-slt", "flite-rms", "flite-awb", "flite-kal16", "en-us+f3", "en-029+f2",
    "en-gb-scotland+m1",
)  # fmt: skip
REPLIES = (
    "Yes.", "Right, I agree.", "Okay, sounds good.", "No, I do not think so.", "Exactly.",
    "Sure, I can do that.", "Thank you.", "Good point.", "Maybe next week.", "I see.",
)  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """Where one speaker's voice is, in seconds."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Conversation:
    """A generated file and its reference."""

    path: Path
    speakers: int
    duration: float

    @property
    def rttm(self) -> Path:
        """The ground truth next to the audio."""
        return self.path.with_suffix(".rttm")


def check_tools() -> None:
    """Fail early, with a clear message, when a text-to-speech or audio tool is missing."""
    missing = [tool for tool in ("espeak-ng", "flite", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing tool(s): {', '.join(missing)} "
                           "(apt-get install espeak-ng flite sox libsox-fmt-all)")  # fmt: skip


def _read_wav(path: Path) -> Audio:
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != RATE or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise RuntimeError(f"{path}: expected 16 kHz mono 16-bit")
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0


def speak(voice: str, text: str, work: Path) -> Audio:
    """One sentence in one voice: 16 kHz float samples trimmed to the voiced part."""
    engine, name, speed, pitch = CANDIDATES[voice]
    raw, resampled = work / "tts.wav", work / "tts16.wav"
    if engine == "espeak-ng":
        command = ["espeak-ng", "-v", name, "-s", str(speed), "-p", str(pitch), "-w", str(raw),
                   text]  # fmt: skip
    else:
        command = ["flite", "-voice", name, "-t", text, "-o", str(raw)]
    subprocess.run(command, check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", str(RATE), "-c", "1", "-b", "16",
                    str(resampled)], check=True, capture_output=True)  # fmt: skip
    audio = _read_wav(resampled)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def _level(audio: Audio, dbfs: float) -> Audio:
    rms = float(np.sqrt(np.mean(audio**2))) or 1.0
    return (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def converse(
    seed: str, speakers: int, seconds: float, work: Path
) -> tuple[Audio, list[Segment], list[str]]:
    """A conversation of about `seconds` between `speakers` voices, and where each spoke."""
    rng = random.Random(seed)
    voices = rng.sample(VOICES, speakers)
    gains = [rng.uniform(-26.0, -20.0) for _ in voices]
    pieces: list[tuple[int, Audio]] = []
    segments: list[Segment] = []
    cursor, last, turns = 0.4, -1, [0] * speakers
    while cursor < seconds - 2.0:
        others = [s for s in range(speakers) if s != last] or [0]
        fewest = min(turns[s] for s in others)
        who = rng.choice([s for s in others if turns[s] == fewest] if rng.random() < 0.6
                         else others)  # fmt: skip
        turns[who] += 1
        if rng.random() < 0.25:
            texts = [rng.choice(REPLIES)]
        else:
            texts = [sentence(rng) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
        for index, text in enumerate(texts):
            audio = _level(speak(voices[who], text, work), gains[who])
            if index:
                cursor += rng.uniform(0.15, 0.5)
            pieces.append((int(cursor * RATE), audio))
            segments.append(Segment(cursor, cursor + len(audio) / RATE, f"spk{who}"))
            cursor += len(audio) / RATE
        if speakers > 1 and rng.random() < 0.12:
            cursor -= rng.uniform(0.2, 0.5)  # the next speaker cuts in
        else:
            cursor += rng.uniform(0.25, 1.0)
        last = who
    length = int((max(s.end for s in segments) + 0.5) * RATE)
    mix = np.zeros(length, np.float32)
    for start, audio in pieces:
        mix[start : start + len(audio)] += audio
    noise_rng = np.random.default_rng(rng.randrange(2**32))
    noise = noise_rng.standard_normal(length).astype(np.float32)
    noise = np.convolve(noise, np.full(4, 0.25, np.float32), mode="same")  # a little duller
    speech_dbfs = float(np.mean(gains))
    mix += _level(noise, speech_dbfs - rng.uniform(28.0, 40.0))
    mix *= min(1.0, 0.9 / float(np.abs(mix).max()))
    return mix, segments, voices


def write(out: Path, audio: Audio, segments: list[Segment], meta: dict[str, object]) -> None:
    """`out`.ogg (sox -R: no random dither), .rttm and .json."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vf-diar-") as tmp:
        raw = Path(tmp) / "mix.wav"
        with wave.open(str(raw), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
        partial = out.with_name(f".{out.stem}.partial.ogg")
        subprocess.run(["sox", "-R", str(raw), "--comment", "", "-C", str(VORBIS_QUALITY),
                        str(partial)], check=True, capture_output=True)  # fmt: skip
    lines = [f"SPEAKER {out.stem} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> {s.speaker} "
             "<NA> <NA>" for s in sorted(segments, key=lambda s: s.start)]  # fmt: skip
    out.with_suffix(".rttm").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    partial.replace(out.with_suffix(".ogg"))


def conversation(out: Path, seed: str, speakers: int, seconds: float) -> Conversation:
    """Generate one conversation at `out` (.ogg, .rttm, .json) unless it is already there."""
    if not all(out.with_suffix(s).is_file() for s in (".ogg", ".rttm", ".json")):
        with tempfile.TemporaryDirectory(prefix="vf-tts-") as tmp:
            audio, segments, voices = converse(seed, speakers, seconds, Path(tmp))
        meta = {"seed": seed, "speakers": speakers, "voices": voices,
                "duration": round(len(audio) / RATE, 3)}  # fmt: skip
        write(out, audio, segments, meta)
    meta = json.loads(out.with_suffix(".json").read_text())
    return Conversation(out.with_suffix(".ogg"), int(meta["speakers"]), float(meta["duration"]))


def build(root: Path, files: int, seed: int, seconds: float) -> list[Conversation]:
    """`files` conversations of about `seconds`, with 1, 2, 3, 4, 1, 2... speakers."""
    check_tools()
    folder = root / f"seed{seed}-{seconds:g}s"
    return [
        conversation(folder / f"conv_{i:03d}", f"{seed}-{seconds:g}-{i}", 1 + i % 4, seconds)
        for i in range(files)
    ]


app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0])


@app.command()
def generate(
    directory: Annotated[Path, typer.Option("--dir", help="Cache directory.")] = DEFAULT_DIR,
    files: Annotated[int, typer.Option(min=1, help="Conversations.")] = 24,
    seconds: Annotated[float, typer.Option(min=10, help="Length of each.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of texts, voices and timing.")] = 0,
) -> None:
    """Generate (or find cached) conversations and print where they are."""
    made = build(directory.resolve(), files, seed, seconds)
    total = sum(c.duration for c in made)
    print(f"{len(made)} conversation(s), {total:.0f} s of audio in {made[0].path.parent}")


@app.command("test-set")
def make_test_set(out: Annotated[Path, typer.Option(help="Folder.")] = TEST_SET_DIR) -> None:
    """The small fixed set the tests use (committed; rerun only to change it)."""
    check_tools()
    plan = [(1, 35.0), (2, 45.0), (2, 50.0), (3, 50.0), (4, 55.0)]
    for index, (speakers, seconds) in enumerate(plan):
        made = conversation(out / f"conv{index}_{speakers}spk", f"test-{index}", speakers, seconds)
        print(f"{made.path.name}: {made.speakers} speaker(s), {made.duration:.1f} s, "
              f"{made.path.stat().st_size // 1024} KiB")  # fmt: skip


@app.command()
def voices(sentences: Annotated[int, typer.Option(min=4, help="Per voice.")] = 12) -> None:
    """For every pair of candidate voices, the share of windows GE2E puts on the wrong one."""
    from transcription_worker.diarization.ge2e import GE2EEncoder, GE2EWeights
    from transcription_worker.diarization.mel import mel_spectrogram

    check_tools()
    encoder = GE2EEncoder(GE2EWeights.load())
    rng = random.Random(0)
    texts = [sentence(rng) for _ in range(sentences)]
    halves: dict[str, tuple[Audio, Audio]] = {}
    with tempfile.TemporaryDirectory(prefix="vf-tts-") as tmp:
        for name in CANDIDATES:
            embeds = []
            for text in texts:
                mel = mel_spectrogram(speak(name, text, Path(tmp)))
                starts = np.arange(0, max(1, len(mel) - 159), 40)
                embeds.append(encoder.embed_windows(mel, starts[starts + 160 <= len(mel)]))
            half = sentences // 2
            halves[name] = (np.concatenate(embeds[:half]), np.concatenate(embeds[half:]))
    names = list(CANDIDATES)
    centroids = {n: halves[n][0].mean(0) / np.linalg.norm(halves[n][0].mean(0)) for n in names}
    print("wrong-side windows (%) per pair; centroid cosine in brackets")
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append(f"{'-':>10}")
                continue
            pair = np.stack([centroids[a], centroids[b]])
            wrong = np.mean(np.concatenate([
                np.argmax(halves[a][1] @ pair.T, axis=1) != 0,
                np.argmax(halves[b][1] @ pair.T, axis=1) != 1,
            ]))  # fmt: skip
            cells.append(f"{100 * wrong:4.0f}({centroids[a] @ centroids[b]:.2f})")
        print(f"{a:>18} " + "".join(cells))
    print(" " * 19 + "".join(f"{n[:9]:>10}" for n in names))


if __name__ == "__main__":
    app()
