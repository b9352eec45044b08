"""Subtitle cues (shared by SRT and WebVTT): segments wrapped, split and timed.

Each cue has at most ``max_lines`` lines of at most ``max_line_chars`` characters (see
:mod:`voxflow.transcript_formats.wrapping`).  A segment that needs more lines is split
into several consecutive cues: at the words' own start times when the segment has word
timestamps that match its text, otherwise with times divided in proportion to
character count.  Cues of a segment are contiguous and cover exactly the segment's time
span.  Scripts written without spaces (Chinese, Japanese, ...) have no word boundaries
to wrap on, so such a segment stays one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from voxflow.transcript_formats.segments import finite
from voxflow.transcript_formats.speakers import speaker_of
from voxflow.transcript_formats.wrapping import cue_bounds, wrap


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: its time span, its lines and who speaks (as shown)."""

    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None

    def times(self, separator: str) -> str:
        """``start --> end`` with ``separator`` before the milliseconds (SRT ``,``, VTT ``.``)."""
        return f"{_timestamp(self.start, separator)} --> {_timestamp(self.end, separator)}"


def transcript_cues(
    segments: list[dict[str, Any]], max_line_chars: int, max_lines: int, shown: dict[str, str]
) -> list[Cue]:
    """The cues of all cleaned segments, in order; ``shown`` maps speaker labels to names."""
    return [
        cue
        for seg in segments
        for cue in _segment_cues(seg, max_line_chars, max_lines, speaker_of(seg, shown))
    ]


def _segment_cues(
    segment: dict[str, Any], max_line_chars: int, max_lines: int, speaker: str | None = None
) -> list[Cue]:
    """The cues of one segment: wrapped, split when too long, timed inside the segment."""
    start = float(segment["start"])
    end = max(float(segment["end"]), start)
    words = segment["text"].split()
    word_starts = _word_starts(segment, words, start, end)
    lengths = [len(word) for word in words]
    bounds = cue_bounds(lengths, max_line_chars, max_lines)
    # Offsets of each word in the space-joined text, for proportional timing.
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length + 1)
    total = max(offsets[-1] - 1, 1)
    cues: list[Cue] = []
    cue_start = start
    for first, stop in bounds:
        if stop == len(words):
            cue_end = end
        elif word_starts is not None:
            cue_end = word_starts[stop]
        else:
            cue_end = start + (end - start) * offsets[stop] / total
        cue_end = min(max(cue_end, cue_start), end)
        lines = wrap(words[first:stop], max_line_chars)
        cues.append(Cue(cue_start, cue_end, lines, speaker))
        cue_start = cue_end
    return cues


def _word_starts(
    segment: dict[str, Any], words: list[str], start: float, end: float
) -> list[float] | None:
    """Start time of each of ``words`` from the segment's word timestamps.

    Whisper's words carry their leading space (``" Hello"``); one that does not
    (``"-five"`` after ``" twenty"``) continues the previous text word.  Returns None
    unless the timestamps are usable and spell exactly the segment's text.  Times are
    clamped into the segment and made non-decreasing.
    """
    raw_words = segment.get("words")
    if not isinstance(raw_words, list) or not raw_words:
        return None
    pieces: list[str] = []
    starts: list[float] = []
    for raw in raw_words:
        if not isinstance(raw, dict):
            return None
        word = str(raw.get("word") or "")
        word_start = finite(raw.get("start"))
        if word_start is None:
            return None
        if not word.strip():
            continue
        if pieces and not word[0].isspace():
            pieces[-1] += word
        else:
            pieces.append(word)
            starts.append(word_start)
    if [piece.strip() for piece in pieces] != words:
        return None
    clamped: list[float] = []
    floor = start
    for word_start in starts:
        floor = min(max(word_start, floor), end)
        clamped.append(floor)
    return clamped


# --- timestamps -------------------------------------------------------------------


def _milliseconds(seconds: float) -> int:
    """Seconds -> whole milliseconds, rounding half up on the decimal value.

    Rounding is done once on the total, so 59.9996 s becomes 60000 ms (00:01:00,000),
    never a seconds field of 60.  ``Decimal(repr(...))`` rounds the number as written
    (1.0005 -> 1001 ms) instead of its binary approximation (1000.4999...).
    """
    value = float(seconds)
    if math.isnan(value) or value <= 0:
        return 0
    if math.isinf(value):
        raise ValueError("A segment timestamp is infinite")
    ms = (Decimal(repr(value)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(ms)


def _timestamp(seconds: float, separator: str) -> str:
    hours, rest = divmod(_milliseconds(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1_000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"
