"""Trimmed windows: batches encoded over their audio, not a padded 30 s window (real tiny.en)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from faster_whisper import decode_audio

from tests.conftest import SAMPLES
from tests.services.transcription_worker.speech import wer
from transcription_worker import batched_pipelines as pipeline
from transcription_worker.batched_pipelines import (
    WINDOW_FRAMES,
    TrimmedBatchedPipeline,
    repeats_itself,
    trimmed_frames,
)
from transcription_worker.engine import WhisperEngine
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionSettings, TranscriptionWorkerSettings

VOICE_NOTE = SAMPLES / "voice_note.ogg"
MEETING = SAMPLES / "meeting.ogg"


@pytest.mark.parametrize(
    ("longest", "minimum", "margin", "frames"),
    [
        (15.4, 15.0, 1.0, 1640),  # the clip and its margin
        (5.0, 15.0, 1.0, 1500),  # never under the minimum window
        (29.5, 15.0, 1.0, WINDOW_FRAMES),  # never over one window
        (30.0, 1.0, 0.0, WINDOW_FRAMES),
        (14.31, 1.0, 0.0, 1500),  # whole seconds of the clip, as faster-whisper counts them
        (12.0, 1.0, 0.33, 1234),  # even: the encoder's convolution halves the frames
    ],
)
def test_trimmed_frames(longest: float, minimum: float, margin: float, frames: int) -> None:
    assert trimmed_frames(longest, minimum, margin) == frames


def _engine(trim: bool) -> WhisperEngine:
    settings = TranscriptionWorkerSettings(whisper_trim_windows=trim)
    engine = WhisperEngine(settings, settings)
    engine.preload()
    return engine


@pytest.fixture(scope="module")
def engines() -> dict[bool, WhisperEngine]:
    """Window trimming on (the default) and off, each with its own loaded model."""
    return {True: _engine(True), False: _engine(False)}


@pytest.fixture
def encoded(engines: dict[bool, WhisperEngine]) -> Iterator[dict[bool, list[tuple[int, ...]]]]:
    """The feature shapes each engine's model is asked to encode."""
    shapes: dict[bool, list[tuple[int, ...]]] = {True: [], False: []}
    patched = []
    for trim, engine in engines.items():
        model = engine._get("tiny.en").model
        original = model.encode

        def recording(features: Any, _original: Any = original, _trim: bool = trim) -> Any:
            shapes[_trim].append(tuple(features.shape))
            return _original(features)

        model.encode = recording
        patched.append((model, original))
    yield shapes
    for model, original in patched:
        model.encode = original


def _batched(settings: TranscriptionSettings, **job: Any) -> DecodeOptions:
    return DecodeOptions.resolve(settings, {"mode": "batched", **job}, 0.0)


def test_the_default_engine_trims_and_faster_whisper_pads(
    engines: dict[bool, WhisperEngine], encoded: dict[bool, list[tuple[int, ...]]]
) -> None:
    assert isinstance(engines[True]._get("tiny.en").short, TrimmedBatchedPipeline)
    assert TranscriptionWorkerSettings().whisper_trim_windows is True
    samples = decode_audio(str(VOICE_NOTE))
    seconds = len(samples) / 16000
    reference = VOICE_NOTE.with_suffix(".txt").read_text()
    for engine in engines.values():
        result = engine.transcribe(
            samples, model_name="tiny.en", options=_batched(engine.settings),
            on_segment=lambda _: None,
        )  # fmt: skip
        assert wer(reference, result.text) < 0.15, result.text
    settings = engines[True].settings
    expected = trimmed_frames(
        seconds, settings.whisper_min_window_seconds, settings.whisper_window_margin_seconds
    )
    assert expected < WINDOW_FRAMES
    assert [shape[-1] for shape in encoded[True]] == [expected]
    assert [shape[-1] for shape in encoded[False]] == [WINDOW_FRAMES]


def test_recordings_longer_than_a_window_keep_faster_whispers_pipeline(
    engines: dict[bool, WhisperEngine], encoded: dict[bool, list[tuple[int, ...]]]
) -> None:
    # The meeting (36 s) is cut by VAD into chunks that are nearly full windows; it is
    # decoded exactly as faster-whisper decodes it, trimming on or off.
    samples = decode_audio(str(MEETING))
    texts = {
        trim: engine.transcribe(
            samples, model_name="tiny.en", options=_batched(engine.settings),
            on_segment=lambda _: None,
        ).text
        for trim, engine in engines.items()
    }  # fmt: skip
    assert texts[True] == texts[False]
    assert wer((SAMPLES / "meeting.txt").read_text(), texts[True]) < 0.15, texts[True]
    assert encoded[True]
    assert encoded[True] == encoded[False]
    assert {shape[-1] for shape in encoded[True]} == {WINDOW_FRAMES}


