"""Tests for prompt templates, versions and rendering."""

from __future__ import annotations

from importlib import resources

import pytest

from llm_worker.prompts import PROMPT_VERSION, load_template, render, template_version
from llm_worker.router.providers import (
    ERROR_CODES,
    TASK_KINDS,
    ProviderError,
    RateLimitedError,
)


@pytest.mark.parametrize("task", TASK_KINDS)
def test_every_task_has_a_template(task: str) -> None:
    name = f"{template_version(task)}.txt"
    assert resources.files("llm_worker").joinpath("templates", name).is_file()
    template = load_template(task)
    assert template.system
    assert "{transcript}" in template.user


def test_template_versions() -> None:
    versions = dict.fromkeys((*TASK_KINDS, "part_notes"), "v2") | {
        "action_items": "v3",
        "diary": "v1",
    }
    assert dict(PROMPT_VERSION) == versions
    assert template_version("summary") == "summary.v2"
    assert template_version("diary") == "diary.v1"
    assert template_version("action_items") == "action_items.v3"  # the newest file wins
    assert template_version("custom") == "custom.v2"


def test_unknown_task_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        template_version("poem")
    with pytest.raises(ValueError, match="unknown task"):
        render("poem", "hello")


def test_render_builds_system_and_user_messages() -> None:
    request = render("summary", "  Hello there.  ")
    assert [message.role for message in request.messages] == ["system", "user"]
    assert "Hello there." in request.messages[1].content
    assert "{transcript}" not in request.messages[1].content
    assert request.transcript == "  Hello there.  "
    assert request.task == "summary"
    assert request.instruction is None
    assert request.json_output is False


def test_braces_in_transcript_are_safe() -> None:
    transcript = "We said {transcript} and {instruction} and {} and {0} and {{x}}."
    request = render("custom", transcript, "Summarise")
    user = request.messages[1].content
    assert transcript in user
    assert user.count("Summarise") == 1


def test_json_output_only_for_action_items() -> None:
    for task in TASK_KINDS:
        instruction = "Do it" if task == "custom" else None
        assert render(task, "text", instruction).json_output is (task == "action_items")


def test_custom_instruction_is_rendered_and_kept() -> None:
    request = render("custom", "Some words.", "  Make a {table}  ")
    assert request.instruction == "Make a {table}"
    assert "Make a {table}" in request.messages[1].content


@pytest.mark.parametrize("instruction", [None, "", "   "])
def test_custom_without_instruction_raises(instruction: str | None) -> None:
    with pytest.raises(ValueError, match="instruction"):
        render("custom", "Some words.", instruction)


def test_provider_errors_have_codes() -> None:
    assert set(ERROR_CODES) == {
        "rate_limited",
        "overloaded",
        "timeout",
        "connection",
        "context_too_long",
        "refused",
        "auth",
        "bad_request",
        "bad_response",
    }
    error = RateLimitedError("slow down", retry_after=2.5)
    assert isinstance(error, ProviderError)
    assert (error.code, error.retry_after, str(error)) == ("rate_limited", 2.5, "slow down")
    assert ProviderError("x", code="custom_code").code == "custom_code"
