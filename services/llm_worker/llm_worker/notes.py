"""One note for one job: render the prompt, route it, and split what is too long (map-reduce).

A transcript that fits no allowed deployment's context window is cut on segment boundaries
into parts that fit, each part gets notes of its own (the map step, `part_notes` template),
and the task's own template then runs on the parts' notes (the reduce step), again split if
those are still too long. Nothing is truncated.

A diarized transcript is given as speaker turns, one per line (`Ada: ...`, by name once the
speakers are named, else by label), so that notes can say who said what and action items get
real owners; a part boundary falls between turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from llm_worker.prompts import PART_NOTES, render, template_version
from llm_worker.router.attempts import Attempt
from llm_worker.router.base import Completion
from llm_worker.router.router import Router, RoutingError
from llm_worker.router.selection import estimate_tokens, prompt_tokens
from voxflow.transcript_formats.speakers import speaker_names

MAX_REDUCE_ROUNDS = 4


@dataclass
class Note:
    """The final answer for a task with everything spent on it."""

    completion: Completion
    deployment: str
    cached: bool
    cost_usd: Decimal = Decimal(0)
    attempts: list[Attempt] = field(default_factory=list)
    parts: int = 1  # map-step calls (1: the transcript fit at once)


class NoteError(Exception):
    """Routing failed; carries the attempts made so their cost is still recorded."""

    def __init__(self, error: RoutingError, attempts: list[Attempt]) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.message = error.message
        self.attempts = attempts


def transcript_pieces(
    text: str, segments: Sequence[dict[str, Any]], speakers: Sequence[dict[str, Any]] | None
) -> tuple[list[str], list[str], str]:
    """The transcript as the prompts show it: its pieces, the speakers' names, the separator.

    Undiarized: the segments' texts (or the whole text), joined by spaces. Diarized: one
    `Name: words` turn per run of a speaker's segments, one per line.
    """
    if not speakers or not any(s.get("speaker") for s in segments):
        return [str(s.get("text", "")) for s in segments] or [text], [], " "
    shown = speaker_names(list(speakers))
    turns: list[tuple[str, list[str]]] = []
    for segment in segments:
        words = str(segment.get("text", "")).strip()
        if not words:
            continue
        who = shown.get(str(segment.get("speaker")), str(segment.get("speaker") or "?"))
        if turns and turns[-1][0] == who:
            turns[-1][1].append(words)
        else:
            turns.append((who, [words]))
    return [f"{who}: {' '.join(said)}" for who, said in turns], list(shown.values()), "\n"


def split_parts(pieces: Sequence[str], max_tokens: int, separator: str = " ") -> list[str]:
    """Group consecutive pieces (segments or turns) into parts of at most `max_tokens` each."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        cost = estimate_tokens(piece) + 1
        if current and size + cost > max_tokens:
            parts.append(separator.join(current))
            current, size = [], 0
        if cost > max_tokens:  # one overlong segment: cut it on word boundaries
            words = piece.split()
            step = max(1, int(len(words) * max_tokens / cost))
            parts += [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
            continue
        current.append(piece)
        size += cost
    if current:
        parts.append(separator.join(current))
    return parts


def write_note(
    router: Router,
    task: str,
    transcript: str,
    segments: Sequence[dict[str, Any]],
    instruction: str | None,
    *,
    free_only: bool = False,
    speakers: Sequence[dict[str, Any]] | None = None,
) -> Note:
    """The note for one task, map-reducing the transcript when it fits no context window."""
    attempts: list[Attempt] = []
    pieces, names, separator = transcript_pieces(transcript, segments, speakers)
    parts = 0
    for _ in range(MAX_REDUCE_ROUNDS + 1):
        text = separator.join(p.strip() for p in pieces if p.strip())
        request = render(task, text, instruction, names)
        try:
            routed = router.complete(request, template=template_version(task), free_only=free_only)
        except RoutingError as exc:
            attempts += exc.attempts
            if exc.code != "context_too_long":
                raise NoteError(exc, attempts) from exc
        else:
            attempts += routed.attempts
            return Note(
                completion=routed.completion,
                deployment=routed.deployment,
                cached=routed.cached and parts == 0,
                cost_usd=sum((a.cost_usd for a in attempts), Decimal(0)),
                attempts=attempts,
                parts=max(parts, 1),
            )
        pieces = _map(router, pieces, attempts, free_only=free_only, separator=separator,
                      names=names)  # fmt: skip
        parts += len(pieces)
    raise NoteError(
        RoutingError("context_too_long", "The transcript is too long even after splitting.", []),
        attempts,
    )


def _map(
    router: Router,
    pieces: Sequence[str],
    attempts: list[Attempt],
    *,
    free_only: bool,
    separator: str = " ",
    names: Sequence[str] = (),
) -> list[str]:
    """Notes on each part of the pieces, sized to the largest window the budget allows."""
    window = router.largest_context(free_only=free_only)
    overhead = prompt_tokens(render(PART_NOTES, "", None))
    room = max(window - overhead, 64)
    notes = []
    for index, part in enumerate(split_parts(pieces, room, separator)):
        request = render(PART_NOTES, part, None, names)
        try:
            routed = router.complete(request, template=template_version(PART_NOTES),
                                     free_only=free_only)  # fmt: skip
        except RoutingError as exc:
            attempts += exc.attempts
            raise NoteError(exc, attempts) from exc
        attempts += routed.attempts
        notes.append(f"Part {index + 1}: {routed.completion.text.strip()}")
    return notes
