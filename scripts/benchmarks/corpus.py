"""Synthetic speech for the throughput benchmark: long recordings, voice notes, a memory file.

    uv run python -m scripts.benchmarks.corpus [--dir .voxflow/bench-corpus] [--long 10]
        [--notes 100] [--quick] [--seed 0]

Text comes from a seeded generator of plain English sentences (common words, no digits, no
homophones that Whisper could spell two ways), so `tiny.en` transcribes it well and a
reference transcript exists for every file. Each recording gets its own espeak-ng voice
(en-us, en-gb, en-gb-x-rp), speed (140..170 words a minute) and pitch; sentences are spoken
one at a time and joined with 0.3..0.9 s of silence, then resampled to 16 kHz mono Ogg
Vorbis with sox. Next to `name.ogg` sit `name.txt` (the exact spoken text, the WER
reference) and `name.json` (voice, speed, pitch, duration).

Files are cached: a directory per kind and size (`long-300s-seed0/`, `notes-15s-seed0/`,
`memory-3600s-from-300s-seed0/`) keeps what it generated, and a file depends only on its
kind, size, index and seed, so a smaller run reuses a prefix of a larger one's files.
The memory file is long recordings (of the same size and seed) laid end to end until it
reaches its length. Requires espeak-ng and sox (with Ogg Vorbis).

The benchmarks' usual sets (seed 0, two generated at once) are `five_minute_recordings` and
`notes_of`. This module imports nothing of the harness: the diarization benchmark's child
process, which measures its own memory, imports it (for `sentence`).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import typer

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".voxflow" / "bench-corpus"
CorpusDirOption = Annotated[Path, typer.Option(help="Corpus cache.")]
FiveMinutesOption = Annotated[int, typer.Option(help="5-minute recordings.", min=1)]
OUTPUT_RATE = 16_000
VORBIS_QUALITY = 2  # about 32 kbit/s for 16 kHz mono speech
VOICES = ("en-us", "en-gb", "en-gb-x-rp")
Samples = npt.NDArray[np.int16]
LEAD_IN_SECONDS = 0.3
TAIL_SECONDS = 0.5

# Plain, common words with one usual spelling each: no numbers (Whisper writes digits), no
# British/American spelling pairs, no homophones in slots (there/their, week/weak).
WORDS: dict[str, tuple[str, ...]] = {
    "name": ("John", "Mary", "Peter", "David", "Laura", "Michael", "James", "Emma", "Robert",
             "Linda", "Thomas", "Helen", "Daniel", "Susan", "Paul", "Karen"),
    "place": ("park", "library", "market", "station", "beach", "office", "garden", "hospital",
              "museum", "school", "airport", "bank", "river", "bakery", "village", "harbor"),
    "time": ("tomorrow morning", "this afternoon", "tonight", "next week", "on Monday",
             "on Friday", "after lunch", "before dinner", "this evening", "on Sunday"),
    "food": ("bread", "apples", "milk", "coffee", "rice", "cheese", "fresh fruit", "vegetables",
             "eggs", "chicken", "soup", "butter", "tomatoes", "potatoes"),
    "verb": ("check", "update", "finish", "review", "clean", "fix", "move", "print", "sign",
             "send", "change", "test", "open", "close", "repair", "paint"),
    "thing": ("report", "printer", "computer", "window", "door", "kitchen table", "budget",
              "contract", "schedule", "plan", "letter", "car", "phone", "camera", "bicycle",
              "garden gate", "old desk", "big box"),
    "adj": ("old", "big", "small", "new", "heavy", "blue", "white", "black", "green", "red",
            "brown", "yellow"),
    "room": ("kitchen", "office", "meeting room", "living room", "garage", "hallway",
             "basement", "bedroom", "front room", "studio"),
    "topic": ("project", "budget", "schedule", "plan", "report", "design", "customer list",
              "training", "holiday plans", "sales figures", "new product", "weekly update",
              "office move", "team dinner"),
    "quality": ("good", "better", "difficult", "easy", "expensive", "simple", "strange",
                "great", "ready", "late"),
    "role": ("manager", "doctor", "teacher", "driver", "engineer", "lawyer", "customer",
             "designer", "nurse", "farmer", "pilot", "baker"),
    "weather": ("cold", "warm", "rainy", "windy", "cloudy", "sunny", "wet", "dry"),
    "daypart": ("morning", "afternoon", "evening", "day"),
    "relative": ("brother", "sister", "mother", "father", "uncle", "aunt", "cousin", "friend"),
    "period": ("week", "month", "year"),
    "season": ("spring", "summer", "autumn", "winter"),
    "subject": ("history", "music", "science", "cooking", "travel", "animals", "the ocean",
                "old trains", "mountains", "painting"),
}  # fmt: skip

TEMPLATES = (
    "{name} went to the {place} {time} to buy some {food}.",
    "We need to {verb} the {thing} before the end of the {period}.",
    "Please remember to {verb} the {thing} {time}.",
    "The {adj} {thing} in the {room} is not working again.",
    "I think we should ask {name} about the {topic}.",
    "{name} said that the {topic} looks {quality} this {period}.",
    "After lunch I will call the {role} and ask about the {topic}.",
    "The weather was {weather} so we stayed in the {room} all {daypart}.",
    "My {relative} wants to visit the {place} next {period}.",
    "Do not forget to bring the {thing} to the meeting {time}.",
    "The {role} told us that the {topic} is almost ready.",
    "We talked about the {topic} for a long time and then went home.",
    "It is important to {verb} the {thing} every {period}.",
    "{name} and {name2} will work on the {topic} together.",
    "There is a small problem with the {thing} in the {room}.",
    "I would like to {verb} the {thing} as soon as possible.",
    "The children played in the {place} until it was dark.",
    "Yesterday I read a good book about {subject}.",
    "The new {thing} is much better than the old one.",
    "Can you send me the {topic} before the meeting?",
    "Thank you for your help with the {topic}.",
    "We should plan a short trip to the {place} in the {season}.",
    "The {role} is very busy today, so please be patient.",
    "I still have to {verb} the {thing} and clean the {room}.",
    "Let us meet at the {place} in the {daypart}.",
    "My {relative} made soup with {food} and {food2} for dinner.",
    "When the {weather} weather comes back, we will walk to the {place}.",
    "{name} asked me to {verb} the {thing} while she was away.",
    "The {role} from the {place} will come by {time}.",
    "I left my {thing} at the {place}, so I have to go back.",
)


def sentence(rng: random.Random) -> str:
    """One sentence from a random template with random words in its slots."""
    template = rng.choice(TEMPLATES)
    name, name2 = rng.sample(WORDS["name"], 2)
    food, food2 = rng.sample(WORDS["food"], 2)
    slots = {key: rng.choice(values) for key, values in WORDS.items()}
    slots.update(name=name, name2=name2, food=food, food2=food2)
    return template.format(**slots)


@dataclass(frozen=True)
class Recording:
    """One generated file with its reference text."""

    path: Path
    text: str
    duration: float

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name

    @classmethod
    def load(cls, path: Path) -> Recording:
        """Read a generated recording's text and metadata."""
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(path, path.with_suffix(".txt").read_text().strip(), float(meta["duration"]))


