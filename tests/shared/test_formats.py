"""Transcript rendering: exact SRT/VTT/TXT output, timestamp rounding, cue wrapping and
splitting (checked by parsing the output back), JSON and verbose JSON shapes."""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass
from typing import Any

import pytest

from voxflow.transcript_formats import FORMATS, render

SEGMENTS: list[dict[str, Any]] = [
    {"id": 0, "start": 0.0, "end": 2.5, "text": " Hello there. "},
    {"id": 1, "start": 2.5, "end": 3723.0456, "text": "Call the dentist on Monday."},
]
TEXT = " Hello there. Call the dentist on Monday.\n"


def _render(fmt: str, segments: list[dict[str, Any]] = SEGMENTS, text: str = TEXT) -> str:
    body, _ = render(fmt, text=text, segments=segments, language="en", duration_seconds=3724.0)
    return body


def test_formats_tuple() -> None:
    assert FORMATS == ("txt", "srt", "vtt", "json", "verbose_json")


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
    # Line breaks in the text are whitespace like any other: the cue is rewrapped.
    segments = [{"id": 0, "start": 0.0, "end": 1.0, "text": "one\n\n  two  \n"}]
    assert _render("srt", segments) == "1\n00:00:00,000 --> 00:00:01,000\none two\n"


def test_json_round_trip() -> None:
    words = [{"start": 0.0, "end": 0.4, "word": " Hello", "probability": 0.98}]
    segments = [{**SEGMENTS[0], "words": words}, SEGMENTS[1], {**SEGMENTS[1], "text": " "}]
    body, media_type = render(
        "json", text=TEXT, segments=segments, language="en", duration_seconds=3724.0
    )
    assert media_type == "application/json"
    assert json.loads(body) == {
        "language": "en",
        "language_probability": None,
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


def test_json_includes_language_probability() -> None:
    body, _ = render(
        "json",
        text=TEXT,
        segments=SEGMENTS,
        language="de",
        duration_seconds=3724.0,
        language_probability=0.93,
    )
    document = json.loads(body)
    assert document["language"] == "de"
    assert document["language_probability"] == 0.93


@pytest.mark.parametrize(("max_line_chars", "max_lines"), [(0, 2), (42, 0), (-1, -1)])
def test_limits_below_one_are_rejected(max_line_chars: int, max_lines: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        render(
            "srt",
            text=TEXT,
            segments=SEGMENTS,
            language="en",
            duration_seconds=1.0,
            max_line_chars=max_line_chars,
            max_lines=max_lines,
        )


# --- SRT / VTT: parse the output back ----------------------------------------------


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


_TIME = {
    "srt": re.compile(
        r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"
    ),
    "vtt": re.compile(
        r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
    ),
}


def _ms(hours: str, minutes: str, seconds: str, millis: str) -> int:
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def _unescape_vtt(line: str) -> str:
    return line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse(fmt: str, body: str) -> list[Cue]:
    """Cue blocks of an SRT or WebVTT document, checking the block syntax on the way."""
    assert body.endswith("\n")
    blocks = body[:-1].split("\n\n")
    if fmt == "vtt":
        assert blocks.pop(0) == "WEBVTT"
    elif blocks == [""]:
        return []
    cues: list[Cue] = []
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        if fmt == "srt":
            assert lines.pop(0) == str(number)
        match = _TIME[fmt].fullmatch(lines[0])
        assert match, lines[0]
        text_lines = lines[1:]
        assert text_lines
        assert all(line and line == line.strip() for line in text_lines)
        if fmt == "vtt":
            assert all("-->" not in line for line in text_lines)
            text_lines = [_unescape_vtt(line) for line in text_lines]
        parts = match.groups()
        cues.append(Cue(_ms(*parts[:4]), _ms(*parts[4:]), tuple(text_lines)))
    return cues


def _expected_ms(seconds: float) -> int:
    return max(round(seconds * 1000), 0)


def check_round_trip(
    fmt: str, segments: list[dict[str, Any]], max_line_chars: int = 42, max_lines: int = 2
) -> list[list[Cue]]:
    """Parse the rendering and check it against the segments; returns the cues of each.

    Every segment with text comes back as one or more contiguous cues spanning exactly
    its times, whose texts joined give its text; no cue has more than ``max_lines``
    lines, and no line is longer than ``max_line_chars`` unless it is one word.
    """
    body, _ = render(
        fmt,
        text="",
        segments=segments,
        language="en",
        duration_seconds=0.0,
        max_line_chars=max_line_chars,
        max_lines=max_lines,
    )
    cues = parse(fmt, body)
    position = 0
    per_segment: list[list[Cue]] = []
    for segment in segments:
        words = str(segment["text"]).split()
        if not words:
            continue
        start_ms = _expected_ms(segment["start"])
        end_ms = max(_expected_ms(segment["end"]), start_ms)
        assert cues[position].start_ms == start_ms
        own: list[Cue] = []
        seen: list[str] = []
        while len(seen) < len(words):
            cue = cues[position]
            position += 1
            if own:
                assert cue.start_ms == own[-1].end_ms  # contiguous
            assert start_ms <= cue.start_ms <= cue.end_ms <= end_ms
            assert len(cue.lines) <= max_lines
            for line in cue.lines:
                assert len(line) <= max_line_chars or " " not in line, line
            seen += cue.text.split()
            assert seen == words[: len(seen)]  # order preserved, words never split
            own.append(cue)
        assert own[-1].end_ms == end_ms
        per_segment.append(own)
    assert position == len(cues)
    return per_segment


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_round_trip_of_short_segments(fmt: str) -> None:
    per_segment = check_round_trip(fmt, SEGMENTS)
    assert [[cue.text for cue in cues] for cues in per_segment] == [
        ["Hello there."],
        ["Call the dentist on Monday."],
    ]
    assert [(c.start_ms, c.end_ms) for cues in per_segment for c in cues] == [
        (0, 2500),
        (2500, 3723046),
    ]


LONG = (
    "Call the dentist on Monday, then buy milk, bread and eggs at the corner shop before it closes."
)


def test_long_segment_is_wrapped_and_split_exactly() -> None:
    segments = [{"id": 0, "start": 4.0, "end": 10.0, "text": LONG}]
    # 94 characters: two cues of two balanced lines; the split after "bread " (offset
    # 49 of 94) is at 4 + 6 * 49 / 94 = 7.128 s.
    assert _render("srt", segments) == (
        "1\n"
        "00:00:04,000 --> 00:00:07,128\n"
        "Call the dentist on Monday,\n"
        "then buy milk, bread\n"
        "\n"
        "2\n"
        "00:00:07,128 --> 00:00:10,000\n"
        "and eggs at the corner\n"
        "shop before it closes.\n"
    )


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
@pytest.mark.parametrize(
    ("max_line_chars", "max_lines"), [(42, 2), (20, 2), (20, 1), (60, 3), (80, 1)]
)
def test_round_trip_of_a_long_segment(fmt: str, max_line_chars: int, max_lines: int) -> None:
    segments = [
        {"id": 0, "start": 1.5, "end": 2.0, "text": "Short one."},
        {"id": 1, "start": 4.0, "end": 10.0, "text": f" {LONG} {LONG.upper()} "},
        {"id": 2, "start": 10.0, "end": 12.25, "text": "Fish & <chips> --> now."},
    ]
    per_segment = check_round_trip(fmt, segments, max_line_chars, max_lines)
    total_lines = sum(len(cue.lines) for cue in per_segment[1])
    assert len(per_segment[1]) == -(-total_lines // max_lines)  # as few cues as possible
    assert len(per_segment[1]) > 1


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_over_long_word_gets_its_own_line(fmt: str) -> None:
    long_word = "https://example.com/a/very/long/path/that/cannot/be/broken"
    segments = [{"id": 0, "start": 0.0, "end": 6.0, "text": f"see {long_word} for the details"}]
    (cues,) = check_round_trip(fmt, segments, max_line_chars=20, max_lines=2)
    assert [cue.lines for cue in cues] == [("see", long_word), ("for the details",)]


def test_two_lines_are_balanced() -> None:
    segments = [
        {"id": 0, "start": 0.0, "end": 3.0, "text": "one two three four five six seven eight"}
    ]
    (cues,) = check_round_trip("srt", segments, max_line_chars=30, max_lines=2)
    assert [cue.lines for cue in cues] == [("one two three four", "five six seven eight")]


def _timed_words(text: str, start: float, step: float) -> list[dict[str, Any]]:
    """Word entries as faster-whisper stores them (leading space), one every ``step``."""
    words = []
    for index, word in enumerate(text.split()):
        begin = round(start + (index + (0.4 if index % 3 == 0 else 0.0)) * step, 3)
        words.append({"word": f" {word}", "start": begin, "end": begin + 0.2, "probability": 0.9})
    return words


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_split_uses_word_timestamps(fmt: str) -> None:
    words = _timed_words(LONG, 4.0, 0.3)
    segments = [{"id": 0, "start": 4.0, "end": 10.0, "text": " " + LONG, "words": words}]
    (cues,) = check_round_trip(fmt, segments, max_line_chars=20, max_lines=1)
    assert len(cues) > 3
    first_word = 0
    for cue in cues:
        if first_word:
            assert cue.start_ms == _expected_ms(words[first_word]["start"])
        first_word += len(cue.text.split())
    # Without word timestamps the same split is timed by character count instead.
    (proportional,) = check_round_trip(
        fmt, [{**segments[0], "words": None}], max_line_chars=20, max_lines=1
    )
    assert [cue.lines for cue in proportional] == [cue.lines for cue in cues]
    assert [cue.start_ms for cue in proportional] != [cue.start_ms for cue in cues]


def test_word_times_are_clamped_into_the_segment() -> None:
    words = [
        {"word": " Early", "start": 0.5, "end": 1.0},
        {"word": " word", "start": 9.0, "end": 9.5},
        {"word": " late", "start": 12.0, "end": 12.5},
    ]
    segments = [{"id": 0, "start": 1.0, "end": 11.0, "text": "Early word late", "words": words}]
    (cues,) = check_round_trip("srt", segments, max_line_chars=5, max_lines=1)
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [
        (1000, 9000, "Early"),
        (9000, 11000, "word"),
        (11000, 11000, "late"),
    ]


def test_words_without_a_leading_space_continue_the_word() -> None:
    words = [
        {"word": " twenty", "start": 1.0, "end": 1.3},
        {"word": "-five", "start": 1.3, "end": 1.8},
        {"word": " apples", "start": 2.5, "end": 3.0},
    ]
    segments = [{"id": 0, "start": 1.0, "end": 3.0, "text": "twenty-five apples", "words": words}]
    (cues,) = check_round_trip("srt", segments, max_line_chars=12, max_lines=1)
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [
        (1000, 2500, "twenty-five"),
        (2500, 3000, "apples"),
    ]


@pytest.mark.parametrize(
    "words",
    [
        [{"word": " other", "start": 1.0}, {"word": " text", "start": 2.0}],  # different words
        [{"word": " twenty", "start": 1.0}, {"word": " apples", "start": None}],  # no time
        ["twenty", "apples"],  # not word objects
    ],
)
def test_unusable_word_timestamps_fall_back_to_proportional(words: list[Any]) -> None:
    segments = [{"id": 0, "start": 0.0, "end": 2.4, "text": "twenty apples", "words": words}]
    (cues,) = check_round_trip("srt", segments, max_line_chars=7, max_lines=1)
    # "apples" starts at character 7 of 13.
    assert [(c.start_ms, c.end_ms) for c in cues] == [(0, 1292), (1292, 2400)]


def _random_word(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return "".join(rng.choices(string.ascii_letters, k=rng.randint(25, 90)))
    word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 12)))
    return word + rng.choice(["", "", "", ",", ".", "?", " &", " <b>", " -->"])


@pytest.mark.parametrize("seed", range(40))
def test_round_trip_of_random_transcripts(seed: int) -> None:
    rng = random.Random(seed)
    segments: list[dict[str, Any]] = []
    clock = rng.uniform(0, 5000)
    for index in range(rng.randint(1, 8)):
        text = " ".join(_random_word(rng) for _ in range(rng.randint(0, 60)))
        start = round(clock + rng.choice([0.0, rng.uniform(0, 3)]), 3)
        end = round(start + rng.uniform(0, 30), 3)
        segment: dict[str, Any] = {"id": index, "start": start, "end": end, "text": text}
        if text and rng.random() < 0.5:
            step = (end - start) / len(text.split())
            segment["words"] = _timed_words(text, start, step)
        segments.append(segment)
        clock = end
    max_line_chars = rng.randint(20, 80)
    max_lines = rng.randint(1, 3)
    for fmt in ("srt", "vtt"):
        check_round_trip(fmt, segments, max_line_chars, max_lines)


# --- verbose JSON -------------------------------------------------------------------


def _verbose(segments: list[dict[str, Any]], text: str = TEXT, language: str = "en") -> Any:
    body, media_type = render(
        "verbose_json",
        text=text,
        segments=segments,
        language=language,
        duration_seconds=3724,
        language_probability=0.97,
    )
    assert media_type == "application/json"
    return json.loads(body)


FULL_SEGMENT: dict[str, Any] = {
    "id": 0,
    "seek": 0,
    "start": 0.0,
    "end": 2.5,
    "text": " Hello there.",
    "tokens": [50364, 2425, 456, 13, 50489],
    "temperature": 0.2,
    "avg_logprob": -0.25,
    "compression_ratio": 0.8,
    "no_speech_prob": 0.01,
}


def test_verbose_json_shape_without_words() -> None:
    old_row = {"id": 7, "start": 2.5, "end": 4.0, "text": "Call me.", "avg_logprob": -0.5}
    document = _verbose([FULL_SEGMENT, old_row, {**old_row, "id": 8, "text": "  "}])
    assert document == {
        "task": "transcribe",
        "language": "english",
        "duration": 3724.0,
        "text": "Hello there. Call the dentist on Monday.",
        "segments": [
            {**FULL_SEGMENT, "text": "Hello there."},
            {
                "id": 7,
                "seek": 0,
                "start": 2.5,
                "end": 4.0,
                "text": "Call me.",
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.5,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            },
        ],
    }
    assert isinstance(document["duration"], float)
    assert "words" not in document


def test_verbose_json_words_are_listed_at_the_top() -> None:
    words = [
        {"word": " Hello", "start": 0.0, "end": 0.4, "probability": 0.98},
        {"word": " there.", "start": 0.5, "end": 1.1, "probability": 0.9},
    ]
    later = {"id": 1, "start": 3.0, "end": 4.0, "text": "Bye.", "words": [{"word": " Bye."}]}
    document = _verbose([{**FULL_SEGMENT, "words": words}, later])
    assert document["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.4},
        {"word": "there.", "start": 0.5, "end": 1.1},
        {"word": "Bye.", "start": 3.0, "end": 3.0},  # missing times: the segment's start
    ]
    assert all("words" not in segment for segment in document["segments"])
    assert list(document) == ["task", "language", "duration", "text", "segments", "words"]


@pytest.mark.parametrize(("code", "name"), [("de", "german"), ("yue", "cantonese"), ("xx", "xx")])
def test_verbose_json_names_the_language(code: str, name: str) -> None:
    assert _verbose([FULL_SEGMENT], language=code)["language"] == name


def test_verbose_json_text_falls_back_to_segments() -> None:
    assert _verbose([FULL_SEGMENT], text=" ")["text"] == "Hello there."


def test_verbose_json_ids_default_to_position() -> None:
    segments = [{"start": 0.0, "end": 1.0, "text": "a"}, {"start": 1.0, "end": 2.0, "text": "b"}]
    assert [s["id"] for s in _verbose(segments)["segments"]] == [0, 1]


DIARIZED: list[dict[str, Any]] = [
    {"id": 0, "start": 0.0, "end": 1.5, "text": "Shall we start?", "speaker": "A",
     "words": [{"word": " Shall", "start": 0.0, "end": 0.4, "speaker": "A"},
               {"word": " we", "start": 0.4, "end": 0.6, "speaker": "A"},
               {"word": " start?", "start": 0.6, "end": 1.5, "speaker": "A"}]},
    {"id": 1, "start": 1.8, "end": 3.0, "text": "Yes, please.", "speaker": "B"},
    {"id": 2, "start": 3.0, "end": 4.0, "text": "Go ahead.", "speaker": "B"},
    {"id": 3, "start": 4.2, "end": 5.0, "text": "Thanks.", "speaker": "A"},
]  # fmt: skip
SPEAKERS: list[dict[str, Any]] = [
    {"label": "A", "name": None, "talk_seconds": 2.3},
    {"label": "B", "name": "Dr <Who> & co", "talk_seconds": 2.2},
]


def _diarized(fmt: str) -> str:
    body, _ = render(fmt, text="Shall we start? Yes, please. Go ahead. Thanks.",
                     segments=DIARIZED, language="en", duration_seconds=5.0,
                     speakers=SPEAKERS)  # fmt: skip
    return body


def test_speakers_in_txt_are_turns_by_name_or_label() -> None:
    assert _diarized("txt") == (
        "A: Shall we start?\n\nDr <Who> & co: Yes, please. Go ahead.\n\nA: Thanks.\n"
    )


def test_speakers_in_srt_and_vtt_cues() -> None:
    srt = _diarized("srt")
    assert "1\n00:00:00,000 --> 00:00:01,500\nA: Shall we start?\n" in srt
    assert "2\n00:00:01,800 --> 00:00:03,000\nDr <Who> & co: Yes, please.\n" in srt
    vtt = _diarized("vtt")
    assert "00:00:00.000 --> 00:00:01.500\n<v A>Shall we start?\n" in vtt
    # The voice annotation may not hold '>': escaped, as the cue text is.
    assert "00:00:01.800 --> 00:00:03.000\n<v Dr <Who&gt; &amp; co>Yes, please.\n" in vtt


def test_speakers_in_json_and_verbose_json() -> None:
    document = json.loads(_diarized("json"))
    assert document["speakers"] == SPEAKERS
    assert [s["speaker"] for s in document["segments"]] == ["A", "Dr <Who> & co",
                                                            "Dr <Who> & co", "A"]  # fmt: skip
    assert {w["speaker"] for w in document["segments"][0]["words"]} == {"A"}
    verbose = json.loads(_diarized("verbose_json"))
    assert [s["speaker"] for s in verbose["segments"]] == ["A", "Dr <Who> & co",
                                                           "Dr <Who> & co", "A"]  # fmt: skip
    assert "speakers" not in verbose  # OpenAI's shape, plus `speaker` on each segment


def test_an_undiarized_transcript_has_no_speaker_anywhere() -> None:
    for fmt in FORMATS:
        assert "speaker" not in _render(fmt)
