"""How a diarized transcript's speakers are shown: by name once renamed, else by label.

A diarized transcript's segments (and words) carry a ``speaker`` label (``A``, ``B``,
...), and its ``speakers`` list holds ``label``, ``name`` once renamed, and
``talk_seconds``.  Notes (the LLM worker) show speakers the same way.
"""

from __future__ import annotations

from typing import Any


def speaker_names(speakers: list[dict[str, Any]] | None) -> dict[str, str]:
    """Each speaker's label -> what to show: its name when it has one, else the label."""
    return {
        str(s["label"]): str(s.get("name") or s["label"]) for s in speakers or () if "label" in s
    }


def speaker_of(segment: dict[str, Any], shown: dict[str, str]) -> str | None:
    """What to show for the segment's speaker; None when the segment has none."""
    label = segment.get("speaker")
    return None if label is None else shown.get(str(label), str(label))


def named_segments(segments: list[dict[str, Any]], shown: dict[str, str]) -> list[dict[str, Any]]:
    """Segments (and their words) with each speaker label replaced by what is shown."""
    if not shown:
        return segments
    named = []
    for segment in segments:
        copy = {**segment}
        if "speaker" in copy:
            copy["speaker"] = speaker_of(segment, shown)
        if isinstance(copy.get("words"), list):
            copy["words"] = [
                {**w, "speaker": shown.get(str(w["speaker"]), str(w["speaker"]))}
                if isinstance(w, dict) and w.get("speaker") is not None else w
                for w in copy["words"]
            ]  # fmt: skip
        named.append(copy)
    return named
