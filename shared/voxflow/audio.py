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

``probe_isolated`` runs ``probe_file`` in a worker process, because FFmpeg can crash
the whole interpreter on hostile input (PyAV issue #2344).

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

import multiprocessing
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer

__all__ = [
    "AudioInfo",
    "AudioRejectedError",
    "probe_file",
    "probe_isolated",
    "shutdown_probe_pool",
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


def _human_duration(seconds: float) -> str:
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
        f"The recording {what} {_human_duration(duration)}, "
        f"which is over the limit of {_human_duration(max_seconds)}.",
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
            f"it should be {_human_duration(promised)} long but "
            if cut_short and promised is not None
            else ""
        )
        raise AudioRejectedError(
            "truncated_audio",
            f"The file looks cut off: {promised_text}only {_human_duration(decoded)} "
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
        at = _human_duration(seconds)
        reason = exc.strerror or type(exc).__name__
        raise AudioRejectedError(
            "corrupt_audio",
            f"The audio is damaged and cannot be decoded past {at} ({reason}).",
        ) from exc
    return seconds


# --------------------------------------------------------------- process isolation

# Start method for probe workers.  "fork" is out: the parent is a uvicorn/FastAPI
# process with an event loop and thread pools, and forking a multi-threaded process
# can deadlock the child on locks held by other threads.  "forkserver" starts one
# clean, single-threaded server process (via exec, like "spawn") the first time it
# is needed and then forks each worker from it, so workers are cheap to (re)create
# after a crash or timeout kill, and none of them inherit the app's threads, sockets
# or DB connections.  "spawn" is the fallback where forkserver is unavailable.
# Either way the parent's ``__main__`` must be import-safe (uvicorn's is).
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
_MAX_WORKERS = 2

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
# At most one probe per worker in flight, so that ``timeout`` measures probing
# time rather than time spent queued behind other uploads.
_slots = threading.BoundedSemaphore(_MAX_WORKERS)


class _WorkerDiedError(Exception):
    """The worker process running a probe exited abnormally (crash or kill)."""


def _new_executor(max_workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=max_workers, mp_context=multiprocessing.get_context(_START_METHOD)
    )


def _get_pool() -> ProcessPoolExecutor:
    global _pool  # noqa: PLW0603 - the module-level pool is the point
    with _pool_lock:
        if _pool is None:
            _pool = _new_executor(_MAX_WORKERS)
        return _pool


def _discard_pool(pool: ProcessPoolExecutor) -> None:
    """Forget ``pool`` (if still current) so the next probe gets a fresh one."""
    global _pool  # noqa: PLW0603
    with _pool_lock:
        if _pool is pool:
            _pool = None


def _kill_executor(pool: ProcessPoolExecutor) -> None:
    """Kill the executor's workers (a stuck FFmpeg call cannot be interrupted).

    ``ProcessPoolExecutor`` has no public way to do this before Python 3.14
    (``kill_workers``), so we use its ``_processes`` mapping.
    """
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _await(future: Future[AudioInfo], timeout: float) -> AudioInfo:
    """Wait for ``future``; a dead worker becomes ``_WorkerDiedError``.

    Raises ``TimeoutError`` only when the probe is still running after ``timeout``.
    """
    try:
        return future.result(timeout=timeout)
    except BrokenProcessPool as exc:
        raise _WorkerDiedError from exc
    except TimeoutError:
        if future.done():  # the probe itself raised TimeoutError: not our timeout
            raise
        raise _ProbeTimedOutError from None


class _ProbeTimedOutError(Exception):
    """The probe was still running when its time was up."""


def _timeout_error(timeout: float) -> AudioRejectedError:
    return AudioRejectedError(
        "probe_timeout",
        f"Checking the file took longer than {_human_duration(timeout)}; "
        "it may be damaged or unusually complex.",
    )


def _ping() -> bool:
    return True


def _check_worker_starts(executor: ProcessPoolExecutor, timeout: float) -> None:
    """Fail loudly, without blaming the upload, if no worker process can start.

    Typical causes: the parent's ``__main__`` starts probing at import time without an
    ``if __name__ == "__main__":`` guard, or the system is out of processes/memory.
    """
    try:
        executor.submit(_ping).result(timeout=timeout)
    except (BrokenProcessPool, TimeoutError) as exc:
        raise RuntimeError("audio probe worker process could not be started") from exc


def _run_isolated(
    func: Callable[..., AudioInfo], path: Path, *, max_seconds: float, timeout: float
) -> AudioInfo:
    """Run ``func(path, max_seconds=...)`` in a worker; see :func:`probe_isolated`."""
    with _slots:
        pool = _get_pool()
        try:
            future = pool.submit(func, path, max_seconds=max_seconds)
        except RuntimeError:
            # BrokenProcessPool (a RuntimeError) if a crash broke the pool since we
            # fetched it, or plain RuntimeError if it was shut down meanwhile.
            future = None
        if future is not None:
            try:
                return _await(future, timeout)
            except _ProbeTimedOutError:
                _discard_pool(pool)
                _kill_executor(pool)
                raise _timeout_error(timeout) from None
            except _WorkerDiedError:
                pass
        _discard_pool(pool)
        pool.shutdown(wait=False, cancel_futures=True)

        # A dead worker breaks the whole pool, failing every probe in flight, not
        # only the one that crashed.  Re-run this file alone in a one-off process
        # so that only a file that crashes by itself is reported as corrupt.
        solo = _new_executor(1)
        try:
            _check_worker_starts(solo, timeout)
            return _await(solo.submit(func, path, max_seconds=max_seconds), timeout)
        except _ProbeTimedOutError:
            _kill_executor(solo)
            raise _timeout_error(timeout) from None
        except _WorkerDiedError:
            raise AudioRejectedError(
                "corrupt_audio",
                "The file is damaged: the audio decoder crashed while reading it.",
            ) from None
        finally:
            solo.shutdown(wait=False, cancel_futures=True)


def probe_isolated(path: Path, *, max_seconds: float, timeout: float) -> AudioInfo:
    """Like :func:`probe_file`, but in a worker process with a time limit.

    A worker crash becomes ``corrupt_audio`` and a probe running longer than
    ``timeout`` seconds becomes ``probe_timeout`` (the stuck worker is killed); in both
    cases the pool is replaced.  Blocking: call it from a thread (e.g.
    ``run_in_threadpool``) in async code.  At most two probes run at once; further
    callers wait for a free worker before their ``timeout`` starts.  If a probe was
    caught in a pool broken by another file it is retried once in a fresh process, so
    the worst-case wall time is about ``2 * timeout``.
    """
    return _run_isolated(probe_file, Path(path), max_seconds=max_seconds, timeout=timeout)


def shutdown_probe_pool() -> None:
    """Stop the probe workers (call on application shutdown).

    Idle workers exit normally; a worker still busy after a short grace period is
    killed so shutdown never hangs on a stuck decoder.  A later probe starts a new pool.
    """
    global _pool  # noqa: PLW0603
    with _pool_lock:
        pool = _pool
        _pool = None
    if pool is None:
        return
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    workers = list(processes.values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join(timeout=2.0)
