"""Diarization turns laid over Whisper's segments: labels, splits, words, talk time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from transcription_worker.speakers import attribute, label


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: int


def word(text: str, start: float, end: float) -> dict[str, Any]:
    return {"word": text, "start": start, "end": end, "probability": 0.9}


def test_labels_run_a_to_z_then_two_letters() -> None:
    assert [label(i) for i in (0, 1, 25, 26, 27, 51, 52)] == ["A", "B", "Z", "AA", "AB", "AZ", "BA"]


def test_a_segment_whose_words_change_speaker_is_split_there() -> None:
    segments = [{
        "id": 0, "seek": 0, "start": 0.0, "end": 4.0, "text": "Hello there. Hi, how are you?",
        "tokens": [1, 2, 3], "avg_logprob": -0.2,
        "words": [word(" Hello", 0.0, 0.5), word(" there.", 0.5, 1.0), word(" Hi,", 1.6, 1.9),
                  word(" how", 2.0, 2.2), word(" are", 2.2, 2.4), word(" you?", 2.4, 3.8)],
    }]  # fmt: skip
    # The diarizer numbered them 3 then 1: labels follow the order of appearance.
    turns = [Turn(0.0, 1.2, 3), Turn(1.4, 4.0, 1)]
    out = attribute(segments, turns)
    assert [(s["id"], s["speaker"], s["text"], s["start"], s["end"]) for s in out.segments] == [
        (0, "A", "Hello there.", 0.0, 1.0),
        (1, "B", "Hi, how are you?", 1.6, 4.0),
    ]
    assert all("tokens" not in s for s in out.segments)  # a split's tokens are not its own
    assert out.segments[1]["avg_logprob"] == -0.2
    assert {w["speaker"] for w in out.segments[1]["words"]} == {"B"}
    assert out.speakers == [
        {"label": "A", "name": None, "talk_seconds": 1.2},
        {"label": "B", "name": None, "talk_seconds": 2.6},
    ]
    assert out.labels == {3: "A", 1: "B"}


def test_a_word_goes_to_the_largest_overlap_and_a_gap_word_to_the_nearest_turn() -> None:
    segments = [{"id": 0, "start": 0.0, "end": 6.0, "text": "one two three",
                 "words": [word(" one", 0.8, 1.6), word(" two", 2.9, 3.1),
                           word(" three", 5.5, 5.9)]}]  # fmt: skip
    turns = [Turn(0.0, 1.0, 0), Turn(1.0, 2.0, 1), Turn(3.05, 5.0, 1)]
    out = attribute(segments, turns)
    # "one" overlaps B for 0.6 s and A for 0.2 s; "two" only B; "three" is after every
    # turn, nearest to B's.
    assert [(s["speaker"], s["text"]) for s in out.segments] == [("A", "one two three")]
    assert out.labels == {1: "A"}
    assert out.speakers[0]["talk_seconds"] == 2.95


def test_segments_without_words_go_whole_and_names_are_kept() -> None:
    segments = [
        {"id": 0, "start": 0.0, "end": 2.0, "text": "First."},
        {"id": 1, "start": 2.0, "end": 5.0, "text": "Second."},
        {"id": 2, "start": 5.0, "end": 6.0, "text": "Third."},
    ]
    turns = [Turn(0.0, 2.5, 0), Turn(2.5, 5.5, 1), Turn(5.5, 6.0, 0)]
    out = attribute(segments, turns, names={1: "Ada"})
    assert [s["speaker"] for s in out.segments] == ["A", "B", "A"]
    assert [s["name"] for s in out.speakers] == [None, "Ada"]


def test_no_turns_leaves_the_segments_unlabelled() -> None:
    segments = [{"id": 0, "start": 0.0, "end": 2.0, "text": "Nobody here."}]
    out = attribute(segments, [])
    assert "speaker" not in out.segments[0]
    assert out.speakers == []


def test_a_worker_that_cannot_diarize_fails_the_job_with_a_clear_code(tmp_path: Path) -> None:
    import numpy as np

    from transcription_worker import transcription_stage as stage
    from transcription_worker.engine import TranscriptionResult
    from transcription_worker.settings import TranscriptionWorkerSettings
    from voxflow.jobs.errors import PermanentJobError
    from voxflow.jobs.models import Job

    config = TranscriptionWorkerSettings(diarization_backend="pyannote",
                                         pyannote_model_dir=tmp_path)  # fmt: skip
    job = Job(id=uuid.uuid4(), options={"diarize": True})
    result = TranscriptionResult("en", 1.0, 1.0, "Hi.", [], "tiny.en", "sequential", 0.1)
    with pytest.raises(PermanentJobError) as failed:
        stage._with_speakers(None, config, job, np.zeros(16_000, np.float32), result)  # type: ignore[arg-type]
    assert failed.value.code == "diarization_unavailable"
    assert "pyannote.audio>=4" in failed.value.message
