"""Audio probing: real files generated from samples/voice_note.ogg with PyAV."""

from __future__ import annotations

import os
import pickle
import random
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.stream import AudioStream

from ingest_api.audio_probe import (
    AudioInfo,
    AudioRejectedError,
    probe_file,
    probe_isolated,
    shutdown_probe_pool,
)
from ingest_api.audio_probe.isolated_probe import _run_isolated
from tests.conftest import SAMPLES

VOICE_NOTE = SAMPLES / "voice_note.ogg"
LIMIT = 600.0  # seconds; comfortably above every generated file


# ----------------------------------------------------------------------- helpers


def _transcode(
    dst: Path,
    *,
    codec: str,
    rate: int = 16000,
    fmt: str | None = None,
    options: dict[str, str] | None = None,
    video: bool = False,
    audio: bool = True,
) -> Path:
    """Re-encode the voice note into ``dst`` (optionally with a small video track)."""
    with (
        av.open(str(VOICE_NOTE)) as src,
        av.open(str(dst), "w", format=fmt, options=options) as out,
    ):
        # All streams must exist before the first packet is muxed (it writes the header).
        vstream = out.add_stream("mpeg4", rate=10) if video else None
        astream = out.add_stream(codec, rate=rate, layout="mono") if audio else None
        assert astream is None or isinstance(astream, AudioStream)
        if vstream is not None:
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
            black = np.zeros((48, 64, 3), dtype=np.uint8)
            for i in range(20):
                vframe = av.VideoFrame.from_ndarray(black, format="rgb24")
                vframe.pts = i
                out.mux(vstream.encode(vframe))
            out.mux(vstream.encode(None))
        if astream is not None:
            formats = astream.codec_context.codec.audio_formats
            assert formats
            sample_fmt = formats[0].name
            resampler = av.AudioResampler(format=sample_fmt, layout="mono", rate=rate)
            for frame in src.decode(audio=0):
                for resampled in resampler.resample(frame):
                    resampled.pts = None
                    out.mux(astream.encode(resampled))
            for resampled in resampler.resample(None):
                resampled.pts = None
                out.mux(astream.encode(resampled))
            out.mux(astream.encode(None))
    return dst


def _code(path: Path, *, max_seconds: float = LIMIT) -> str:
    with pytest.raises(AudioRejectedError) as info:
        probe_file(path, max_seconds=max_seconds)
    return info.value.code


