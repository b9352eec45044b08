"""Decoding options of one job: deployment defaults, overridden by what the job asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from transcription_worker.settings import TranscriptionSettings

Mode = Literal["batched", "sequential"]


@dataclass(frozen=True)
class DecodeOptions:
    """Everything that decides how faster-whisper decodes one file."""

    mode: Mode
    batch_size: int
    beam_size: int
    language: str | None
    vad_filter: bool
    vad_parameters: dict[str, Any] | None
    word_timestamps: bool
    initial_prompt: str | None
    hotwords: str | None
    temperatures: tuple[float, ...]
    live: bool = False  # someone watches the words: a long recording's first batch is small

    @classmethod
    def resolve(
        cls, settings: TranscriptionSettings, job: dict[str, Any], duration: float
    ) -> DecodeOptions:
        """Combine deployment settings with a job's options for audio of `duration` seconds."""
        mode: Mode
        if job.get("mode") in ("batched", "sequential"):
            mode = job["mode"]
        elif settings.whisper_mode != "auto":
            mode = settings.whisper_mode
        else:
            mode = "batched" if duration >= settings.whisper_batched_min_seconds else "sequential"
        vad_parameters: dict[str, Any] = {"threshold": settings.whisper_vad_threshold}
        if settings.whisper_vad_min_silence_ms is not None:
            vad_parameters["min_silence_duration_ms"] = settings.whisper_vad_min_silence_ms
        return cls(
            mode=mode,
            batch_size=settings.whisper_batch_size,
            beam_size=int(job.get("beam_size") or settings.whisper_beam_size),
            language=job.get("language") or settings.whisper_language,
            vad_filter=_pick(job.get("vad_filter"), settings.whisper_vad_filter),
            vad_parameters=vad_parameters,
            # Speakers change within a segment: the words' times say where to split it.
            word_timestamps=bool(job.get("diarize"))
            or _pick(job.get("word_timestamps"), settings.whisper_word_timestamps),
            initial_prompt=job.get("initial_prompt") or settings.whisper_initial_prompt,
            hotwords=job.get("hotwords") or settings.whisper_hotwords,
            temperatures=tuple(settings.whisper_temperatures),
            live=bool(job.get("live")),
        )

    def transcribe_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `WhisperModel.transcribe` or the batched pipeline's."""
        common: dict[str, Any] = {
            "language": self.language,
            "beam_size": self.beam_size,
            "word_timestamps": self.word_timestamps,
            "initial_prompt": self.initial_prompt,
            "hotwords": self.hotwords,
        }
        if self.mode == "sequential":
            return {
                **common,
                "vad_filter": self.vad_filter,
                "vad_parameters": self.vad_parameters if self.vad_filter else None,
                "temperature": list(self.temperatures),
            }
        # Batched decoding needs VAD to cut audio longer than 30 s into chunks, and takes
        # only the first temperature (it has no fallback loop).
        return {
            **common,
            "batch_size": self.batch_size,
            "vad_filter": True,
            "vad_parameters": self.vad_parameters,
            "temperature": self.temperatures[0],
        }


def _pick(job_value: Any, default: bool) -> bool:
    return default if job_value is None else bool(job_value)
