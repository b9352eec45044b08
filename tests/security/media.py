"""Audio and multipart bodies built byte by byte, for uploads no well-behaved client would send."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av
import numpy as np
from av.audio.stream import AudioStream

from tests.conftest import SAMPLES

VOICE_NOTE = SAMPLES / "voice_note.ogg"
BOUNDARY = b"vf-hostile-7d1c"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY.decode()}"


@dataclass(frozen=True)
class Media:
    """The voice note in several containers, each a complete, valid recording."""

    ogg: bytes
    mp3: bytes
    flac: bytes
    m4a: bytes
    wav: bytes
    video_only: bytes


def transcode(fmt: str, codec: str, rate: int = 16000) -> bytes:
    """The voice note re-encoded with `codec` into an in-memory `fmt` container."""
    out_buffer = io.BytesIO()
    with av.open(str(VOICE_NOTE)) as src, av.open(out_buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, AudioStream)
        formats = stream.codec_context.codec.audio_formats
        assert formats
        resampler = av.AudioResampler(format=formats[0].name, layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for resampled in resampler.resample(frame):
                resampled.pts = None
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            resampled.pts = None
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def video_without_audio() -> bytes:
    """A tiny MP4 with one black video track and no audio."""
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        black = np.zeros((48, 64, 3), dtype=np.uint8)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(black, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def make_media() -> Media:
    """Encode the voice note once per container."""
    return Media(
        ogg=VOICE_NOTE.read_bytes(),
        mp3=transcode("mp3", "libmp3lame"),
        flac=transcode("flac", "flac"),
        m4a=transcode("ipod", "aac"),
        wav=wav(seconds=2.0),
        video_only=video_without_audio(),
    )


def wav(
    *,
    rate: int = 16000,
    channels: int = 1,
    bits: int = 16,
    seconds: float = 1.0,
    frames: int | None = None,
    byte_rate: int | None = None,
    block_align: int | None = None,
    data_size: int | None = None,
) -> bytes:
    """A PCM WAV of a sine tone whose header fields can each be made to lie."""
    count = int(rate * seconds) if frames is None else frames
    tone = np.sin(np.arange(count * max(channels, 1)) * 0.05) * 8000
    pcm: bytes = tone.astype("<i2").tobytes()
    align = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack(
        "<HHIIHH", 1, channels, rate, rate * align if byte_rate is None else byte_rate, align, bits
    )
    size = len(pcm) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", size) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flac_declaring(media: Media, total_samples: int) -> bytes:
    """The FLAC file with STREAMINFO claiming `total_samples` (a 36-bit field)."""
    data = bytearray(media.flac)
    # "fLaC", a 4-byte block header, then STREAMINFO: the 8 bytes at 18 hold sample rate
    # (20 bits), channels (3), bits per sample (5) and total samples (36).
    (packed,) = struct.unpack_from(">Q", data, 18)
    packed = (packed & ~((1 << 36) - 1)) | (total_samples & ((1 << 36) - 1))
    struct.pack_into(">Q", data, 18, packed)
    return bytes(data)


def part(
    name: bytes,
    content: bytes,
    *,
    filename: bytes | None = None,
    content_type: bytes | None = None,
    disposition: bytes | None = None,
) -> bytes:
    """One multipart part, headers written verbatim."""
    if disposition is None:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
    headers = b"Content-Disposition: " + disposition + b"\r\n"
    if content_type is not None:
        headers += b"Content-Type: " + content_type + b"\r\n"
    return b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n" + content + b"\r\n"


def form(*parts: bytes, closed: bool = True) -> bytes:
    """A multipart body from parts, with (or without) its closing boundary."""
    return b"".join(parts) + (b"--" + BOUNDARY + b"--\r\n" if closed else b"")


def file_form(content: bytes, filename: bytes = b"recording.wav") -> bytes:
    """A form whose only part is the file."""
    return form(part(b"file", content, filename=filename, content_type=b"audio/wav"))
