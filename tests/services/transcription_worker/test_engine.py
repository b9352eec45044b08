"""The Whisper engine with the real bundled tiny.en model on espeak-ng speech."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import decode_audio

from tests.conftest import SAMPLES
from tests.services.transcription_worker.speech import normalise, wer
from transcription_worker.engine import ModelNotAllowedError, WhisperEngine, resolve_model
from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionSettings, TranscriptionWorkerSettings

MEETING = SAMPLES / "meeting.ogg"
VOICE_NOTE = SAMPLES / "voice_note.ogg"


@pytest.fixture(scope="module")
def settings() -> TranscriptionWorkerSettings:
    """Default worker settings (bundled tiny.en, CPU, int8)."""
    return TranscriptionWorkerSettings()


@pytest.fixture(scope="module")
def engine(settings: TranscriptionWorkerSettings) -> WhisperEngine:
    """One engine for the module, model loaded once."""
    loaded = WhisperEngine(settings, settings)
    loaded.preload()
    return loaded


def options(settings: TranscriptionSettings, **job: Any) -> DecodeOptions:
    """Decode options for a job asking for `job`."""
    return DecodeOptions.resolve(settings, job, 36.0)


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_both_modes_transcribe_accurately(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings, mode: str
) -> None:
    progress: list[float] = []
    result = engine.transcribe(
        MEETING, model_name="tiny.en", options=options(settings, mode=mode),
        on_segment=progress.append,
    )  # fmt: skip
    assert result.mode == mode
    assert wer((SAMPLES / "meeting.txt").read_text(), result.text) < 0.15, result.text
    starts = [s["start"] for s in result.segments]
    assert starts == sorted(starts)
    assert all(0 <= s["start"] <= s["end"] <= result.duration_seconds + 0.05
               for s in result.segments)  # fmt: skip
    assert progress == sorted(progress)
    assert progress[-1] > 0.9
    for key in ("seek", "tokens", "temperature", "compression_ratio", "no_speech_prob"):
        assert key in result.segments[0]


def test_batched_segments_are_longer_than_sequential(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings
) -> None:
    counts = {
        mode: len(
            engine.transcribe(
                MEETING,
                model_name="tiny.en",
                options=options(settings, mode=mode),
                on_segment=lambda _: None,
            ).segments
        )
        for mode in ("sequential", "batched")
    }
    assert counts["batched"] <= counts["sequential"]


@pytest.mark.parametrize("language", [None, "en"])
def test_language_forced_or_detected(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings, language: str | None
) -> None:
    result = engine.transcribe(
        VOICE_NOTE, model_name="tiny.en", options=options(settings, language=language),
        on_segment=lambda _: None,
    )  # fmt: skip
    assert result.language == "en"
    assert result.language_probability is not None
    assert 0 < result.language_probability <= 1


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_word_timestamps_are_monotonic_and_inside_segments(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings, mode: str
) -> None:
    result = engine.transcribe(
        MEETING, model_name="tiny.en",
        options=options(settings, mode=mode, word_timestamps=True), on_segment=lambda _: None,
    )  # fmt: skip
    previous_end = 0.0
    words = 0
    for segment in result.segments:
        for word in segment["words"]:
            words += 1
            assert word["start"] <= word["end"]
            assert word["start"] >= previous_end - 0.01
            assert segment["start"] - 0.01 <= word["start"]
            assert word["end"] <= segment["end"] + 0.01
            previous_end = word["end"]
    assert words >= len(normalise(result.text).split()) * 0.9


def test_decode_options_resolution(settings: TranscriptionWorkerSettings) -> None:
    # The default, chosen by measurement (scripts/benchmarks/modes.py): `auto`, which with
    # trimmed windows is batched at every length.
    assert settings.whisper_mode == "auto"
    assert settings.whisper_batched_min_seconds == 0.0
    assert DecodeOptions.resolve(settings, {}, 3.0).mode == "batched"
    by_length = settings.model_copy(update={"whisper_batched_min_seconds": 30.0})
    short = DecodeOptions.resolve(by_length, {}, 10.0)
    long = DecodeOptions.resolve(by_length, {}, 300.0)
    assert (short.mode, long.mode) == ("sequential", "batched")
    everywhere = by_length.model_copy(update={"whisper_mode": "batched"})
    assert DecodeOptions.resolve(everywhere, {}, 10.0).mode == "batched"
    forced = DecodeOptions.resolve(
        settings,
        {"mode": "sequential", "beam_size": 2, "language": "en", "hotwords": "Voxflow"},
        300.0,
    )
    assert (forced.mode, forced.beam_size, forced.language, forced.hotwords) == (
        "sequential", 2, "en", "Voxflow")  # fmt: skip
    batched = long.transcribe_kwargs()
    # Batched decoding needs VAD to cut long audio and has no temperature fallback.
    assert batched["vad_filter"] is True
    assert batched["temperature"] == settings.whisper_temperatures[0]
    assert batched["batch_size"] == settings.whisper_batch_size
    sequential = short.transcribe_kwargs()
    assert sequential["temperature"] == settings.whisper_temperatures
    assert "batch_size" not in sequential


@pytest.mark.parametrize("vad_filter", [False, True])
def test_batched_mode_decodes_a_short_recording_whole_or_through_vad(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings, vad_filter: bool
) -> None:
    # Samples shorter than one window skip VAD unless the job asks for it; both must work.
    samples = decode_audio(str(VOICE_NOTE))
    result = engine.transcribe(
        samples, model_name="tiny.en",
        options=options(settings, mode="batched", vad_filter=vad_filter),
        on_segment=lambda _: None,
    )  # fmt: skip
    assert wer(VOICE_NOTE.with_suffix(".txt").read_text(), result.text) < 0.15, result.text
    assert all(0 <= s["start"] <= s["end"] <= result.duration_seconds + 0.01
               for s in result.segments)  # fmt: skip


def test_models_outside_the_allow_list_are_refused(engine: WhisperEngine) -> None:
    with pytest.raises(ModelNotAllowedError):
        engine.transcribe(VOICE_NOTE, model_name="large-v3", options=options(engine.settings),
                          on_segment=lambda _: None)  # fmt: skip


def test_extra_models_load_on_demand_evict_lru_and_unload_when_idle() -> None:
    alias = resolve_model("tiny.en")  # the same weights under a second name (a local path)
    settings = TranscriptionWorkerSettings(
        allowed_models=[alias], whisper_max_loaded_models=1, whisper_idle_unload_seconds=0
    )
    engine = WhisperEngine(settings, settings)
    engine.preload()
    assert engine.loaded_models() == ["tiny.en"]
    engine.transcribe(VOICE_NOTE, model_name=alias, options=options(settings),
                      on_segment=lambda _: None)  # fmt: skip
    assert engine.loaded_models() == [alias]  # the limit of one evicted the default
    engine.preload()
    # The alias went idle (limit 0 s) and is unloaded; the default comes back.
    assert engine.loaded_models() == ["tiny.en"]


def test_micro_batch_gives_each_recording_its_own_transcript(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings
) -> None:
    note = decode_audio(str(VOICE_NOTE))
    meeting = decode_audio(str(MEETING))[: 16000 * 28]
    silence = np.zeros(16000 * 3, dtype=np.float32)
    parts = [note, meeting, silence, note]
    heard: list[tuple[int, float]] = []
    results = engine.transcribe_batch(parts, model_name="tiny.en", options=options(settings),
                                      on_segment=lambda i, f: heard.append((i, f)))  # fmt: skip
    assert [r.mode for r in results] == ["microbatch"] * 4
    # Progress per recording: each speaking one is heard of, fractions rise to its end.
    assert {i for i, _ in heard} == {0, 1, 3}
    for index in (0, 1, 3):
        fractions = [f for i, f in heard if i == index]
        assert fractions == sorted(fractions)
        assert 0 < fractions[-1] <= 1.0
        assert fractions[-1] > 0.8
    assert [round(r.duration_seconds, 2) for r in results] == [
        round(len(p) / 16000, 2) for p in parts
    ]
    alone = engine.transcribe(VOICE_NOTE, model_name="tiny.en",
                              options=options(settings, mode="batched"),
                              on_segment=lambda _: None)  # fmt: skip
    for index in (0, 3):
        assert wer(alone.text, results[index].text) < 0.1, results[index].text
    assert "planning meeting" in results[1].text.lower()
    assert results[2].text == ""
    for result in results:
        for segment in result.segments:
            assert 0 <= segment["start"] <= segment["end"] <= result.duration_seconds


def test_the_engine_hands_over_each_segment_as_it_will_be_stored(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings
) -> None:
    decoded: list[dict[str, Any]] = []
    result = engine.transcribe(MEETING, model_name="tiny.en", options=options(settings),
                               on_segment=lambda _: None, on_decoded=decoded.append)  # fmt: skip
    assert decoded == result.segments
    assert [s["id"] for s in decoded] == list(range(len(decoded)))

    note = decode_audio(str(VOICE_NOTE))
    parts = [note, decode_audio(str(MEETING))[: 16000 * 28], note]
    heard: list[tuple[int, dict[str, Any]]] = []
    results = engine.transcribe_batch(parts, model_name="tiny.en", options=options(settings),
                                      on_decoded=lambda i, s: heard.append((i, s)))  # fmt: skip
    for index, one in enumerate(results):
        assert [s for i, s in heard if i == index] == one.segments
        assert [s["id"] for s in one.segments] == list(range(len(one.segments)))


def test_a_live_job_hears_its_first_words_after_one_clip_with_the_same_transcript(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `live`, a long recording's first clip is decoded alone and its words handed over
    before the other clips are decoded; the transcript is the same as without."""
    from faster_whisper import BatchedInferencePipeline

    pause = np.zeros(16000, dtype=np.float32)
    meeting = decode_audio(str(MEETING))
    long = np.concatenate([meeting, pause, meeting, pause, meeting, pause, meeting])
    timeline: list[str] = []
    forward = BatchedInferencePipeline.forward

    def recorded(self: Any, features: Any, *args: Any) -> Any:
        timeline.append(f"decode {len(features)}")
        return forward(self, features, *args)

    monkeypatch.setattr(BatchedInferencePipeline, "forward", recorded)

    def run(live: bool) -> tuple[list[str], Any]:
        timeline.clear()
        result = engine.transcribe(
            long, model_name="tiny.en", options=options(settings, mode="batched", live=live),
            on_segment=lambda _: None, on_decoded=lambda s: timeline.append("words"),
        )  # fmt: skip
        return list(timeline), result

    plain_timeline, plain = run(live=False)
    live_timeline, live = run(live=True)
    clips = int(plain_timeline[0].split()[1])
    assert clips >= 4, plain_timeline  # a recording of several windows, one batch
    assert plain_timeline[0] == f"decode {clips}"
    assert plain_timeline[1] == "words"
    assert live_timeline[:3] == ["decode 1", "words", f"decode {clips - 1}"], live_timeline
    assert live.text == plain.text
    assert live.segments == plain.segments
    assert wer(" ".join([(SAMPLES / "meeting.txt").read_text()] * 4), live.text) < 0.15


def test_engine_reports_its_device(engine: WhisperEngine) -> None:
    assert engine.device() == ("cpu", "int8")
    assert Path(resolve_model("tiny.en")).is_dir()


def _mapped_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_a_mapped_recording_leaves_the_rss_once_read(
    engine: WhisperEngine, settings: TranscriptionWorkerSettings, tmp_path: Path
) -> None:
    samples = decode_audio(str(MEETING))
    scratch = tmp_path / "audio.f32"
    samples.astype("<f4").tofile(scratch)
    mapped = np.memmap(scratch, dtype="<f4", mode="r", shape=(len(samples),))
    result = engine.transcribe(mapped, model_name="tiny.en",
                               options=options(settings, mode="batched"),
                               on_segment=lambda _: None)  # fmt: skip
    assert wer((SAMPLES / "meeting.txt").read_text(), result.text) < 0.15
    # faster-whisper read every page; they were dropped before the segments decoded.
    assert _mapped_kib(scratch) < 64
    assert float(np.abs(mapped).sum()) > 0  # still readable: faulted back in from the file
    assert _mapped_kib(scratch) >= scratch.stat().st_size // 1024 * 0.9
    assert np.array_equal(np.asarray(mapped), samples)
