"""Tests for the offline extractive LocalProvider."""

from __future__ import annotations

import pytest

from llm_worker.prompts import render
from llm_worker.router.providers import BadRequestError, CompletionRequest, LocalProvider, Provider
from llm_worker.router.providers.local import (
    DIARY_HEADING,
    DIARY_MARKER,
    NO_ACTION_ITEMS,
    NO_SPEECH,
    split_sentences,
)

MEETING = (
    "Okay, this is the weekly sync about the product launch. "
    "The launch date moved because the supplier shipped the hardware late. "
    "Marketing reviewed the launch campaign and the campaign budget on Tuesday. "
    "The weather was lovely this morning. "
    "Our launch checklist still has open items for the hardware team. "
    "Someone brought cake for the team. "
    "The supplier confirmed the hardware shipment for the new launch date. "
    "The office plants looked thirsty. "
    "Budget numbers for the campaign came in slightly under plan. "
)

ACTIONS = (
    "The quarterly numbers looked healthy. "
    "Anna will send the revised contract to the client by Friday. "
    "The demo went smoothly yesterday. "
    "We need to book a larger room for the workshop. "
    "Coffee in the kitchen was cold again. "
    "I have to call the bank about the overdue invoice."
)


def _complete(task: str, transcript: str, instruction: str | None = None) -> str:
    return LocalProvider().complete(render(task, transcript, instruction)).text


def test_local_provider_satisfies_protocol() -> None:
    provider: Provider = LocalProvider()
    assert provider.name == "local"
    assert LocalProvider.model == "extractive-v1"


@pytest.mark.parametrize("task", ["summary", "diary", "action_items", "custom"])
def test_same_input_gives_same_output(task: str) -> None:
    instruction = "Write it as a poem" if task == "custom" else None
    first = LocalProvider().complete(render(task, MEETING + ACTIONS, instruction))
    second = LocalProvider().complete(render(task, MEETING + ACTIONS, instruction))
    assert first.text == second.text
    assert first.output_json == second.output_json
    assert (first.tokens_in, first.tokens_out) == (second.tokens_in, second.tokens_out)


