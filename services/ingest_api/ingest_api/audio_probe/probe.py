"""Probe and validate uploaded audio with PyAV.

``probe_file`` opens a file, picks its first audio stream and decodes every packet of
it, so that what we accept is audio that can really be decoded (not just a plausible
header).  Problems become :class:`AudioRejectedError` with a stable API error code:

===================  ==========================================================
``unsupported_media``  not a container/codec we can read, or absurd parameters
``no_audio_stream``    a readable container without any audio stream
``empty_audio``        an empty file, or an audio stream with no samples
``audio_too_long``     declared or decoded duration above the limit
``corrupt_audio``      demuxing/decoding fails part-way (or the prober crashed)
``truncated_audio``    far less audio decodes than the file declares
``probe_timeout``      ``probe_isolated`` only: probing took too long
===================  ==========================================================

PyAV/FFmpeg behaviour handled here:

* FFmpeg's WAV demuxer clamps the duration it reports to the bytes actually present,
  so a WAV cut short looks complete.  We read the RIFF ``data`` chunk size ourselves
  to know how much audio the header promised.
* Ogg has no global duration; FFmpeg reports the last complete page's granule
  position and silently drops a partial last page.  A file that ends in the middle
  of an Ogg page is treated as truncated.  (A cut exactly on a page boundary, or a
  truncated MP3 without a Xing/Info header, cannot be told apart from a shorter
  recording.)
* Tags that are not valid UTF-8 would make ``av.open`` raise ``UnicodeDecodeError``
  with the default ``metadata_errors="strict"``; we open with ``"replace"``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer

__all__ = [
    "AudioInfo",
    "AudioRejectedError",
    "human_duration",
    "probe_file",
]

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32

# A declared duration is "not honoured" when less than this share of it decodes...
_TRUNCATION_RATIO = 0.9
# ...minus this slack in seconds (encoder delay/padding, rounding in short files).
_TRUNCATION_SLACK_SECONDS = 0.5

_AV_TIME_BASE = 1_000_000  # FFmpeg's AV_TIME_BASE: container.duration is in microseconds


@dataclass(frozen=True)
class AudioInfo:
    """What probing found out about an accepted upload."""

    container: str  # FFmpeg demuxer name, e.g. "ogg", "wav", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # canonical codec name, e.g. "vorbis", "opus", "mp3", "aac", "pcm_s16le"
    sample_rate: int
    channels: int
    duration_seconds: float  # measured by decoding, not taken from the header


class AudioRejectedError(Exception):
    """An upload is not acceptable audio; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        # Passing both to Exception.__init__ keeps ``self.args == (code, message)``,
        # which is what the default pickling calls ``cls(*args)`` with, so the error
        # round-trips from a ProcessPoolExecutor worker.
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[AudioRejectedError], tuple[str, str]]:
        return (type(self), (self.code, self.message))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --------------------------------------------------------------------------- helpers


