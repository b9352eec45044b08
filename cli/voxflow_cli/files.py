"""Which files `voxflow submit` uploads, and where their transcripts are written."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# What a folder or a glob contributes: recordings by extension (FFmpeg reads them all; the
# ingestion API decides what it accepts). A file named on the command line is always taken.
AUDIO_EXTENSIONS = frozenset({
    ".aac", ".aif", ".aifc", ".aiff", ".amr", ".ape", ".au", ".caf", ".flac", ".m4a", ".m4b",
    ".mka", ".mp1", ".mp2", ".mp3", ".mpga", ".oga", ".ogg", ".opus", ".ra", ".spx", ".wav",
    ".weba", ".wma", ".wv",
})  # fmt: skip
VIDEO_EXTENSIONS = frozenset({
    ".3g2", ".3gp", ".avi", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg",
    ".mts", ".ogv", ".ts", ".webm", ".wmv",
})  # fmt: skip
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
# The file extension of each transcript format (verbose_json is JSON too).
FORMAT_EXTENSIONS = {"txt": ".txt", "srt": ".srt", "vtt": ".vtt", "json": ".json",
                     "verbose_json": ".json"}  # fmt: skip
NOTES_SUFFIX = ".notes.md"
_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True)
class Recording:
    """A file to upload, and its place under `--out`."""

    path: Path
    # Relative to the folder or glob root it was found under (keeps `--out` collision-free
    # when two folders hold files of the same name); just the name for a file named alone.
    relative: Path


def is_media(path: Path) -> bool:
    """Whether a file found in a folder or by a glob looks like audio or video."""
    return path.suffix.lower() in MEDIA_EXTENSIONS and not path.name.startswith(".")


def collect(arguments: Sequence[str]) -> list[Recording]:
    """The recordings named by files, folders (searched recursively) and globs, in order.

    A file reached twice is uploaded once. Raises FileNotFoundError naming an argument that
    is neither an existing path nor a glob.
    """
    found: dict[Path, Recording] = {}
    for argument in arguments:
        for recording in _expand(argument):
            found.setdefault(recording.path.resolve(), recording)
    return list(found.values())


def _expand(argument: str) -> list[Recording]:
    path = Path(argument).expanduser()
    if path.is_dir():
        return [Recording(file, file.relative_to(path)) for file in _walk(path)]
    if path.is_file():
        return [Recording(path, Path(path.name))]
    if not _MAGIC.search(argument):
        raise FileNotFoundError(argument)
    pattern = str(Path(argument).expanduser())
    root = _glob_root(pattern)
    recordings: list[Recording] = []
    # glob.glob, not Path.glob: the pattern may be absolute and its wildcards anywhere.
    for match in sorted(glob.glob(pattern, recursive=True)):  # noqa: PTH207
        matched = Path(match)
        if matched.is_dir():
            recordings += [Recording(file, file.relative_to(root)) for file in _walk(matched)]
        elif is_media(matched):
            recordings.append(Recording(matched, matched.relative_to(root)))
    return recordings


def _walk(folder: Path) -> Iterable[Path]:
    """Media files under `folder`, sorted, skipping hidden files and hidden folders."""
    found: list[Path] = []
    for directory, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(directory, name) for name in files if is_media(Path(name))]
    return sorted(found)


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (`rec/2024/*.ogg` -> `rec/2024`)."""
    parts = Path(pattern).parts
    first_wild = next(index for index, part in enumerate(parts) if _MAGIC.search(part))
    return Path(*parts[:first_wild])


def plan_outputs(recordings: Sequence[Recording], fmt: str, out: Path | None) -> list[Path]:
    """Where each recording's transcript is written: beside it, or under `out` at its relative
    place. A name already planned gets `-2`, `-3`... (`a.ogg` and `a.mp3` both want `a.txt`)."""
    extension = FORMAT_EXTENSIONS[fmt]
    taken: set[str] = set()
    planned: list[Path] = []
    for recording in recordings:
        base = (out / recording.relative if out is not None else recording.path).with_suffix("")
        candidate, number = base.with_name(base.name + extension), 2
        # Compared case-insensitively: on macOS and Windows `A.txt` and `a.txt` are one file.
        while str(candidate.absolute()).lower() in taken:
            candidate, number = base.with_name(f"{base.name}-{number}{extension}"), number + 1
        taken.add(str(candidate.absolute()).lower())
        planned.append(candidate)
    return planned


def notes_path(transcript: Path, fmt: str) -> Path:
    """Where a recording's notes go: beside its transcript (`talk.txt` -> `talk.notes.md`)."""
    stem = transcript.name.removesuffix(FORMAT_EXTENSIONS[fmt])
    return transcript.with_name(stem + NOTES_SUFFIX)
