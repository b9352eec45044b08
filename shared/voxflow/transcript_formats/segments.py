"""The stored segments as every format reads them: text stripped, empty segments dropped.

Segments are the stored dicts ``{"id", "start", "end", "text", ...}`` with optional
extra keys (``seek``, ``tokens``, ``temperature``, ``avg_logprob``,
``compression_ratio``, ``no_speech_prob``, ``words``, ``speaker``); older rows may lack
any of the extras, and stored numbers are not trusted to be finite.
"""

from __future__ import annotations

import math
from typing import Any


def clean_segments(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the segments that have text, with that text cleaned."""
    cleaned: list[dict[str, Any]] = []
    for segment in segments:
        seg_text = _clean_text(segment.get("text"))
        if seg_text:
            cleaned.append({**segment, "text": seg_text})
    return cleaned


def _clean_text(raw: object) -> str:
    """Strip the text and drop blank lines (a blank line would end an SRT/VTT cue)."""
    lines = (line.strip() for line in str(raw or "").splitlines())
    return "\n".join(line for line in lines if line)


def full_text(text: str, segments: list[dict[str, Any]]) -> str:
    """The transcript's text, or its segments' text joined when the stored text is blank."""
    return text.strip() or " ".join(seg["text"] for seg in segments)


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (``bool`` is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
