"""Render a stored transcript as plain text, SubRip (SRT), WebVTT, Voxflow JSON or verbose JSON.

:func:`render` is the entry point; each format has its own module:

- ``txt``: :mod:`.text`
- ``srt``: :mod:`.srt`, ``vtt``: :mod:`.vtt`, both from the cues of :mod:`.cues`
  (line breaking in :mod:`.wrapping`)
- ``json``: :mod:`.json_document`, ``verbose_json``: :mod:`.verbose_json`

In every format segment text is stripped and segments without text are skipped
(:mod:`.segments`).  A diarized transcript's speaker is shown by its name when it has
one, else by its label (:mod:`.speakers`).
"""

from __future__ import annotations

from typing import Any

from voxflow.transcript_formats.cues import transcript_cues
from voxflow.transcript_formats.json_document import render_json
from voxflow.transcript_formats.segments import clean_segments
from voxflow.transcript_formats.speakers import speaker_names
from voxflow.transcript_formats.srt import render_srt
from voxflow.transcript_formats.text import render_text
from voxflow.transcript_formats.verbose_json import render_verbose_json
from voxflow.transcript_formats.vtt import render_vtt

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
    cleaned = clean_segments(segments)
    if fmt == "txt":
        body = render_text(text, cleaned, shown)
    elif fmt in {"srt", "vtt"}:
        cues = transcript_cues(cleaned, max_line_chars, max_lines, shown)
        body = render_srt(cues) if fmt == "srt" else render_vtt(cues)
    elif fmt == "json":
        body = render_json(
            cleaned,
            text=text,
            language=language,
            language_probability=language_probability,
            duration_seconds=duration_seconds,
            speakers=speakers,
            shown=shown,
        )
    else:
        body = render_verbose_json(
            cleaned, text=text, language=language, duration_seconds=duration_seconds, shown=shown
        )
    return body, _MEDIA_TYPES[fmt]
