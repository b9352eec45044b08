"""Render a transcript as plain text, SubRip (SRT), WebVTT, Voxflow JSON or verbose JSON.

Segments are the stored dicts ``{"id", "start", "end", "text", ...}`` with optional
extra keys (``seek``, ``tokens``, ``temperature``, ``avg_logprob``,
``compression_ratio``, ``no_speech_prob``, ``words``); older rows may lack any of
the extras.  In every format segment text is stripped and segments without text are
skipped.

SRT and WebVTT cues are wrapped at ``max_line_chars`` on spaces (a word is never
split; a word longer than the limit gets a line of its own) with at most
``max_lines`` lines per cue.  A segment that needs more lines is split into several
consecutive cues: at the words' own start times when the segment has word timestamps
that match its text, otherwise with times divided in proportion to character count.
Cues of a segment are contiguous and cover exactly the segment's time span, and both
the cues of a segment and the lines of a cue are balanced in length.  SRT cues are
numbered 1, 2, ... over the cues actually written.  Scripts written without spaces
(Chinese, Japanese, ...) have no word boundaries to wrap on, so such a segment stays
one line.

``json`` is Voxflow's own shape (the stored segments as they are, words included).
``verbose_json`` has the shape of OpenAI's ``response_format="verbose_json"``:
language by English name, the standard segment fields, and a top-level ``words``
list only when the transcript has word timestamps.

A diarized transcript's segments (and words) carry a ``speaker`` label (``A``, ``B``, ...),
and ``speakers`` lists them (``label``, ``name`` once renamed, ``talk_seconds``). A speaker
is shown by its name when it has one, else by its label: ``txt`` as ``A: ...`` turns
(consecutive segments of one speaker form one turn), SRT with ``A: `` before each cue,
WebVTT with a voice tag (``<v A>``), ``json`` and ``verbose_json`` with ``speaker`` on each
segment (``json`` also on each word, and its ``speakers`` list).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from voxflow.languages import language_name

__all__ = ["DEFAULT_MAX_LINES", "DEFAULT_MAX_LINE_CHARS", "FORMATS", "render", "speaker_names"]

FORMATS = ("txt", "srt", "vtt", "json", "verbose_json")

DEFAULT_MAX_LINE_CHARS = 42
DEFAULT_MAX_LINES = 2

_MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "verbose_json": "application/json",
}


def render(
    fmt: str,
    *,
    text: str,
    segments: list[dict[str, Any]],
    language: str,
    duration_seconds: float,
    language_probability: float | None = None,
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
    max_lines: int = DEFAULT_MAX_LINES,
    speakers: list[dict[str, Any]] | None = None,
) -> tuple[str, str]:
    """Return ``(body, media_type)`` for ``fmt``, one of :data:`FORMATS`.

    ``max_line_chars`` and ``max_lines`` shape SRT and WebVTT cues only (a speaker's
    ``A: `` prefix comes on top).  ``speakers`` is a diarized transcript's list.  Raises
    ``ValueError`` for an unknown format or a limit below 1.
    """
    if fmt not in _MEDIA_TYPES:
        raise ValueError(f"Unknown transcript format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if max_line_chars < 1 or max_lines < 1:
        raise ValueError("max_line_chars and max_lines must be at least 1")
    shown = speaker_names(speakers)
    cleaned = _clean_segments(segments)
    if fmt == "txt":
        turns = _turns(cleaned, shown)
        body = ("\n\n".join(turns) if turns else _full_text(text, cleaned)) + "\n"
    elif fmt in {"srt", "vtt"}:
        cues = [
            cue
            for seg in cleaned
            for cue in _segment_cues(seg, max_line_chars, max_lines, _speaker_of(seg, shown))
        ]
        body = _render_srt(cues) if fmt == "srt" else _render_vtt(cues)
    elif fmt == "json":
        document: dict[str, Any] = {
            "language": language,
            "language_probability": language_probability,
            "duration_seconds": duration_seconds,
            "text": text.strip(),
            "segments": _named_segments(cleaned, shown),
        }
        if speakers:
            document["speakers"] = speakers
        body = _dump(document)
    else:
        body = _dump(
            _verbose_document(
                cleaned,
                text=text,
                language=language,
                duration_seconds=duration_seconds,
                shown=shown,
            )
        )
    return body, _MEDIA_TYPES[fmt]


# --- speakers ---------------------------------------------------------------------


def speaker_names(speakers: list[dict[str, Any]] | None) -> dict[str, str]:
    """Each speaker's label -> what to show: its name when it has one, else the label."""
    return {
        str(s["label"]): str(s.get("name") or s["label"]) for s in speakers or () if "label" in s
    }


def _speaker_of(segment: dict[str, Any], shown: dict[str, str]) -> str | None:
    label = segment.get("speaker")
    return None if label is None else shown.get(str(label), str(label))