def test_summary_is_extractive_and_shorter_than_input() -> None:
    summary = _complete("summary", MEETING)
    sentences = split_sentences(MEETING)
    picked = split_sentences(summary)
    assert len(summary) < len(MEETING)
    assert 1 <= len(picked) == max(1, min(5, len(sentences) // 3))
    assert all(sentence in sentences for sentence in picked)
    # Chosen sentences keep their order from the transcript.
    positions = [sentences.index(sentence) for sentence in picked]
    assert positions == sorted(positions)
    # Off-topic small talk should lose against the recurring launch/hardware topic.
    assert "The office plants looked thirsty." not in summary
    assert "launch" in summary


def test_summary_of_unpunctuated_transcript_uses_word_chunks() -> None:
    words = [f"word{index % 7}" for index in range(100)]
    sentences = split_sentences(" ".join(words))
    assert len(sentences) == 5
    assert all(len(sentence.split()) == 20 for sentence in sentences)
    summary = _complete("summary", " ".join(words))
    # Five chunks give a two-chunk summary, the chunks kept whole and in their order.
    pairs = [f"{a} {b}" for i, a in enumerate(sentences) for b in sentences[i + 1 :]]
    assert summary in pairs


def test_abbreviations_do_not_split_sentences() -> None:
    assert split_sentences("Dr. Smith will call. Mr. Jones agreed.") == [
        "Dr. Smith will call.",
        "Mr. Jones agreed.",
    ]


@pytest.mark.parametrize("transcript", ["", "   \n\t "])
def test_empty_transcript(transcript: str) -> None:
    provider = LocalProvider()
    assert provider.complete(render("summary", transcript)).text == NO_SPEECH
    items = provider.complete(render("action_items", transcript))
    assert items.text == NO_ACTION_ITEMS
    assert items.output_json == []
    diary = provider.complete(render("diary", transcript)).text
    assert diary.startswith(DIARY_HEADING)
    assert diary.endswith(DIARY_MARKER)
    assert NO_SPEECH in provider.complete(render("custom", transcript, "Translate it")).text


def test_action_items_found_with_owners() -> None:
    completion = LocalProvider().complete(render("action_items", ACTIONS))
    assert completion.output_json == [
        {"text": "Anna will send the revised contract to the client by Friday.", "owner": "Anna"},
        {"text": "We need to book a larger room for the workshop.", "owner": "we"},
        {"text": "I have to call the bank about the overdue invoice.", "owner": "I"},
    ]
    assert completion.text.splitlines() == [
        "- Anna will send the revised contract to the client by Friday. (owner: Anna)",
        "- We need to book a larger room for the workshop. (owner: we)",
        "- I have to call the bank about the overdue invoice. (owner: I)",
    ]


@pytest.mark.parametrize(
    ("sentence", "owner"),
    [
        ("Let\u2019s review the hiring plan tomorrow.", "we"),
        ("I'll draft the agenda.", "I"),
        ("I'm gonna fix the printer.", "I"),
        ("Priya is going to review the slides.", "Priya"),
        ("It will probably rain so Ben should bring umbrellas.", "Ben"),
        ("Please remember to water the plants.", None),
        ("You should update the wiki by Monday.", None),
    ],
)
def test_action_item_owner_heuristics(sentence: str, owner: str | None) -> None:
    completion = LocalProvider().complete(render("action_items", sentence))
    assert completion.output_json == [{"text": sentence.replace("\u2019", "'"), "owner": owner}]


def test_action_items_none_found() -> None:
    completion = LocalProvider().complete(render("action_items", MEETING))
    assert completion.output_json == []
    assert completion.text == NO_ACTION_ITEMS


def test_diary_is_marked_as_extractive_draft() -> None:
    diary = _complete("diary", MEETING)
    lines = diary.splitlines()
    assert lines[0] == DIARY_HEADING
    assert any(line.startswith("Today, ") for line in lines)
    assert lines[-1] == DIARY_MARKER
    quoted = [line for line in lines if line.startswith('- "')]
    assert quoted
    assert all(line[3:-1] in MEETING for line in quoted)


def test_custom_quotes_instruction_and_includes_summary() -> None:
    text = _complete("custom", MEETING, "  List every {date}   mentioned ")
    assert 'could not apply "List every {date} mentioned"' in text
    assert text.endswith(_complete("summary", MEETING))


def test_custom_without_instruction_raises() -> None:
    with pytest.raises(ValueError, match="instruction"):
        render("custom", MEETING)


def test_token_counts_and_metadata() -> None:
    completion = LocalProvider().complete(render("summary", MEETING))
    assert completion.tokens_in > len(MEETING.split())
    assert completion.tokens_out == len(completion.text.split()) > 0
    assert completion.provider == "local"
    assert completion.model == "extractive-v1"
    assert completion.latency_ms >= 0
    assert completion.output_json is None


def test_unknown_task_is_a_bad_request() -> None:
    request = CompletionRequest(task="poem", messages=[], transcript=MEETING)
    with pytest.raises(BadRequestError) as caught:
        LocalProvider().complete(request)
    assert caught.value.code == "bad_request"


def test_comma_joined_whisper_sentences_become_separate_action_items() -> None:
    transcript = (
        "Quick voice note for this week, I need to call the dentist on Monday morning, "
        "remember to send the budget report to the team by Friday, and please buy milk "
        "and bread on the way home."
    )
    assert split_sentences(transcript) == [
        "Quick voice note for this week.",
        "I need to call the dentist on Monday morning.",
        "Remember to send the budget report to the team by Friday.",
        "Please buy milk and bread on the way home.",
    ]


TURNS = (
    "A: Okay, this is the weekly sync about the product launch.\n"
    "Ann Lee: The launch date moved because the supplier shipped the hardware late. "
    "I will call the supplier about the hardware by Friday.\n"
    "A: Marketing reviewed the launch campaign and the campaign budget on Tuesday. "
    "We should update the launch checklist."
)


def _local(task: str, transcript: str, speakers: tuple[str, ...]) -> object:
    return LocalProvider().complete(render(task, transcript, None, speakers))


def test_a_diarized_transcript_gives_notes_that_say_who_said_what() -> None:
    items = _local("action_items", TURNS, ("A", "Ann Lee"))
    # A speaker's "I will ..." is that speaker's; "we" stays the group's.
    assert items.output_json == [  # type: ignore[attr-defined]
        {"text": "I will call the supplier about the hardware by Friday.", "owner": "Ann Lee"},
        {"text": "We should update the launch checklist.", "owner": "we"},
    ]
    summary = _local("summary", TURNS, ("A", "Ann Lee")).text  # type: ignore[attr-defined]
    lines = summary.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(("A: ", "Ann Lee: ")) for line in lines), summary
    diary = _local("diary", TURNS, ("A", "Ann Lee")).text  # type: ignore[attr-defined]
    assert ' said: "' in diary


def test_lines_that_only_look_like_turns_are_not_speakers() -> None:
    # Undiarized: "Reminder:" is words, not a speaker, and "I" stays "I".
    text = "Reminder: I will call the supplier about the hardware by Friday."
    items = _local("action_items", text, ()).output_json  # type: ignore[attr-defined]
    assert items == [{"text": text, "owner": "I"}]
