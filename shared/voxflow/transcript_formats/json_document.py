"""Voxflow's own JSON (``json``): the stored segments as they are, words included.

Speaker labels on segments and words are replaced by the speakers' names, and a
diarized transcript's ``speakers`` list is included.
"""

from __future__ import annotations

import json
from typing import Any

from voxflow.transcript_formats.speakers import named_segments


def render_json(
    segments: list[dict[str, Any]],
    *,
    text: str,
    language: str,
    language_probability: float | None,
    duration_seconds: float,
    speakers: list[dict[str, Any]] | None,
    shown: dict[str, str],
) -> str:
    """The ``json`` body of cleaned segments; ``shown`` maps speaker labels to names."""
    document: dict[str, Any] = {
        "language": language,
        "language_probability": language_probability,
        "duration_seconds": duration_seconds,
        "text": text.strip(),
        "segments": named_segments(segments, shown),
    }
    if speakers:
        document["speakers"] = speakers
    return dump(document)


def dump(document: dict[str, Any]) -> str:
    """A JSON document as every JSON format writes it: UTF-8 as is, indented, newline-ended."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