def _present(path: Path) -> bool:
    return all(path.with_suffix(s).is_file() for s in (".ogg", ".txt", ".json"))


def _speak(
    text: str, voice: str, speed: int, pitch: int, expected_rate: int, work: Path
) -> Samples:
    """espeak-ng's samples (mono int16 at its native rate) for one sentence."""
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=work) as handle:
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", handle.name,
             text],
            check=True, capture_output=True,
        )  # fmt: skip
        with wave.open(handle.name, "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise RuntimeError(f"unexpected espeak-ng output format for {text!r}")
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    if rate != expected_rate:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {expected_rate} Hz")
    return np.frombuffer(frames, dtype=np.int16)


def _espeak_rate(work: Path) -> int:
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=work) as handle:
        subprocess.run(["espeak-ng", "-w", handle.name, "a"], check=True, capture_output=True)
        with wave.open(handle.name, "rb") as wav:
            return wav.getframerate()


def _encode(samples: Samples, rate: int, out: Path, work: Path) -> None:
    """Write int16 samples at `rate` as 16 kHz mono Ogg Vorbis at `out` (atomically)."""
    raw = work / f"{out.stem}.wav"
    with wave.open(str(raw), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype(np.int16).tobytes())
    partial = out.with_name(f".{out.stem}.partial.ogg")
    subprocess.run(
        ["sox", str(raw), "--comment", "", "-C", str(VORBIS_QUALITY), "-r", str(OUTPUT_RATE),
         "-c", "1", str(partial)],
        check=True, capture_output=True,
    )  # fmt: skip
    raw.unlink()
    partial.replace(out)


def _duration(path: Path) -> float:
    result = subprocess.run(
        ["soxi", "-D", str(path)], check=True, capture_output=True, text=True
    )  # fmt: skip
    return float(result.stdout.strip())


