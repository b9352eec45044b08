"""The offline diarizer: Silero VAD, GE2E windows, spectral clustering, smoothed turns.

Runs with what the worker already installs (numpy, onnxruntime, the faster-whisper wheel's
Silero VAD) plus resemblyzer's weights; no torch. The steps:

1. speech regions from Silero VAD (`faster_whisper.vad`), run a minute at a time: it
   processes its input in one batch, 210 MB of activations for ten minutes;
2. the power mel spectrogram of the whole recording (10 ms frames) and, over each region,
   1.6 s windows every `step_seconds` (a region shorter than a window gets one window
   centred on it), embedded by the GE2E encoder;
3. spectral clustering (`clustering.py`) of at most `max_cluster_windows` of them, chosen
   evenly across the recording: it is cubic in their number (1,500 take a few seconds and
   about 100 MB). The windows left out join the cluster of the nearest centroid;
4. each 10 ms frame of speech takes the speaker most of the windows covering it belong to;
   runs shorter than `min_turn_seconds` join their longer neighbour; non-speech is left out.

Speakers are numbered in order of first appearance; each one's centroid is the normalised
mean of its windows' embeddings. Measured by scripts/benchmarks/diarization.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from transcription_worker.decode import SAMPLE_RATE
from transcription_worker.diarization.base import (
    Diarization,
    Embeddings,
    Samples,
    Turn,
    by_appearance,
    speaker_bounds,
)
from transcription_worker.diarization.clustering import centroids_of, spectral_clusters
from transcription_worker.diarization.ge2e import (
    PARTIAL_FRAMES,
    GE2EEncoder,
    GE2EWeights,
    Runtime,
)
from transcription_worker.diarization.mel import HOP, mel_spectrogram

FRAME_SECONDS = HOP / SAMPLE_RATE  # 10 ms
_VAD_CHUNK_SECONDS = 60  # 52 MB of Silero activations; its state restarts each minute


@dataclass(frozen=True)
class OfflineOptions:
    """How the offline diarizer cuts, embeds and clusters (defaults measured on 2 cores)."""

    # 0.6 s: as accurate as 0.4 on the benchmark corpus with a third fewer windows to embed
    # (the encoder is most of the time); at 0.8 more files got a wrong speaker count.
    step_seconds: float = 0.6
    max_cluster_windows: int = 1500
    max_speakers: int = 8  # the estimate's ceiling when the caller gives no bound
    min_turn_seconds: float = 0.5
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 300
    vad_speech_pad_ms: int = 100
    runtime: Runtime = "onnx"
    seed: int = 0


@dataclass(frozen=True)
class Stats:
    """What one run looked at: for tests and benchmarks."""

    speech_seconds: float
    regions: int
    windows: int
    clustered: int


@cache
def shared_encoder(runtime: Runtime) -> GE2EEncoder:
    """The process's GE2E encoder (weights read once, on first use)."""
    return GE2EEncoder(GE2EWeights.load(), runtime)


_encoder_lock = threading.Lock()


def speech_regions(samples: Samples, options: OfflineOptions) -> list[tuple[int, int]]:
    """(start, end) sample indices of speech, by Silero VAD."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions(
        threshold=options.vad_threshold,
        min_silence_duration_ms=options.vad_min_silence_ms,
        speech_pad_ms=options.vad_speech_pad_ms,
    )
    chunk = _VAD_CHUNK_SECONDS * SAMPLE_RATE
    regions: list[tuple[int, int]] = []
    for offset in range(0, len(samples), chunk):
        piece = samples[offset : offset + chunk]
        for speech in get_speech_timestamps(piece, vad, sampling_rate=SAMPLE_RATE):
            start, end = offset + int(speech["start"]), offset + int(speech["end"])
            if regions and start <= regions[-1][1]:  # joined across a chunk boundary
                regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
            elif end > start:
                regions.append((start, end))
    return regions


def window_starts(regions: list[tuple[int, int]], n_frames: int, step: int) -> npt.NDArray[np.intp]:
    """First frames of the windows covering every region (one centred window if short)."""
    starts: list[npt.NDArray[np.intp]] = []
    last = max(0, n_frames - PARTIAL_FRAMES)
    for start, end in regions:
        first, stop = start // HOP, -(-end // HOP)
        if stop - first >= PARTIAL_FRAMES:
            found = np.arange(first, stop - PARTIAL_FRAMES + 1, step, dtype=np.intp)
            if found[-1] != stop - PARTIAL_FRAMES:
                found = np.append(found, stop - PARTIAL_FRAMES)
        else:
            found = np.array([(first + stop) // 2 - PARTIAL_FRAMES // 2], np.intp)
        starts.append(np.clip(found, 0, last))
    return np.concatenate(starts) if starts else np.zeros(0, np.intp)


def frame_votes(starts: npt.NDArray[np.intp], labels: npt.NDArray[np.intp], k: int,
                n_frames: int) -> npt.NDArray[np.int32]:  # fmt: skip
    """(n_frames, k): how many windows of each speaker cover each frame."""
    change = np.zeros((n_frames + PARTIAL_FRAMES + 1, k), np.int32)
    np.add.at(change, (starts, labels), 1)
    np.add.at(change, (starts + PARTIAL_FRAMES, labels), -1)
    return np.cumsum(change, axis=0)[:n_frames]


def _nearest(values: npt.NDArray[np.intp], queries: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Index of the nearest of the sorted `values` to each query."""
    right = np.searchsorted(values, queries).clip(0, len(values) - 1)
    left = (right - 1).clip(0)
    closer = np.abs(values[left] - queries) <= np.abs(values[right] - queries)
    return np.where(closer, left, right).astype(np.intp)


