"""SubRip (``srt``): numbered cues, ``HH:MM:SS,mmm`` times, ``A: `` before a speaker's cue.

Cues are numbered 1, 2, ... over the cues actually written.
"""

from __future__ import annotations

from voxflow.transcript_formats.cues import Cue


def render_srt(cues: list[Cue]) -> str:
    """The SRT body of ``cues``; empty when there are none."""
    blocks = [
        f"{number}\n{cue.times(',')}\n"
        + (f"{cue.speaker}: " if cue.speaker else "")
        + "\n".join(cue.lines)
        for number, cue in enumerate(cues, start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""
