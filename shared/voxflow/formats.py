"""Render a transcript as plain text, SubRip (SRT), WebVTT or JSON.

Segments are dicts ``{"id": int, "start": float, "end": float, "text": str}``, with
optional extra keys such as ``"words"`` (kept in the JSON output only).  In every
format segment text is stripped and segments without text are skipped; SRT cues are
numbered 1, 2, ... over the cues actually written.
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["FORMATS", "render"]

FORMATS = ("txt", "srt", "vtt", "json")

_MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def render(
    fmt: str,
    *,
    text: str,
    segments: list[dict[str, Any]],
    language: str,
    duration_seconds: float,
) -> tuple[str, str]:
    """Return ``(body, media_type)`` for ``fmt``, one of :data:`FORMATS`.

    Raises ``ValueError`` for an unknown format.
    """
    if fmt not in _MEDIA_TYPES:
        raise ValueError(f"Unknown transcript format {fmt!r}; expected one of {', '.join(FORMATS)}")
    cleaned = _clean_segments(segments)
    if fmt == "txt":
        full = text.strip() or " ".join(seg["text"] for seg in cleaned)
        body = full + "\n"
    elif fmt == "srt":
        body = _render_srt(cleaned)
    elif fmt == "vtt":
        body = _render_vtt(cleaned)
    else:
        body = _render_json(
            cleaned, text=text, language=language, duration_seconds=duration_seconds
        )
    return body, _MEDIA_TYPES[fmt]


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


def _cue_times(segment: dict[str, Any], separator: str) -> str:
    start = float(segment["start"])
    end = max(float(segment["end"]), start)
    return f"{_timestamp(start, separator)} --> {_timestamp(end, separator)}"


def _render_srt(segments: list[dict[str, Any]]) -> str:
    cues = [
        f"{number}\n{_cue_times(seg, ',')}\n{seg['text']}"
        for number, seg in enumerate(segments, start=1)
    ]
    return "\n\n".join(cues) + "\n" if cues else ""


def _escape_vtt(cue_text: str) -> str:
    # '&' and '<' would start entities/tags; escaping '>' also turns "-->" (which
    # is not allowed in cue text) into "--&gt;".
    return cue_text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_vtt(segments: list[dict[str, Any]]) -> str:
    cues = [f"{_cue_times(seg, '.')}\n{_escape_vtt(seg['text'])}" for seg in segments]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n" if cues else "WEBVTT\n"


def _render_json(
    segments: list[dict[str, Any]], *, text: str, language: str, duration_seconds: float
) -> str:
    document = {
        "language": language,
        "duration_seconds": duration_seconds,
        "text": text.strip(),
        "segments": segments,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