def _smooth(labels: npt.NDArray[np.intp], shortest: int) -> npt.NDArray[np.intp]:
    """Runs shorter than `shortest` frames take the label of their longer neighbour."""
    labels = labels.copy()
    while True:
        edges = np.flatnonzero(np.diff(labels)) + 1
        bounds = np.concatenate([[0], edges, [len(labels)]])
        lengths = np.diff(bounds)
        if len(lengths) < 2 or lengths.min() >= shortest:
            return labels
        run = int(np.argmin(lengths))
        left = lengths[run - 1] if run > 0 else -1
        right = lengths[run + 1] if run + 1 < len(lengths) else -1
        source = bounds[run - 1] if left >= right else bounds[run + 1]
        labels[bounds[run] : bounds[run + 1]] = labels[source]


class OfflineDiarizer:
    """`Diarizer` on GE2E embeddings and spectral clustering, without torch."""

    def __init__(
        self, options: OfflineOptions | None = None, encoder: GE2EEncoder | None = None
    ) -> None:
        self.options = options or OfflineOptions()
        self._encoder = encoder

    @property
    def encoder(self) -> GE2EEncoder:
        """The GE2E encoder, loaded on first use and shared by the process."""
        if self._encoder is None:
            with _encoder_lock:
                self._encoder = shared_encoder(self.options.runtime)
        return self._encoder

    def voice_print(self, samples: Samples) -> Embeddings:
        """A reference clip's embedding, comparable with `Diarization.centroids`."""
        return self.encoder.voice_print(np.asarray(samples, np.float32))

    def diarize(
        self,
        samples: Samples,
        *,
        speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization:
        """Who spoke when (see the module docstring)."""
        result, _ = self.diarize_with_stats(
            samples, speakers=speakers, min_speakers=min_speakers, max_speakers=max_speakers
        )
        return result

    def diarize_with_stats(
        self,
        samples: Samples,
        *,
        speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> tuple[Diarization, Stats]:
        """`diarize`, and how much it looked at."""
        options = self.options
        low, high = speaker_bounds(speakers, min_speakers, max_speakers, options.max_speakers)
        samples = np.asarray(samples, np.float32)
        regions = speech_regions(samples, options)
        speech = sum(end - start for start, end in regions) / SAMPLE_RATE
        if not regions:
            return Diarization([], np.zeros((0, 256), np.float32)), Stats(0.0, 0, 0, 0)
        mel = mel_spectrogram(samples)
        n_frames = len(mel)
        if n_frames < PARTIAL_FRAMES:  # shorter than one window: zero-padded, as resemblyzer does
            mel = np.vstack([mel, np.zeros((PARTIAL_FRAMES - n_frames, mel.shape[1]), np.float32)])
        step = max(1, round(options.step_seconds / FRAME_SECONDS))
        starts = window_starts(regions, len(mel), step)
        embeddings = self.encoder.embed_windows(mel, starts)
        del mel

        chosen = np.arange(len(starts))
        if len(chosen) > options.max_cluster_windows:  # evenly, across the whole recording
            chosen = np.unique(np.linspace(0, len(starts) - 1, options.max_cluster_windows)
                               .round().astype(np.intp))  # fmt: skip
        clusters = spectral_clusters(embeddings[chosen], low, high, options.seed)
        k = int(clusters.max()) + 1
        centroids = centroids_of(embeddings[chosen], clusters, k)
        labels = np.argmax(embeddings @ centroids.T, axis=1).astype(np.intp)
        labels[chosen] = clusters  # the others join the nearest centroid
        shortest = max(1, round(options.min_turn_seconds / FRAME_SECONDS))
        turns = self._turns(regions, starts, labels, k, n_frames, shortest)
        if len({t.speaker for t in turns}) < min(low, k):  # a required speaker was smoothed away
            turns = self._turns(regions, starts, labels, k, n_frames, 1)
        centroids = centroids_of(embeddings, labels, k)
        stats = Stats(speech, len(regions), len(starts), len(chosen))
        return by_appearance(turns, centroids), stats

    @staticmethod
    def _turns(regions: list[tuple[int, int]], starts: npt.NDArray[np.intp],
               labels: npt.NDArray[np.intp], k: int, n_frames: int,
               shortest: int) -> list[Turn]:  # fmt: skip
        """Frame-level majority of the covering windows, runs under `shortest` frames
        absorbed, inside each region."""
        votes = frame_votes(starts, labels, k, max(n_frames, int(starts.max()) + PARTIAL_FRAMES))
        order = np.argsort(starts, kind="stable")
        centres = starts[order] + PARTIAL_FRAMES // 2
        turns: list[Turn] = []
        for start, end in regions:
            first, stop = start // HOP, max(start // HOP + 1, -(-end // HOP))
            region_votes = votes[first:stop]
            frame_labels = np.argmax(region_votes, axis=1).astype(np.intp)
            uncovered = region_votes.sum(axis=1) == 0
            if uncovered.any():  # no window over it: the nearest window's speaker
                frames = np.arange(first, stop)[uncovered]
                frame_labels[uncovered] = labels[order[_nearest(centres, frames)]]
            frame_labels = _smooth(frame_labels, shortest)
            cuts = np.flatnonzero(np.diff(frame_labels)) + 1
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(frame_labels)], strict=True):
                begin = max(start, (first + int(a)) * HOP) / SAMPLE_RATE
                finish = min(end, (first + int(b)) * HOP) / SAMPLE_RATE
                if finish > begin:
                    turns.append(Turn(round(begin, 3), round(finish, 3), int(frame_labels[a])))
        return turns