def generate_speech(
    out: Path, *, seed: str, target_seconds: float, slack_seconds: float, work: Path
) -> Recording:
    """Speak random sentences in one random voice until about `target_seconds` of audio.

    Sentences are added while the audio is shorter than the target; one that would end past
    target + slack is replaced by another (notes stay close to their length, long ones end
    just past it).
    """
    rng = random.Random(seed)
    voice = rng.choice(VOICES)
    speed = rng.randint(140, 170)
    pitch = rng.randint(35, 65)
    rate = _espeak_rate(work)
    pieces: list[Samples] = [np.zeros(int(LEAD_IN_SECONDS * rate), np.int16)]
    spoken: list[str] = []
    total = LEAD_IN_SECONDS + TAIL_SECONDS
    refused = 0
    while total < target_seconds and refused < 50:
        text = sentence(rng)
        audio = _speak(text, voice, speed, pitch, rate, work)
        pause = rng.uniform(0.3, 0.9) if spoken else 0.0
        length = len(audio) / rate + pause
        if spoken and total + length > target_seconds + slack_seconds:
            refused += 1
            continue
        if spoken:
            pieces.append(np.zeros(int(pause * rate), np.int16))
        pieces.append(audio)
        spoken.append(text)
        total += length
    pieces.append(np.zeros(int(TAIL_SECONDS * rate), np.int16))
    text = " ".join(spoken)
    out.with_suffix(".txt").write_text(text + "\n")
    _encode(np.concatenate(pieces), rate, out.with_suffix(".ogg"), work)
    meta = {
        "voice": voice,
        "speed_wpm": speed,
        "pitch": pitch,
        "sentences": len(spoken),
        "words": len(text.split()),
        "duration": _duration(out.with_suffix(".ogg")),
        "seed": seed,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return Recording.load(out.with_suffix(".ogg"))


def _generate_all(
    paths: list[Path], make: Callable[[Path, int, Path], Recording], workers: int
) -> list[Recording]:
    """Generate the missing recordings in parallel and load all of them, in order."""
    missing = [(i, p) for i, p in enumerate(paths) if not _present(p)]
    if missing:
        print(f"generating {len(missing)} recording(s) in {paths[0].parent}", file=sys.stderr)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix="vf-corpus-") as tmp,
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        ):
            for done in pool.map(lambda item: make(item[1], item[0], Path(tmp)), missing):
                print(f"  {done.name}: {done.duration:.1f}s", file=sys.stderr)
    return [Recording.load(p.with_suffix(".ogg")) for p in paths]


def long_recordings(
    root: Path, count: int, seconds: float, seed: int, workers: int
) -> list[Recording]:
    """`count` recordings of about `seconds` each (they end up to 10 s past it)."""
    folder = root / f"long-{seconds:g}s-seed{seed}"
    paths = [folder / f"long_{i:03d}.ogg" for i in range(count)]

    def make(path: Path, index: int, work: Path) -> Recording:
        return generate_speech(
            path, seed=f"long-{seconds:g}-{seed}-{index}", target_seconds=seconds,
            slack_seconds=10.0, work=work,
        )  # fmt: skip

    return _generate_all(paths, make, workers)


def voice_notes(root: Path, count: int, seconds: float, seed: int, workers: int) -> list[Recording]:
    """`count` notes of `seconds` +- 2 s (+ 3 s at most)."""
    folder = root / f"notes-{seconds:g}s-seed{seed}"
    paths = [folder / f"note_{i:03d}.ogg" for i in range(count)]

    def make(path: Path, index: int, work: Path) -> Recording:
        return generate_speech(
            path, seed=f"note-{seconds:g}-{seed}-{index}", target_seconds=seconds - 2.0,
            slack_seconds=5.0, work=work,
        )  # fmt: skip

    return _generate_all(paths, make, workers)