def _wav_header(path: Path) -> bytes:
    """Everything up to the start of the PCM data (FFmpeg adds a LIST chunk before it)."""
    data = path.read_bytes()
    return data[: data.index(b"data") + 8]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid source files in several containers, generated once per module."""
    d = tmp_path_factory.mktemp("media")
    return {
        "wav": _transcode(d / "voice.wav", codec="pcm_s16le"),
        "mp3": _transcode(d / "voice.mp3", codec="libmp3lame"),
        "mp4_video": _transcode(d / "voice.mp4", codec="aac", video=True),
        "video_only": _transcode(d / "silent.mp4", codec="aac", video=True, audio=False),
        # Matroska written as a live stream has no duration in its header.
        "webm_live": _transcode(
            d / "live.webm", codec="libopus", rate=48000, fmt="webm", options={"live": "1"}
        ),
    }


@pytest.fixture(scope="module", autouse=True)
def _stop_probe_pool() -> Iterator[None]:
    yield
    shutdown_probe_pool()


# ----------------------------------------------------------------- valid input


def test_voice_note_ogg() -> None:
    info = probe_file(VOICE_NOTE, max_seconds=LIMIT)
    assert info.container == "ogg"
    assert info.codec == "vorbis"
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert 10.0 < info.duration_seconds < 15.0


def test_wav(media: dict[str, Path]) -> None:
    info = probe_file(media["wav"], max_seconds=LIMIT)
    ogg = probe_file(VOICE_NOTE, max_seconds=LIMIT)
    assert (info.container, info.codec) == ("wav", "pcm_s16le")
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert info.duration_seconds == pytest.approx(ogg.duration_seconds, abs=0.01)


def test_mp3(media: dict[str, Path]) -> None:
    info = probe_file(media["mp3"], max_seconds=LIMIT)
    assert (info.container, info.codec) == ("mp3", "mp3")
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert 10.0 < info.duration_seconds < 15.0


def test_video_container_uses_audio_track(media: dict[str, Path]) -> None:
    info = probe_file(media["mp4_video"], max_seconds=LIMIT)
    assert "mp4" in info.container
    assert info.codec == "aac"
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert 10.0 < info.duration_seconds < 15.0


def test_undeclared_duration_is_measured(media: dict[str, Path]) -> None:
    with av.open(str(media["webm_live"])) as container:
        assert container.duration is None
        assert container.streams.audio[0].duration is None
    info = probe_file(media["webm_live"], max_seconds=LIMIT)
    assert (info.codec, info.sample_rate) == ("opus", 48000)
    assert 10.0 < info.duration_seconds < 15.0


def test_audio_info_is_frozen() -> None:
    info = probe_file(VOICE_NOTE, max_seconds=LIMIT)
    with pytest.raises(AttributeError):
        info.channels = 2  # type: ignore[misc]


# --------------------------------------------------------------- rejected input


def test_not_audio_named_mp3(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.mp3", b"This is a text file, not audio.\n" * 200)
    assert _code(path) == "unsupported_media"


def test_empty_file(tmp_path: Path) -> None:
    assert _code(_write(tmp_path / "empty.ogg", b"")) == "empty_audio"


def test_missing_file_is_a_caller_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_file(tmp_path / "nope.ogg", max_seconds=LIMIT)


def test_no_audio_stream(media: dict[str, Path]) -> None:
    assert _code(media["video_only"]) == "no_audio_stream"


def test_zero_length_audio_stream(tmp_path: Path, media: dict[str, Path]) -> None:
    header = _wav_header(media["wav"])
    path = _write(tmp_path / "zero.wav", header[:-4] + struct.pack("<I", 0))
    assert _code(path) == "empty_audio"


def test_truncated_wav(tmp_path: Path, media: dict[str, Path]) -> None:
    data = media["wav"].read_bytes()
    path = _write(tmp_path / "cut.wav", data[: int(len(data) * 0.4)])
    with pytest.raises(AudioRejectedError) as info:
        probe_file(path, max_seconds=LIMIT)
    assert info.value.code == "truncated_audio"
    assert "13.3 s" in info.value.message


def test_truncated_ogg(tmp_path: Path) -> None:
    data = VOICE_NOTE.read_bytes()
    path = _write(tmp_path / "cut.ogg", data[: int(len(data) * 0.4)])
    assert _code(path) == "truncated_audio"


def test_riff_magic_then_random_bytes(tmp_path: Path) -> None:
    junk = random.Random(7).randbytes(20_000)
    path = _write(tmp_path / "junk.wav", b"RIFF" + struct.pack("<I", 20_004) + b"WAVE" + junk)
    assert _code(path) == "unsupported_media"


def test_full_wav_header_then_random_bytes(tmp_path: Path, media: dict[str, Path]) -> None:
    # Random bytes are valid PCM, but far fewer than the header's data chunk promises.
    header = _wav_header(media["wav"])
    path = _write(tmp_path / "noise.wav", header + random.Random(8).randbytes(20_000))
    assert _code(path) == "truncated_audio"


def test_corrupt_frames_mid_file(tmp_path: Path, media: dict[str, Path]) -> None:
    data = bytearray(media["mp3"].read_bytes())
    third = len(data) // 3
    data[third : third + 4000] = random.Random(0).randbytes(4000)
    path = _write(tmp_path / "damaged.mp3", bytes(data))
    with pytest.raises(AudioRejectedError) as info:
        probe_file(path, max_seconds=LIMIT)
    assert info.value.code == "corrupt_audio"


def test_too_long_by_declared_duration() -> None:
    with pytest.raises(AudioRejectedError) as info:
        probe_file(VOICE_NOTE, max_seconds=5)
    assert info.value.code == "audio_too_long"
    assert "13.3 s" in info.value.message
    assert "5.0 s" in info.value.message


def test_too_long_by_decoding(media: dict[str, Path]) -> None:
    with pytest.raises(AudioRejectedError) as info:
        probe_file(media["webm_live"], max_seconds=5)
    assert info.value.code == "audio_too_long"
    assert "declares" not in info.value.message
    assert "5.0 s" in info.value.message


def test_absurd_sample_rate(tmp_path: Path, media: dict[str, Path]) -> None:
    data = bytearray(media["wav"].read_bytes())
    data[24:32] = struct.pack("<II", 500, 1000)  # sample rate, byte rate
    assert _code(_write(tmp_path / "slow.wav", bytes(data))) == "unsupported_media"


def test_absurd_channel_count(tmp_path: Path, media: dict[str, Path]) -> None:
    data = bytearray(media["wav"].read_bytes())
    data[22:24] = struct.pack("<H", 40)
    assert _code(_write(tmp_path / "many.wav", bytes(data))) == "unsupported_media"


def test_error_pickles() -> None:
    error = AudioRejectedError("corrupt_audio", "Broken.")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is AudioRejectedError
    assert (copy.code, copy.message) == ("corrupt_audio", "Broken.")
    assert str(copy) == "corrupt_audio: Broken."


# ------------------------------------------------------------ process isolation


def _crash(path: Path, *, max_seconds: float) -> AudioInfo:
    """Stand-in for a PyAV segfault (runs in the worker process)."""
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def _hang(path: Path, *, max_seconds: float) -> AudioInfo:
    """Stand-in for a decoder stuck in a loop (runs in the worker process)."""
    time.sleep(120)
    raise AssertionError("unreachable")


def test_isolated_good_input(media: dict[str, Path]) -> None:
    assert probe_isolated(VOICE_NOTE, max_seconds=LIMIT, timeout=60) == probe_file(
        VOICE_NOTE, max_seconds=LIMIT
    )
    info = probe_isolated(media["mp4_video"], max_seconds=LIMIT, timeout=60)
    assert info.codec == "aac"


def test_isolated_bad_input(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.mp3", b"not audio\n" * 100)
    with pytest.raises(AudioRejectedError) as info:
        probe_isolated(path, max_seconds=LIMIT, timeout=60)
    assert info.value.code == "unsupported_media"
    with pytest.raises(AudioRejectedError) as info:
        probe_isolated(VOICE_NOTE, max_seconds=5, timeout=60)
    assert info.value.code == "audio_too_long"


def test_isolated_worker_crash_then_recovers() -> None:
    with pytest.raises(AudioRejectedError) as info:
        _run_isolated(_crash, VOICE_NOTE, max_seconds=LIMIT, timeout=60)
    assert info.value.code == "corrupt_audio"
    assert probe_isolated(VOICE_NOTE, max_seconds=LIMIT, timeout=60).codec == "vorbis"


def test_isolated_timeout_kills_worker_then_recovers() -> None:
    started = time.monotonic()
    with pytest.raises(AudioRejectedError) as info:
        _run_isolated(_hang, VOICE_NOTE, max_seconds=LIMIT, timeout=2)
    assert info.value.code == "probe_timeout"
    assert time.monotonic() - started < 30
    assert probe_isolated(VOICE_NOTE, max_seconds=LIMIT, timeout=60).codec == "vorbis"


def test_crash_does_not_fail_a_concurrent_good_probe() -> None:
    """A crash breaks the whole pool; the innocent probe in flight must still succeed."""
    results: dict[str, AudioInfo | str] = {}

    def good() -> None:
        try:
            results["good"] = probe_isolated(VOICE_NOTE, max_seconds=LIMIT, timeout=60)
        except AudioRejectedError as exc:
            results["good"] = exc.code

    def bad() -> None:
        try:
            results["bad"] = _run_isolated(_crash, VOICE_NOTE, max_seconds=LIMIT, timeout=60)
        except AudioRejectedError as exc:
            results["bad"] = exc.code

    threads = [threading.Thread(target=good), threading.Thread(target=bad)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results["bad"] == "corrupt_audio"
    assert isinstance(results["good"], AudioInfo)
    assert results["good"].codec == "vorbis"