def _named_segments(segments: list[dict[str, Any]], shown: dict[str, str]) -> list[dict[str, Any]]:
    """Segments (and their words) with each speaker label replaced by what is shown."""
    if not shown:
        return segments
    named = []
    for segment in segments:
        copy = {**segment}
        if "speaker" in copy:
            copy["speaker"] = _speaker_of(segment, shown)
        if isinstance(copy.get("words"), list):
            copy["words"] = [
                {**w, "speaker": shown.get(str(w["speaker"]), str(w["speaker"]))}
                if isinstance(w, dict) and w.get("speaker") is not None else w
                for w in copy["words"]
            ]  # fmt: skip
        named.append(copy)
    return named


def _turns(segments: list[dict[str, Any]], shown: dict[str, str]) -> list[str]:
    """``A: ...`` paragraphs, one per run of segments of one speaker; [] when undiarized."""
    if not any(seg.get("speaker") is not None for seg in segments):
        return []
    turns: list[tuple[str | None, list[str]]] = []
    for segment in segments:
        speaker = _speaker_of(segment, shown)
        if turns and turns[-1][0] == speaker:
            turns[-1][1].append(segment["text"])
        else:
            turns.append((speaker, [segment["text"]]))
    return [
        f"{speaker}: {' '.join(texts)}" if speaker else " ".join(texts) for speaker, texts in turns
    ]


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _full_text(text: str, segments: list[dict[str, Any]]) -> str:
    return text.strip() or " ".join(seg["text"] for seg in segments)


def _clean_text(raw: object) -> str:
    """Strip the text and drop blank lines (a blank line would end an SRT/VTT cue)."""
    lines = (line.strip() for line in str(raw or "").splitlines())
    return "\n".join(line for line in lines if line)


