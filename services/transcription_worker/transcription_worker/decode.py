"""Decode uploaded audio to 16 kHz mono float32 in an isolated process.

faster-whisper's own `decode_audio` runs in the calling process and holds the whole PCM twice
(an int16 buffer and its float32 copy: about 1.7 GB for 10 hours), and PyAV can crash the
process on a malformed container. A crash inside a Celery worker with `acks_late` and
`reject_on_worker_lost` redelivers the task again and again, so decoding happens here instead:

- `decode_to_file` runs the decoder in a long-lived child process (`DecoderProcess`, so
  there is no interpreter start-up per file, which matters for 15 s voice notes) with a
  timeout. It streams PyAV frames through a resampler and appends raw float32
  (little-endian) samples to TARGET chunk by chunk, so no process ever holds the whole PCM.
  `python -m transcription_worker.decode SOURCE TARGET` does the same from a shell.
- A crash (killed by a signal), a Python error, a timeout or a file without audio become a
  `DecodeError` with a stable `code`, which fails the job instead of the worker.
- `DecodedAudio.array()` maps TARGET read-only (`np.memmap`): pages are read on demand and
  are clean, so the kernel can drop them under memory pressure instead of the worker holding
  another private copy.

The samples are identical to `faster_whisper.audio.decode_audio`'s: the same resampler
settings (s16 mono 16 kHz), then int16 / 32768 per block. Resampling straight to "flt" would
differ for anything that is not already mono: libswresample only normalises its downmix
matrix for integer output, so stereo -> mono in float gives (L + R) / sqrt(2) (values beyond
+-1, up to 0.37 off on a test file) where s16 gives (L + R) / 2.

faster-whisper still copies the array it is given (its VAD and feature extractor pad it, and
sequential mode computes the log-Mel spectrogram of the whole recording at once), so the memory
map removes the decode-side copies, not the model's own working memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000  # every recording is decoded to this rate: what Whisper and the diarizer read
# Frames are grouped into blocks of this many input samples before resampling, as
# faster-whisper does (it uses 500 000: fewer resampler calls). The resampler streams, so the
# block size does not change the output; it does set the decoder's working memory (several
# block-sized buffers inside libswresample: about 40 MB over the baseline for 48 kHz stereo
# with 500 000, about 10 MB with 100 000).
GROUP_SAMPLES = 100_000
_MESSAGE_LIMIT = 300


class DecodeError(Exception):
    """Audio that cannot be decoded; `code` is stored on the job, `message` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedAudio:
    """Raw float32 little-endian 16 kHz mono samples in a file."""

    path: Path
    samples: int
    sample_rate: int
    duration_seconds: float
    # Peak resident memory of the decoder process, when it reported it (bytes).
    decoder_peak_rss_bytes: int | None = None

    def array(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The samples as a read-only memory map (no copy; pages load on demand)."""
        import numpy as np

        return np.memmap(self.path, dtype="<f4", mode="r", shape=(self.samples,))


class DecoderCrashedError(Exception):
    """The decoder process died while decoding (a signal, or it exited)."""


class DecoderTimeoutError(Exception):
    """The decoder process was still busy when its time was up; it was killed."""


class DecoderProcess:
    """A long-lived `python -m transcription_worker.decode --serve` child.

    One request at a time over pipes (a JSON line each way). Reusing the process saves an
    interpreter start-up per file, which would cost more than decoding a voice note. It is
    a plain subprocess rather than a multiprocessing pool because Celery's prefork children
    are daemonic and may not have multiprocessing children. A crash ends only the child:
    the next request starts a new one.
    """

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [self.python, "-m", "transcription_worker.decode", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # a timeout kills the whole group
            )
        return self._process

    def request(self, source: Path, target: Path, timeout: float) -> dict[str, Any]:
        """Decode `source` into `target` in the child; returns the child's summary."""
        with self._lock:
            process = self._running()
            assert process.stdin is not None
            assert process.stdout is not None
            line = json.dumps({"source": str(source), "target": str(target)}) + "\n"
            try:
                process.stdin.write(line.encode())
                process.stdin.flush()
            except BrokenPipeError:
                pass  # it died before reading: reported below as a crash
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            if not ready:
                self._kill(process)
                raise DecoderTimeoutError
            answer = process.stdout.readline()
            if not answer:
                returncode = process.wait()
                self._process = None
                raise DecoderCrashedError(_describe_exit(returncode))
            summary: dict[str, Any] = json.loads(answer)
            return summary

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self._process = None

    def stop(self) -> None:
        """End the child (closing its input ends its loop)."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                self._kill(process)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-returncode).name
        return f"signal {-returncode}"
    return f"exit status {returncode}"


_DECODER = DecoderProcess()


def decode_to_file(source: Path, target: Path, *, timeout: float) -> DecodedAudio:
    """Decode `source` into raw float32 samples at `target` in the decoder process.

    Raises `DecodeError` with code `corrupt_audio` (the decoder failed or crashed),
    `decode_timeout` (it ran longer than `timeout` seconds and was killed) or `empty_audio`
    (no audio stream, or no samples). `target` is removed when decoding fails.
    """
    if source.stat().st_size == 0:
        raise DecodeError("empty_audio", "The uploaded file is empty.")
    try:
        return _checked(_decode_with(_DECODER, source, target, timeout), target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _decode_with(
    decoder: DecoderProcess, source: Path, target: Path, timeout: float
) -> dict[str, Any]:
    """Ask `decoder` for one file and turn what goes wrong into a DecodeError."""
    try:
        summary = decoder.request(source, target, timeout)
    except DecoderTimeoutError:
        raise DecodeError(
            "decode_timeout",
            f"Decoding the audio took longer than {timeout:g} s and was stopped.",
        ) from None
    except DecoderCrashedError as exc:
        raise DecodeError(
            "corrupt_audio",
            f"The audio decoder crashed on this file ({exc}); the file is probably damaged "
            "or not a supported audio format.",
        ) from None
    error = summary.get("error")
    if error:
        # The storage path is internal: keep only the file name in the job's error.
        message = str(error).replace(str(source), source.name)[:_MESSAGE_LIMIT]
        raise DecodeError("corrupt_audio", f"The audio could not be decoded: {message}")
    return summary


def _checked(summary: dict[str, Any], target: Path) -> DecodedAudio:
    samples = int(summary.get("samples", 0))
    rate = int(summary.get("sample_rate", SAMPLE_RATE))
    if summary.get("audio_streams") == 0:
        raise DecodeError("empty_audio", "The file has no audio stream.")
    if samples <= 0:
        raise DecodeError("empty_audio", "The file contains no audio samples.")
    size = target.stat().st_size if target.exists() else 0
    if size != samples * 4:
        raise DecodeError(
            "corrupt_audio",
            f"The audio decoder reported {samples} samples but wrote {size} bytes.",
        )
    rss = summary.get("max_rss_bytes")
    return DecodedAudio(
        path=target,
        samples=samples,
        sample_rate=rate,
        duration_seconds=samples / rate,
        decoder_peak_rss_bytes=int(rss) if rss is not None else None,
    )


def start_decoder() -> None:
    """Start the decoder process ahead of the first job (worker start-up)."""
    with _DECODER._lock:
        _DECODER._running()


def shutdown_decoder() -> None:
    """Stop the decoder process (worker shutdown)."""
    _DECODER.stop()


# --- in the pool process ---------------------------------------------------------------


def _decode_into(source: Path, target: Path) -> dict[str, Any]:
    """Decode `source` into `target`; errors come back as data (exceptions may not pickle)."""
    try:
        with target.open("wb") as out:
            summary: dict[str, Any] = dict(decode_stream(source, out))
    except Exception as exc:
        message = " ".join(str(exc).split()) or "no details"
        return {"error": f"{type(exc).__name__}: {message}"}
    return {**summary, "max_rss_bytes": peak_rss_bytes()}


def decode_stream(source: Path, out: IO[bytes]) -> dict[str, int]:
    """Decode the first audio stream of `source` to float32 16 kHz mono, written to `out`.

    Holds one block of frames at a time. Returns the summary the child prints.
    """
    import av
    import av.error

    samples = 0
    with av.open(str(source), mode="r", metadata_errors="ignore") as container:
        streams = len(container.streams.audio)
        if not streams:
            return {"samples": 0, "sample_rate": SAMPLE_RATE, "audio_streams": 0}
        # s16, then float per block, exactly as faster-whisper's decode_audio (see the module
        # docstring for why not "flt").
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        fifo = av.AudioFifo()
        frames = container.decode(audio=0)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.InvalidDataError:
                continue  # a damaged packet: skip it, as faster-whisper does
            frame.pts = None  # mixed time bases would fail the fifo's timestamp check
            fifo.write(frame)
            if fifo.samples >= GROUP_SAMPLES:
                samples += _write(resampler.resample(fifo.read()), out)
        if fifo.samples > 0:
            samples += _write(resampler.resample(fifo.read()), out)
        samples += _write(resampler.resample(None), out)  # flush the resampler
    return {
        "samples": samples,
        "sample_rate": SAMPLE_RATE,
        "audio_streams": streams,
    }


def _write(frames: list[Any], out: IO[bytes]) -> int:
    import numpy as np

    written = 0
    for frame in frames:
        pcm = frame.to_ndarray().reshape(-1)  # int16, one block
        out.write((pcm.astype("<f4") / np.float32(32768.0)).tobytes())
        written += pcm.shape[0]
    return written


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started the decoder program.

    On Linux `ru_maxrss` also counts the parent's resident set at fork time (the kernel
    carries it across exec), so the process's own high-water mark, VmHWM, is read instead.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)  # kilobytes on Linux


def serve() -> None:
    """The decoder process's loop: one JSON request per input line, one summary per output."""
    # Only protocol lines go to stdout; anything else a library prints goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        summary = _decode_into(Path(request["source"]), Path(request["target"]))
        channel.write(json.dumps(summary) + "\n")


def main(argv: list[str] | None = None) -> int:
    """`python -m transcription_worker.decode SOURCE TARGET`: decode, print a JSON summary."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--serve"]:
        serve()
        return 0
    if len(args) != 2:
        print("usage: python -m transcription_worker.decode SOURCE TARGET | --serve",
              file=sys.stderr)  # fmt: skip
        return 2
    summary = _decode_into(Path(args[0]), Path(args[1]))
    print(json.dumps(summary))
    return 1 if "error" in summary else 0


if __name__ == "__main__":
    sys.exit(main())
