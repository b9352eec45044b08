"""What every diarization backend returns and promises: who spoke when, and what they sound like.

A backend takes 16 kHz mono float32 samples and returns a `Diarization`: `turns` (when each
speaker talked) and `centroids` (one L2-normalised embedding per speaker, row i for speaker
i). Speakers are numbered 0..n-1 in order of first appearance, so the first voice heard is
always speaker 0 ("A"), whatever the clustering called it.

Known speakers: `voice_print` embeds a short reference clip of a named person in the same
space as the centroids; `name_speakers` then matches clusters to reference voices by cosine
similarity. Embeddings of different backends live in different spaces (GE2E here, pyannote's
own model there): compare a voice print only with centroids of the backend that made it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]
Embeddings = npt.NDArray[np.float32]


class DiarizerUnavailableError(RuntimeError):
    """The configured backend cannot run on this worker (not installed, no model)."""


@dataclass(frozen=True)
class Turn:
    """One stretch of one speaker's voice, in seconds from the start of the recording."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class Diarization:
    """A backend's answer: sorted turns and each speaker's centroid embedding (n x dim)."""

    turns: list[Turn]
    centroids: Embeddings = field(repr=False)

    @property
    def speakers(self) -> int:
        """How many speakers were found (0 for a recording without speech)."""
        return int(self.centroids.shape[0])


class Diarizer(Protocol):
    """A diarization backend: the offline GE2E engine or pyannote."""

    def diarize(
        self,
        samples: Samples,
        *,
        speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization:
        """Who spoke when: `speakers` is an exact count, min/max bound the estimate.

        Turns are sorted; touching turns of one speaker are one turn; silences are left out
        (so one speaker's pauses separate their turns).
        """
        ...

    def voice_print(self, samples: Samples) -> Embeddings:
        """One L2-normalised embedding of a reference clip, comparable with the centroids."""
        ...


def speaker_bounds(
    speakers: int | None, min_speakers: int | None, max_speakers: int | None, ceiling: int
) -> tuple[int, int]:
    """The (lowest, highest) speaker count allowed, checked, with `ceiling` as default top."""
    for name, value in (("speakers", speakers), ("min_speakers", min_speakers),
                        ("max_speakers", max_speakers)):  # fmt: skip
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if speakers is not None:
        return speakers, speakers
    low = min_speakers or 1
    high = max_speakers or max(ceiling, low)
    if low > high:
        raise ValueError(f"min_speakers ({low}) is above max_speakers ({high})")
    return low, high


def merge_turns(turns: Iterable[Turn], gap: float = 0.0) -> list[Turn]:
    """Sorted turns with consecutive same-speaker turns (at most `gap` apart) joined."""
    merged: list[Turn] = []
    for turn in sorted(turns, key=lambda t: (t.start, t.end)):
        last = merged[-1] if merged else None
        if last is not None and last.speaker == turn.speaker and turn.start - last.end <= gap:
            merged[-1] = Turn(last.start, max(last.end, turn.end), last.speaker)
        else:
            merged.append(turn)
    return merged


def by_appearance(turns: list[Turn], centroids: Embeddings) -> Diarization:
    """Renumber speakers 0..n-1 in order of first appearance; drop speakers never heard."""
    order: dict[int, int] = {}
    for turn in sorted(turns, key=lambda t: t.start):
        order.setdefault(turn.speaker, len(order))
    renumbered = [Turn(t.start, t.end, order[t.speaker]) for t in turns]
    kept = sorted(order, key=order.__getitem__)
    dim = centroids.shape[1] if centroids.ndim == 2 else 0
    rows = centroids[kept] if kept else np.zeros((0, dim), np.float32)
    return Diarization(merge_turns(renumbered), np.ascontiguousarray(rows, dtype=np.float32))


def name_speakers(
    diarization: Diarization, known: Mapping[str, Embeddings], threshold: float = 0.75
) -> dict[int, str]:
    """Which speaker is which named reference voice (cosine similarity above `threshold`).

    Pairs are taken best first, each speaker and each name at most once, so two clusters
    never get the same name. Speakers left unmatched keep no name.
    """
    if not known or diarization.speakers == 0:
        return {}
    names = list(known)
    prints = np.stack([known[name] / np.linalg.norm(known[name]) for name in names])
    centroids = diarization.centroids
    similarity = (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)) @ prints.T
    result: dict[int, str] = {}
    for flat in np.argsort(similarity, axis=None)[::-1]:
        speaker, name = divmod(int(flat), len(names))
        if similarity[speaker, name] < threshold:
            break
        if speaker not in result and names[name] not in result.values():
            result[speaker] = names[name]
    return result