def test_word_timestamps_in_a_trimmed_window(engines: dict[bool, WhisperEngine]) -> None:
    engine = engines[True]
    samples = decode_audio(str(VOICE_NOTE))
    result = engine.transcribe(
        samples, model_name="tiny.en",
        options=_batched(engine.settings, word_timestamps=True), on_segment=lambda _: None,
    )  # fmt: skip
    words = [w for s in result.segments for w in s["words"]]
    assert len(words) >= 30
    previous = 0.0
    for segment in result.segments:
        for word in segment["words"]:
            assert word["start"] <= word["end"] <= result.duration_seconds + 0.05
            assert word["start"] >= previous - 0.01
            assert segment["start"] - 0.01 <= word["start"]
            assert word["end"] <= segment["end"] + 0.01
            previous = word["end"]
    # Alignment over the trimmed encoder output still spreads words across the note.
    assert words[-1]["end"] > 0.7 * result.duration_seconds


def test_a_micro_batch_of_short_notes_is_encoded_over_its_longest_note(
    engines: dict[bool, WhisperEngine], encoded: dict[bool, list[tuple[int, ...]]]
) -> None:
    note = decode_audio(str(VOICE_NOTE))
    parts = [note, note[: 16000 * 6], np.concatenate([note, note[: 16000 * 4]])]
    engine = engines[True]
    results = engine.transcribe_batch(
        parts, model_name="tiny.en", options=_batched(engine.settings)
    )
    settings = engine.settings
    longest = max(len(p) for p in parts) / 16000
    assert encoded[True] == [
        (3, 80, trimmed_frames(longest, settings.whisper_min_window_seconds,
                               settings.whisper_window_margin_seconds))
    ]  # fmt: skip
    reference = VOICE_NOTE.with_suffix(".txt").read_text()
    assert wer(reference, results[0].text) < 0.15, results[0].text
    assert "bread" in results[2].text.lower()
    assert results[2].text.lower().count("voice note") == 2, results[2].text  # said twice
    assert "dentist" in results[1].text.lower()


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        # tiny.en on an 8 s note in a 15 s window: the last sentence said twice.
        ("David said that the customer list looked simple this year. Thomas went to the "
         "market on Friday to buy some milk. Thomas went to the market on Friday to buy "
         "some milk.", True),
        ("Thank you very much. thank you, very much!", True),
        ("the the the the the the the the", True),
        ("I think so, I think so. We will see.", False),  # three words: speech, not a loop
        ("This is a voice note. Remember to buy bread. This is a voice note.", False),
        ("", False),
    ],
)  # fmt: skip
def test_a_decoding_loop_is_a_run_of_words_said_twice_back_to_back(text: str, loops: bool) -> None:
    assert repeats_itself(text) is loops


def test_a_clip_that_loops_in_a_trimmed_window_is_decoded_again_over_the_full_window(
    engines: dict[bool, WhisperEngine],
    encoded: dict[bool, list[tuple[int, ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The loop is rare and depends on the audio, so the check is told which clip loops:
    # the one that mentions bread (the whole note, not its first 6 s). Its text must become
    # faster-whisper's own.
    note = decode_audio(str(VOICE_NOTE))
    parts = [note, note[: 16000 * 6]]
    options = {trim: _batched(engine.settings) for trim, engine in engines.items()}
    padded = engines[False].transcribe_batch(parts, model_name="tiny.en", options=options[False])
    trimmed_alone = engines[True].transcribe_batch(
        parts, model_name="tiny.en", options=options[True]
    )
    encoded[True].clear()
    monkeypatch.setattr(pipeline, "repeats_itself", lambda text: "bread" in text.lower())
    guarded = engines[True].transcribe_batch(parts, model_name="tiny.en", options=options[True])
    frames = trimmed_frames(
        len(note) / 16000,
        engines[True].settings.whisper_min_window_seconds,
        engines[True].settings.whisper_window_margin_seconds,
    )
    assert encoded[True] == [(2, 80, frames), (1, 80, WINDOW_FRAMES)]
    assert "bread" in padded[0].text.lower()
    assert "bread" not in trimmed_alone[1].text.lower()
    assert guarded[0].text == padded[0].text
    assert guarded[0].segments == padded[0].segments
    assert guarded[1].segments == trimmed_alone[1].segments  # its mate keeps the trimmed pass