def memory_recording(
    root: Path, seconds: float, long_seconds: float, seed: int, workers: int
) -> Recording:
    """Long recordings (`long_000`, `long_001`, ...) end to end until at least `seconds`."""
    folder = root / f"memory-{seconds:g}s-from-{long_seconds:g}s-seed{seed}"
    out = folder / "memory.ogg"
    if _present(out):
        return Recording.load(out)
    parts = long_recordings(root, 1, long_seconds, seed, workers)
    while sum(p.duration for p in parts) < seconds:
        parts = long_recordings(root, len(parts) + 1, long_seconds, seed, workers)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"joining {len(parts)} long recordings into {out}", file=sys.stderr)
    partial = out.with_name(".memory.partial.ogg")
    subprocess.run(
        ["sox", *(str(p.path) for p in parts), "--comment", "", "-C", str(VORBIS_QUALITY),
         str(partial)],
        check=True, capture_output=True,
    )  # fmt: skip
    out.with_suffix(".txt").write_text(" ".join(p.text for p in parts) + "\n")
    partial.replace(out)
    meta = {"parts": [p.name for p in parts], "duration": _duration(out), "seed": seed}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return Recording.load(out)


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate."""

    long_count: int = 10
    long_seconds: float = 300.0
    note_count: int = 100
    note_seconds: float = 15.0
    memory_seconds: float = 3600.0
    seed: int = 0

    @classmethod
    def quick(cls) -> CorpusSpec:
        """A small corpus for a fast check."""
        return cls(long_count=2, long_seconds=60.0, note_count=16, memory_seconds=300.0)


@dataclass(frozen=True)
class Corpus:
    """The generated workloads."""

    long: list[Recording]
    notes: list[Recording]
    memory: list[Recording]  # the files the memory phase transcribes, shortest first


def check_tools() -> None:
    """Fail early, with a clear message, when espeak-ng or sox is missing."""
    missing = [tool for tool in ("espeak-ng", "sox", "soxi") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing tool(s): {', '.join(missing)} (install espeak-ng and sox)")


def five_minute_recordings(count: int, root: Path = DEFAULT_DIR) -> list[Recording]:
    """`count` long recordings of about 5 minutes (seed 0), generated when missing."""
    check_tools()
    return long_recordings(root.resolve(), count, 300.0, 0, 2)


def notes_of(seconds: float, count: int, root: Path = DEFAULT_DIR) -> list[Recording]:
    """`count` voice notes of about `seconds` (seed 0), generated when missing."""
    check_tools()
    return voice_notes(root.resolve(), count, seconds, 0, 2)


def build(
    spec: CorpusSpec,
    root: Path = DEFAULT_DIR,
    *,
    workers: int = 2,
    memory: bool = True,
) -> Corpus:
    """Generate what is missing under `root` and return the workloads.

    The memory files are a ~5-minute one (`long_000` when long recordings are about
    5 minutes, else long recordings joined to 5 minutes) and, when `memory_seconds` is
    longer than that, one of `memory_seconds`.
    """
    check_tools()
    long = long_recordings(root, spec.long_count, spec.long_seconds, spec.seed, workers)
    notes = voice_notes(root, spec.note_count, spec.note_seconds, spec.seed, workers)
    files: list[Recording] = []
    if memory:
        five_minutes = 300.0
        if spec.long_seconds >= 0.8 * five_minutes:
            files.append(long_recordings(root, 1, spec.long_seconds, spec.seed, workers)[0])
        else:
            files.append(
                memory_recording(root, five_minutes, spec.long_seconds, spec.seed, workers)
            )
        if spec.memory_seconds > files[0].duration + 1.0:
            files.append(
                memory_recording(root, spec.memory_seconds, spec.long_seconds, spec.seed, workers)
            )
    return Corpus(long=long, notes=notes, memory=files)


def main(
    directory: Annotated[Path, typer.Option("--dir", help="Cache directory.")] = DEFAULT_DIR,
    long: Annotated[int | None, typer.Option(min=0, help="Long recordings (10).")] = None,
    notes: Annotated[int | None, typer.Option(min=0, help="Voice notes (100).")] = None,
    quick: Annotated[
        bool, typer.Option(help="2 long of ~1 min, 16 notes, a 5-minute memory file.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the text and voice choices.")] = 0,
    memory_seconds: Annotated[
        float | None, typer.Option(help="Length of the memory file (3600; 300 with --quick).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Recordings generated at once.")] = 2,
) -> None:
    """Generate (or find cached) benchmark recordings and print where they are."""
    spec = CorpusSpec.quick() if quick else CorpusSpec()
    spec = CorpusSpec(
        long_count=spec.long_count if long is None else long,
        long_seconds=spec.long_seconds,
        note_count=spec.note_count if notes is None else notes,
        note_seconds=spec.note_seconds,
        memory_seconds=spec.memory_seconds if memory_seconds is None else memory_seconds,
        seed=seed,
    )
    corpus = build(spec, directory.resolve(), workers=workers)
    for label, items in (("long", corpus.long), ("notes", corpus.notes), ("memory", corpus.memory)):
        if items:
            total = sum(r.duration for r in items)
            lengths = f"{min(r.duration for r in items):.1f}..{max(r.duration for r in items):.1f}"
            print(
                f"{label}: {len(items)} file(s), {total:.0f}s of audio ({lengths}s each) "
                f"in {items[0].path.parent}"
            )


if __name__ == "__main__":
    typer.run(main)
