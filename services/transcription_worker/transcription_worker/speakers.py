"""Speakers in the transcript: a diarization's turns laid over the decoded segments.

The diarizer says who spoke when (turns of speaker 0, 1, ...); Whisper says what was said
(segments, and words when word timestamps are on). This module joins them as WhisperX
does: each word goes to the speaker whose turns overlap it most (the nearest turn when
none does), and a segment whose words change speaker is split there, so that every
segment has one speaker. A segment without words goes whole to its most-overlapping
speaker. Speakers are labelled `A`, `B`, ... in order of first appearance (OpenAI's
convention), and listed with their talk time.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from transcription_worker.diarization.base import DiarizerUnavailableError

if TYPE_CHECKING:
    from transcription_worker.diarization import Diarizer
    from transcription_worker.settings import DiarizationSettings


class TurnLike(Protocol):
    """Who spoke when: what the diarizers' turns provide."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def speaker(self) -> int: ...


def label(index: int) -> str:
    """The label of the `index`-th speaker: A ... Z, then AA, AB, ..."""
    letters = string.ascii_uppercase
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = letters[rest] + text
    return text


@dataclass(frozen=True)
class Attributed:
    """Segments with one speaker each, and the speakers' list."""

    segments: list[dict[str, Any]]
    speakers: list[dict[str, Any]]  # {"label", "name", "talk_seconds"}, by first appearance
    labels: dict[int, str]  # the diarizer's speaker index -> label


def _speaker(turns: Sequence[TurnLike], start: float, end: float) -> int | None:
    """The speaker whose turns overlap `start..end` most; the nearest turn's when none do."""
    overlap: dict[int, float] = {}
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=lambda speaker: (overlap[speaker], -speaker))
    if not turns:
        return None
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: max(t.start - middle, middle - t.end, 0.0))
    return nearest.speaker


def _pieces(
    segment: dict[str, Any], turns: Sequence[TurnLike]
) -> list[tuple[int | None, dict[str, Any]]]:
    """The segment split where its words change speaker (whole when it has no words)."""
    words = segment.get("words")
    if not isinstance(words, list) or not words:
        return [(_speaker(turns, float(segment["start"]), float(segment["end"])), segment)]
    runs: list[tuple[int | None, list[dict[str, Any]]]] = []
    for word in words:
        speaker = _speaker(turns, float(word["start"]), float(word["end"]))
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    if len(runs) == 1:
        return [(runs[0][0], segment)]
    pieces = []
    for index, (speaker, run) in enumerate(runs):
        piece = {key: value for key, value in segment.items() if key != "tokens"}
        piece["start"] = float(segment["start"]) if index == 0 else float(run[0]["start"])
        piece["end"] = float(segment["end"]) if index == len(runs) - 1 else float(run[-1]["end"])
        piece["text"] = "".join(str(w["word"]) for w in run).strip()
        piece["words"] = run
        pieces.append((speaker, piece))
    return pieces


def attribute(
    segments: list[dict[str, Any]],
    turns: Sequence[TurnLike],
    names: Mapping[int, str] | None = None,
) -> Attributed:
    """Give every segment and word a speaker label; `names` names the diarizer's speakers."""
    labels: dict[int, str] = {}
    attributed: list[dict[str, Any]] = []
    for segment in segments:
        for speaker, piece in _pieces(segment, turns):
            if speaker is not None and speaker not in labels:
                labels[speaker] = label(len(labels))
            out = {**piece, "id": len(attributed)}
            if speaker is not None:
                out["speaker"] = labels[speaker]
                if isinstance(out.get("words"), list):
                    out["words"] = [{**w, "speaker": labels[speaker]} for w in out["words"]]
            attributed.append(out)
    talk: dict[int, float] = {}
    for turn in turns:
        talk[turn.speaker] = talk.get(turn.speaker, 0.0) + max(0.0, turn.end - turn.start)
    speakers = [
        {
            "label": text,
            "name": (names or {}).get(index),
            "talk_seconds": round(talk.get(index, 0.0), 2),
        }
        for index, text in labels.items()
    ]
    return Attributed(attributed, speakers, labels)


_diarizers: dict[tuple[str, str], Diarizer] = {}
_lock = threading.Lock()


def diarizer(settings: DiarizationSettings) -> Diarizer:
    """The configured diarization backend, built once per process (models load lazily)."""
    key = (settings.diarization_backend, str(settings.pyannote_model_dir))
    with _lock:
        if key not in _diarizers:
            _diarizers[key] = _build(settings)
        return _diarizers[key]


def _build(settings: DiarizationSettings) -> Diarizer:
    if settings.diarization_backend == "offline":
        from transcription_worker.diarization.offline import OfflineDiarizer, OfflineOptions

        return OfflineDiarizer(OfflineOptions(max_speakers=settings.diarization_max_speakers))
    if settings.pyannote_model_dir is None:
        raise DiarizerUnavailableError(
            "VOXFLOW_DIARIZATION_BACKEND is pyannote but VOXFLOW_PYANNOTE_MODEL_DIR is not set."
        )
    try:
        from transcription_worker.diarization.pyannote_backend import PyannoteDiarizer
    except ImportError as exc:
        raise DiarizerUnavailableError(str(exc)) from exc
    return PyannoteDiarizer(settings.pyannote_model_dir)