def _clean_segments(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    for segment in segments:
        seg_text = _clean_text(segment.get("text"))
        if seg_text:
            cleaned.append({**segment, "text": seg_text})
    return cleaned


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (``bool`` is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


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


# --- cues ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None

    def times(self, separator: str) -> str:
        return f"{_timestamp(self.start, separator)} --> {_timestamp(self.end, separator)}"


def _segment_cues(
    segment: dict[str, Any], max_line_chars: int, max_lines: int, speaker: str | None = None
) -> list[_Cue]:
    """The cues of one segment: wrapped, split when too long, timed inside the segment."""
    start = float(segment["start"])
    end = max(float(segment["end"]), start)
    words = segment["text"].split()
    word_starts = _word_starts(segment, words, start, end)
    lengths = [len(word) for word in words]
    bounds = _cue_bounds(lengths, max_line_chars, max_lines)
    # Offsets of each word in the space-joined text, for proportional timing.
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length + 1)
    total = max(offsets[-1] - 1, 1)
    cues: list[_Cue] = []
    cue_start = start
    for first, stop in bounds:
        if stop == len(words):
            cue_end = end
        elif word_starts is not None:
            cue_end = word_starts[stop]
        else:
            cue_end = start + (end - start) * offsets[stop] / total
        cue_end = min(max(cue_end, cue_start), end)
        lines = _wrap(words[first:stop], max_line_chars)
        cues.append(_Cue(cue_start, cue_end, lines, speaker))
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
        word_start = _finite(raw.get("start"))
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


def _greedy_lines(lengths: list[int], limit: int) -> int:
    """Fewest lines holding words of these lengths (first fit is optimal here)."""
    lines, current = 0, 0
    for length in lengths:
        if lines and current + 1 + length <= limit:
            current += 1 + length
        else:
            lines, current = lines + 1, length
    return lines


def _reach(lengths: list[int], limit: int, max_lines: int) -> list[int]:
    """For each word i, the end j of the longest run ``i:j`` that fits in ``max_lines``."""
    reach: list[int] = []
    for first in range(len(lengths)):
        lines, current, stop = 1, lengths[first], first + 1
        while stop < len(lengths):
            if current + 1 + lengths[stop] <= limit:
                current += 1 + lengths[stop]
            elif lines < max_lines:
                lines, current = lines + 1, lengths[stop]
            else:
                break
            stop += 1
        reach.append(stop)
    return reach


def _balanced(lengths: list[int], parts: int, reach: list[int]) -> list[tuple[int, int]]:
    """Split the words into ``parts`` runs, run ``i:j`` allowed when ``j <= reach[i]``.

    ``parts`` must be the fewest runs possible.  Minimises the sum of squared run
    widths (so the runs come out even).  Only run ends from which the rest still fits
    in the runs left are explored, which keeps long segments fast.
    """
    count = len(lengths)
    prefix = [0]
    for length in lengths:
        prefix.append(prefix[-1] + length)
    # need[j]: fewest runs for the words from j on (taking the longest run is optimal).
    need = [0] * (count + 1)
    for first in range(count - 1, -1, -1):
        need[first] = 1 + need[reach[first]]
    # For each run count, the least cost of each reachable run end and that run's start.
    active: dict[int, float] = {0: 0.0}
    starts: list[dict[int, int]] = []
    for k in range(1, parts + 1):
        best: dict[int, float] = {}
        start_of: dict[int, int] = {}
        for first, cost_so_far in active.items():
            for stop in range(first + 1, reach[first] + 1):
                if need[stop] > parts - k:
                    continue
                width = prefix[stop] - prefix[first] + (stop - first - 1)
                cost = cost_so_far + width * width
                if cost < best.get(stop, math.inf):
                    best[stop], start_of[stop] = cost, first
        active = best
        starts.append(start_of)
    runs: list[tuple[int, int]] = []
    stop = count
    for start_of in reversed(starts):
        first = start_of[stop]
        runs.append((first, stop))
        stop = first
    return runs[::-1]


def _cue_bounds(lengths: list[int], limit: int, max_lines: int) -> list[tuple[int, int]]:
    """Word ranges of the fewest cues of at most ``max_lines`` lines, evened out."""
    reach = _reach(lengths, limit, max_lines)
    parts, first = 0, 0
    while first < len(lengths):
        first, parts = reach[first], parts + 1
    return _balanced(lengths, parts, reach)


def _wrap(words: list[str], limit: int) -> tuple[str, ...]:
    """The words on the fewest lines of at most ``limit`` characters, evened out."""
    lengths = [len(word) for word in words]
    parts = _greedy_lines(lengths, limit)
    runs = _balanced(lengths, parts, _reach(lengths, limit, 1))
    return tuple(" ".join(words[first:stop]) for first, stop in runs)


def _render_srt(cues: list[_Cue]) -> str:
    blocks = [
        f"{number}\n{cue.times(',')}\n"
        + (f"{cue.speaker}: " if cue.speaker else "")
        + "\n".join(cue.lines)
        for number, cue in enumerate(cues, start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _escape_vtt(cue_text: str) -> str:
    # '&' and '<' would start entities/tags; escaping '>' also turns "-->" (which
    # is not allowed in cue text) into "--&gt;".
    return cue_text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _voice(speaker: str | None) -> str:
    """A WebVTT voice tag; its annotation may not hold '>' or a line break."""
    if not speaker:
        return ""
    name = " ".join(speaker.replace("&", "&amp;").replace(">", "&gt;").split())
    return f"<v {name}>"


def _render_vtt(cues: list[_Cue]) -> str:
    blocks = [
        f"{cue.times('.')}\n" + _voice(cue.speaker) + _escape_vtt("\n".join(cue.lines))
        for cue in cues
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n" if blocks else "WEBVTT\n"


# --- verbose JSON -----------------------------------------------------------------


def _verbose_document(
    segments: list[dict[str, Any]],
    *,
    text: str,
    language: str,
    duration_seconds: float,
    shown: dict[str, str] | None = None,
) -> dict[str, Any]:
    listed = []
    for index, seg in enumerate(segments):
        entry = _verbose_segment(index, seg)
        if seg.get("speaker") is not None:
            entry["speaker"] = _speaker_of(seg, shown or {})
        listed.append(entry)
    document: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(language),
        "duration": float(duration_seconds),
        "text": _full_text(text, segments),
        "segments": listed,
    }
    words = [
        word for seg in segments for word in _verbose_words(seg.get("words"), float(seg["start"]))
    ]
    if words:
        document["words"] = words
    return document


def _verbose_segment(index: int, segment: dict[str, Any]) -> dict[str, Any]:
    def number(key: str) -> float:
        value = _finite(segment.get(key))
        return 0.0 if value is None else value

    def integer(key: str, default: int) -> int:
        value = segment.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    tokens = segment.get("tokens")
    return {
        "id": integer("id", index),
        "seek": integer("seek", 0),
        "start": float(segment["start"]),
        "end": float(segment["end"]),
        "text": segment["text"],
        "tokens": [t for t in tokens if isinstance(t, int)] if isinstance(tokens, list) else [],
        "temperature": number("temperature"),
        "avg_logprob": number("avg_logprob"),
        "compression_ratio": number("compression_ratio"),
        "no_speech_prob": number("no_speech_prob"),
    }


def _verbose_words(raw_words: object, default_time: float) -> list[dict[str, Any]]:
    """OpenAI's word entries: the word without its leading space, start and end."""
    if not isinstance(raw_words, list):
        return []
    words: list[dict[str, Any]] = []
    for raw in raw_words:
        if not isinstance(raw, dict) or not str(raw.get("word") or "").strip():
            continue
        start = _finite(raw.get("start"))
        start = default_time if start is None else start
        end = _finite(raw.get("end"))
        words.append(
            {"word": str(raw["word"]).strip(), "start": start, "end": start if end is None else end}
        )
    return words
