"""Plain text (``txt``): the transcript's text, or ``A: ...`` turns when it is diarized.

Consecutive segments of one speaker form one turn; turns are separated by a blank line.
"""

from __future__ import annotations

from typing import Any

from voxflow.transcript_formats.segments import full_text
from voxflow.transcript_formats.speakers import speaker_of


def render_text(text: str, segments: list[dict[str, Any]], shown: dict[str, str]) -> str:
    """The ``txt`` body of cleaned segments; ``shown`` maps speaker labels to names."""
    turns = _turns(segments, shown)
    return ("\n\n".join(turns) if turns else full_text(text, segments)) + "\n"


def _turns(segments: list[dict[str, Any]], shown: dict[str, str]) -> list[str]:
    """``A: ...`` paragraphs, one per run of segments of one speaker; [] when undiarized."""
    if not any(seg.get("speaker") is not None for seg in segments):
        return []
    turns: list[tuple[str | None, list[str]]] = []
    for segment in segments:
        speaker = speaker_of(segment, shown)
        if turns and turns[-1][0] == speaker:
            turns[-1][1].append(segment["text"])
        else:
            turns.append((speaker, [segment["text"]]))
    return [
        f"{speaker}: {' '.join(texts)}" if speaker else " ".join(texts) for speaker, texts in turns
    ]
