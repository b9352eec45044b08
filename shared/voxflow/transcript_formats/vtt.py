"""WebVTT (``vtt``): ``HH:MM:SS.mmm`` times, escaped cue text, a speaker as a voice tag (``<v A>``).

The body starts with the ``WEBVTT`` header; cues carry no identifiers.
"""

from __future__ import annotations

from voxflow.transcript_formats.cues import Cue


def render_vtt(cues: list[Cue]) -> str:
    """The WebVTT body of ``cues``; just the ``WEBVTT`` header when there are none."""
    blocks = [
        f"{cue.times('.')}\n" + _voice(cue.speaker) + _escape_vtt("\n".join(cue.lines))
        for cue in cues
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n" if blocks else "WEBVTT\n"


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
