"""Large decoding batches encoded a few clips at a time (real tiny.en on espeak-ng speech)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from faster_whisper import decode_audio

from tests.conftest import SAMPLES
from transcription_worker.encoder import SplitEncoderWhisperModel
from transcription_worker.engine import WhisperEngine
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionWorkerSettings

MEETING = SAMPLES / "meeting.ogg"
WINDOW = 30 * 16_000


def _engine(batch: int, encode: int) -> WhisperEngine:
    settings = TranscriptionWorkerSettings(
        whisper_batch_size=batch, whisper_encode_batch_size=encode
    )
    engine = WhisperEngine(settings, settings)
    engine.preload()
    return engine


@pytest.fixture(scope="module")
def engines() -> dict[str, WhisperEngine]:
    """faster-whisper's way (batches of 8, encoded whole) and 16 decoded, encoded one by one."""
    return {"library": _engine(8, 0), "split": _engine(16, 1)}


def _model(engine: WhisperEngine) -> SplitEncoderWhisperModel:
    model = engine._get("tiny.en").model
    assert isinstance(model, SplitEncoderWhisperModel)
    return model


def _spy(model: SplitEncoderWhisperModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batch sizes that reach the encoder through the split path."""
    sizes: list[int] = []
    encode_piece = model._encode_on_host

    def spy(features: Any) -> Any:
        sizes.append(int(features.shape[0]))
        return encode_piece(features)

    monkeypatch.setattr(model, "_encode_on_host", spy)
    return sizes


def _features(model: SplitEncoderWhisperModel, clips: int) -> Any:
    """Log-Mel features of `clips` different 30 s windows of the meeting sample."""
    audio = decode_audio(str(MEETING))
    windows = []
    for index in range(clips):
        piece = audio[index * 5 * 16_000 :][:WINDOW]
        piece = np.pad(piece, (0, WINDOW - len(piece)))
        windows.append(model.feature_extractor(piece)[..., :-1])
    return np.stack(windows)


def test_split_encoding_matches_the_whole_batch(
    engines: dict[str, WhisperEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(engines["split"])
    features = _features(model, 3)
    sizes = _spy(model, monkeypatch)
    model.encode_batch_size = 2
    try:
        pieces = np.asarray(model.encode(features))
        model.encode_batch_size = 0
        whole = np.asarray(model.encode(features))
    finally:
        model.encode_batch_size = 1
    assert sizes == [2, 1]  # the split path ran; the whole batch did not use it
    assert pieces.shape == whole.shape == (3, 1500, 384)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-4)
    # Each clip's output is its own: the clips differ, so a mix-up would not match.
    assert not np.allclose(whole[0], whole[1], atol=1e-2)


def test_large_batches_give_faster_whispers_transcript(
    engines: dict[str, WhisperEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    split_settings = engines["split"].settings
    sizes = _spy(_model(engines["split"]), monkeypatch)
    results = {
        name: engine.transcribe(
            MEETING,
            model_name="tiny.en",
            options=DecodeOptions.resolve(engine.settings, {"mode": "batched"}, 36.0),
            on_segment=lambda _fraction: None,
        )
        for name, engine in engines.items()
    }
    assert split_settings.whisper_batch_size == 16
    assert len(sizes) >= 2, sizes  # several chunks, encoded one by one
    assert set(sizes) == {1}, sizes
    library, split = results["library"], results["split"]
    assert split.text == library.text
    assert [(s["start"], s["end"], s["text"]) for s in split.segments] == [
        (s["start"], s["end"], s["text"]) for s in library.segments
    ]


def test_defaults_decode_sixteen_and_encode_eight() -> None:
    settings = TranscriptionWorkerSettings()
    assert (settings.whisper_batch_size, settings.whisper_encode_batch_size) == (16, 8)