def human_duration(seconds: float) -> str:
    """Say a duration the way an error message should (seconds, minutes or hours)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


def _too_long(duration: float, max_seconds: float, *, declared: bool) -> AudioRejectedError:
    what = "declares a length of" if declared else "is"
    return AudioRejectedError(
        "audio_too_long",
        f"The recording {what} {human_duration(duration)}, "
        f"which is over the limit of {human_duration(max_seconds)}.",
    )


def _declared_duration(container: InputContainer, stream: AudioStream) -> float | None:
    """Duration the file claims for the audio, in seconds, or None if unknown.

    The audio stream's own duration wins over the container's: in a video file the
    container duration covers the longest stream, which may not be the audio.
    """
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / _AV_TIME_BASE
    return None


def _wav_header_duration(path: Path) -> float | None:
    """Duration promised by a RIFF/WAVE header's ``data`` chunk size, if plausible.

    FFmpeg clamps its WAV duration to the file size, which hides truncation.
    Streaming writers put 0 or 0xFFFFFFFF in the size fields; those give None.
    """
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    byte_rate = 0
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        if chunk_id == b"fmt " and pos + 16 <= len(head):
            (byte_rate,) = struct.unpack_from("<I", head, pos + 16)
        elif chunk_id == b"data":
            if size in (0, 0xFFFFFFFF) or byte_rate <= 0:
                return None
            return float(size) / byte_rate
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


def _ogg_ends_mid_page(path: Path) -> bool:
    """True if the last Ogg page in the file is cut short."""
    max_page = 27 + 255 + 255 * 255  # header + lacing table + largest body
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - max_page))
        tail = fh.read()
    start = tail.rfind(b"OggS")
    while start != -1:
        if start + 27 > len(tail):
            return True  # cut inside a page header
        if tail[start + 4] == 0:  # stream structure version: always 0
            n_segments = tail[start + 26]
            lacing = tail[start + 27 : start + 27 + n_segments]
            if len(lacing) < n_segments:
                return True
            return start + 27 + n_segments + sum(lacing) > len(tail)
        start = tail.rfind(b"OggS", 0, start)
    return False


# --------------------------------------------------------------------------- probing


def probe_file(path: Path, *, max_seconds: float) -> AudioInfo:
    """Open ``path``, decode its first audio stream fully and return what was found.

    Raises :class:`AudioRejectedError` when the file is not acceptable audio, and
    ``FileNotFoundError`` when ``path`` does not exist (a caller bug, not bad input).
    Decoded frames are discarded as soon as they are counted, so memory stays bounded
    whatever the length of the file.
    """
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioRejectedError("empty_audio", "The file is empty.")

    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AudioRejectedError(
            "unsupported_media", f"The file is not audio Voxflow can read ({reason})."
        ) from exc

    with container:
        if not container.streams.audio:
            raise AudioRejectedError(
                "no_audio_stream", "The file can be read but contains no audio track."
            )
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None:  # FFmpeg has no decoder for it (e.g. a WAV declaring 0-bit samples)
            raise AudioRejectedError(
                "unsupported_media", "The file is not audio Voxflow can read (unknown audio codec)."
            )
        sample_rate = int(ctx.sample_rate or 0)
        channels = int(ctx.channels or 0)
        codec = ctx.codec.canonical_name
        container_name = container.format.name

        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise AudioRejectedError(
                "unsupported_media",
                f"The file is not audio Voxflow can read "
                f"(sample rate {sample_rate} Hz is out of range).",
            )
        if not 1 <= channels <= MAX_CHANNELS:
            raise AudioRejectedError(
                "unsupported_media",
                f"The file is not audio Voxflow can read ({channels} channels).",
            )

        declared = _declared_duration(container, stream)
        if declared is not None and declared > max_seconds:
            raise _too_long(declared, max_seconds, declared=True)

        decoded = _decode_duration(container, stream, sample_rate, max_seconds)

    if decoded <= 0:
        raise AudioRejectedError("empty_audio", "The file has an audio track but no sound in it.")

    promised = declared
    if container_name == "wav":
        header = _wav_header_duration(path)
        if header is not None and (promised is None or header > promised):
            promised = header
    cut_short = (
        promised is not None and decoded < _TRUNCATION_RATIO * promised - _TRUNCATION_SLACK_SECONDS
    )
    if cut_short or (container_name == "ogg" and _ogg_ends_mid_page(path)):
        promised_text = (
            f"it should be {human_duration(promised)} long but "
            if cut_short and promised is not None
            else ""
        )
        raise AudioRejectedError(
            "truncated_audio",
            f"The file looks cut off: {promised_text}only {human_duration(decoded)} "
            "could be decoded. Please upload the complete recording.",
        )

    return AudioInfo(
        container=container_name,
        codec=codec,
        sample_rate=sample_rate,
        channels=channels,
        duration_seconds=decoded,
    )


def _decode_duration(
    container: InputContainer, stream: AudioStream, sample_rate: int, max_seconds: float
) -> float:
    """Decode every packet of ``stream``; return the decoded length in seconds."""
    import av

    seconds = 0.0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                # A frame's own rate can differ from the stream's (e.g. HE-AAC).
                seconds += frame.samples / (frame.sample_rate or sample_rate)
            if seconds > max_seconds:
                # Stop early: no point decoding hours of audio we will refuse anyway.
                raise _too_long(seconds, max_seconds, declared=False)
    except av.FFmpegError as exc:
        at = human_duration(seconds)
        reason = exc.strerror or type(exc).__name__
        raise AudioRejectedError(
            "corrupt_audio",
            f"The audio is damaged and cannot be decoded past {at} ({reason}).",
        ) from exc
    return seconds
