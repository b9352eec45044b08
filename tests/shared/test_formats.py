"""Transcript rendering: exact SRT/VTT/TXT output, timestamp rounding, JSON round-trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from voxflow.formats import FORMATS, render

SEGMENTS: list[dict[str, Any]] = [
    {"id": 0, "start": 0.0, "end": 2.5, "text": " Hello there. "},
    {"id": 1, "start": 2.5, "end": 3723.0456, "text": "Call the dentist on Monday."},
]
TEXT = " Hello there. Call the dentist on Monday.\n"


def _render(fmt: str, segments: list[dict[str, Any]] = SEGMENTS, text: str = TEXT) -> str:
    body, _ = render(fmt, text=text, segments=segments, language="en", duration_seconds=3724.0)
    return body


def test_formats_tuple() -> None:
    assert FORMATS == ("txt", "srt", "vtt", "json")


def test_txt() -> None:
    body, media_type = render(
        "txt", text=TEXT, segments=SEGMENTS, language="en", duration_seconds=3724.0
    )
    assert body == "Hello there. Call the dentist on Monday.\n"
    assert media_type == "text/plain; charset=utf-8"


def test_txt_falls_back_to_segments_when_text_is_blank() -> None:
    assert _render("txt", text="  ") == "Hello there. Call the dentist on Monday.\n"


def test_srt_exact() -> None:
    body, media_type = render(
        "srt", text=TEXT, segments=SEGMENTS, language="en", duration_seconds=3724.0
    )
    assert body == (
        "1\n"
        "00:00:00,000 --> 00:00:02,500\n"
        "Hello there.\n"
        "\n"
        "2\n"
        "00:00:02,500 --> 01:02:03,046\n"
        "Call the dentist on Monday.\n"
    )
    assert media_type == "application/x-subrip; charset=utf-8"


def test_vtt_exact() -> None:
    body, media_type = render(
        "vtt", text=TEXT, segments=SEGMENTS, language="en", duration_seconds=3724.0
    )
    assert body == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\n"
        "Hello there.\n"
        "\n"
        "00:00:02.500 --> 01:02:03.046\n"
        "Call the dentist on Monday.\n"
    )
    assert media_type == "text/vtt; charset=utf-8"


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (59.9994, "00:00:59,999", "00:00:59.999"),
        (3599.9999, "01:00:00,000", "01:00:00.000"),
        (1.0005, "00:00:01,001", "00:00:01.001"),  # half up on the written value
        (0.0004, "00:00:00,000", "00:00:00.000"),
        (-0.2, "00:00:00,000", "00:00:00.000"),  # clamped
        (360000.0, "100:00:00,000", "100:00:00.000"),  # hours beyond 99
    ],
)
def test_timestamp_rounding(seconds: float, srt: str, vtt: str) -> None:
    segments = [{"id": 0, "start": seconds, "end": seconds, "text": "x"}]
    assert _render("srt", segments).splitlines()[1] == f"{srt} --> {srt}"
    assert _render("vtt", segments).splitlines()[2] == f"{vtt} --> {vtt}"


def test_end_before_start_is_clamped() -> None:
    segments = [{"id": 0, "start": 5.0, "end": 4.0, "text": "x"}]
    assert _render("srt", segments).splitlines()[1] == "00:00:05,000 --> 00:00:05,000"


def test_empty_segments_are_skipped_and_cues_renumbered() -> None:
    segments = [
        {"id": 0, "start": 0.0, "end": 1.0, "text": "   "},
        {"id": 1, "start": 1.0, "end": 2.0, "text": ""},
        {"id": 2, "start": 2.0, "end": 3.0, "text": " Milk and bread. "},
    ]
    assert _render("srt", segments) == "1\n00:00:02,000 --> 00:00:03,000\nMilk and bread.\n"
    assert _render("vtt", segments) == "WEBVTT\n\n00:00:02.000 --> 00:00:03.000\nMilk and bread.\n"
    assert [s["id"] for s in json.loads(_render("json", segments))["segments"]] == [2]


def test_no_segments() -> None:
    assert _render("srt", []) == ""
    assert _render("vtt", []) == "WEBVTT\n"


def test_vtt_escapes_arrow_and_markup() -> None:
    segments = [{"id": 0, "start": 0.0, "end": 1.0, "text": "a --> b & <c>"}]
    cue_text = _render("vtt", segments).splitlines()[3]
    assert cue_text == "a --&gt; b &amp; &lt;c&gt;"
    assert "-->" not in cue_text


def test_blank_lines_inside_text_do_not_split_cues() -> None:
    segments = [{"id": 0, "start": 0.0, "end": 1.0, "text": "one\n\n  two  \n"}]
    assert _render("srt", segments) == "1\n00:00:00,000 --> 00:00:01,000\none\ntwo\n"


def test_json_round_trip() -> None:
    words = [{"start": 0.0, "end": 0.4, "word": " Hello", "probability": 0.98}]
    segments = [{**SEGMENTS[0], "words": words}, SEGMENTS[1], {**SEGMENTS[1], "text": " "}]
    body, media_type = render(
        "json", text=TEXT, segments=segments, language="en", duration_seconds=3724.0
    )
    assert media_type == "application/json"
    assert json.loads(body) == {
        "language": "en",
        "duration_seconds": 3724.0,
        "text": "Hello there. Call the dentist on Monday.",
        "segments": [
            {"id": 0, "start": 0.0, "end": 2.5, "text": "Hello there.", "words": words},
            {"id": 1, "start": 2.5, "end": 3723.0456, "text": "Call the dentist on Monday."},
        ],
    }


def test_json_keeps_unicode_readable() -> None:
    segments = [{"id": 0, "start": 0.0, "end": 1.0, "text": "Grüße, café"}]
    body = _render("json", segments, text="Grüße, café")
    assert "Grüße, café" in body
    assert json.loads(body)["text"] == "Grüße, café"


def test_input_segments_are_not_mutated() -> None:
    segments = [{"id": 0, "start": 0.0, "end": 1.0, "text": "  padded  "}]
    _render("json", segments)
    assert segments[0]["text"] == "  padded  "


@pytest.mark.parametrize("fmt", ["docx", "", "SRT", "text"])
def test_unknown_format(fmt: str) -> None:
    with pytest.raises(ValueError, match="Unknown transcript format"):
        render(fmt, text=TEXT, segments=SEGMENTS, language="en", duration_seconds=1.0)
