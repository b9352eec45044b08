"""Versioned prompt templates for the LLM worker and rendering into CompletionRequests."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Final

from llm_worker.router.base import TASK_KINDS, ChatMessage, CompletionRequest

_TEMPLATE_NAME: Final = re.compile(r"^(?P<task>[a-z_]+)\.v(?P<version>\d+)\.txt$")
_PLACEHOLDER: Final = re.compile(r"\{(transcript|instruction)\}")
_SEPARATOR: Final = "---"
# Templates the worker uses on its own: notes on one part of a transcript too long for any
# deployment's context window (the map step; the task's own template is the reduce step).
PART_NOTES: Final = "part_notes"
_TEMPLATE_KINDS: Final = (*TASK_KINDS, PART_NOTES)


@dataclass(frozen=True)
class Template:
    """A prompt template: the system part and the user part, with placeholders unfilled."""

    name: str
    system: str
    user: str


def _templates_dir() -> Traversable:
    # importlib.resources rather than __file__ so templates resolve from wheels and zips too.
    return resources.files("llm_worker").joinpath("templates")


def _discover_versions() -> dict[str, int]:
    versions: dict[str, int] = {}
    for entry in _templates_dir().iterdir():
        match = _TEMPLATE_NAME.match(entry.name)
        if match is None or match["task"] not in _TEMPLATE_KINDS:
            continue
        task, version = match["task"], int(match["version"])
        versions[task] = max(version, versions.get(task, 0))
    missing = [task for task in _TEMPLATE_KINDS if task not in versions]
    if missing:
        # Fail at import, not on the first job, when a packaging mistake drops templates.
        raise RuntimeError(f"missing prompt templates for: {', '.join(missing)}")
    return versions


# The newest template file per task wins, so shipping summary.v2.txt is the whole upgrade.
PROMPT_VERSION: Final[Mapping[str, str]] = MappingProxyType(
    {task: f"v{number}" for task, number in sorted(_discover_versions().items())}
)


def _check_task(task: str) -> None:
    if task not in _TEMPLATE_KINDS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASK_KINDS)}")


def template_version(task: str) -> str:
    """Return the template identifier in use for a task, e.g. "summary.v1"."""
    _check_task(task)
    return f"{task}.{PROMPT_VERSION[task]}"


def _parse_template(name: str, text: str) -> Template:
    lines = text.splitlines()
    try:
        cut = lines.index(_SEPARATOR)
    except ValueError:
        raise ValueError(f"template {name} has no {_SEPARATOR!r} separator line") from None
    system = "\n".join(lines[:cut]).strip()
    user = "\n".join(lines[cut + 1 :]).strip()
    if not system or not user:
        raise ValueError(f"template {name} needs both a system and a user part")
    return Template(name=name, system=system, user=user)


@cache
def load_template(task: str) -> Template:
    """Load and parse the current template for a task."""
    name = template_version(task)
    text = _templates_dir().joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return _parse_template(name, text)


def _fill(template: str, values: Mapping[str, str]) -> str:
    # One regex pass instead of str.format (braces in speech are common) or chained
    # str.replace (a transcript saying "{instruction}" would get the instruction spliced in).
    return _PLACEHOLDER.sub(lambda match: values[match[1]], template)


def render(
    task: str,
    transcript: str,
    instruction: str | None = None,
    speakers: Sequence[str] = (),
) -> CompletionRequest:
    """Build the system and user messages for a task from its template.

    `speakers` names the speakers of a transcript given as turns (`notes.transcript_pieces`).
    """
    template = load_template(task)
    cleaned_instruction = instruction.strip() if instruction is not None else ""
    if task == "custom" and not cleaned_instruction:
        raise ValueError("the custom task needs a non-empty instruction")
    values = {"transcript": transcript.strip(), "instruction": cleaned_instruction}
    return CompletionRequest(
        task=task,
        messages=[
            ChatMessage(role="system", content=_fill(template.system, values)),
            ChatMessage(role="user", content=_fill(template.user, values)),
        ],
        transcript=transcript,
        # Only custom prompts use the instruction; dropping it elsewhere keeps requests honest.
        instruction=cleaned_instruction if task == "custom" else None,
        json_output=task == "action_items",
        speakers=tuple(speakers),
    )
