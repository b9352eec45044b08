"""OpenAI-shaped JSON (``verbose_json``), as OpenAI's ``response_format="verbose_json"``.

Language by English name, the standard segment fields (with ``speaker`` on a diarized
transcript's segments), and a top-level ``words`` list only when the transcript has
word timestamps.
"""

from __future__ import annotations

from typing import Any

from voxflow.languages import language_name
from voxflow.transcript_formats.json_document import dump
from voxflow.transcript_formats.segments import finite, full_text
from voxflow.transcript_formats.speakers import speaker_of


def render_verbose_json(
    segments: list[dict[str, Any]],
    *,
    text: str,
    language: str,
    duration_seconds: float,
    shown: dict[str, str],
) -> str:
    """The ``verbose_json`` body of cleaned segments; ``shown`` maps speaker labels to names."""
    listed = []
    for index, seg in enumerate(segments):
        entry = _verbose_segment(index, seg)
        if seg.get("speaker") is not None:
            entry["speaker"] = speaker_of(seg, shown)
        listed.append(entry)
    document: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(language),
        "duration": float(duration_seconds),
        "text": full_text(text, segments),
        "segments": listed,
    }
    words = [
        word for seg in segments for word in _verbose_words(seg.get("words"), float(seg["start"]))
    ]
    if words:
        document["words"] = words
    return dump(document)


def _verbose_segment(index: int, segment: dict[str, Any]) -> dict[str, Any]:
    def number(key: str) -> float:
        value = finite(segment.get(key))
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
        start = finite(raw.get("start"))
        start = default_time if start is None else start
        end = finite(raw.get("end"))
        words.append(
            {"word": str(raw["word"]).strip(), "start": start, "end": start if end is None else end}
        )
    return words
