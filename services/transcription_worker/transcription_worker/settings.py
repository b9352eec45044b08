"""Settings of the transcription worker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from voxflow.settings import ENV_CONFIG, ModelSettings, UploadSettings
from voxflow.worker.process import WorkerSettings


class TranscriptionSettings(BaseSettings):
    """How the transcription worker runs Whisper (jobs may override the decoding options)."""

    model_config = ENV_CONFIG

    whisper_device: str = Field(
        default="auto", description="`auto` (CUDA when present), `cpu` or `cuda`."
    )
    whisper_device_index: list[int] = Field(
        default=[0], description="GPU indexes to use (JSON list; one worker process per GPU)."
    )
    whisper_compute_type: str = Field(
        default="auto",
        description="CTranslate2 compute type; `auto` is float16 on GPU and int8 on CPU.",
    )
    whisper_cpu_threads: int = Field(default=0, description="CPU threads (0: library default).")
    whisper_mode: Literal["auto", "batched", "sequential"] = Field(
        default="auto",
        description="`batched` (BatchedInferencePipeline), `sequential`, or `auto` (the "
        "default): batched from WHISPER_BATCHED_MIN_SECONDS of audio, sequential below.",
    )
    whisper_batched_min_seconds: float = Field(
        default=0.0,
        ge=0.0,
        description="In `auto` mode, shortest audio decoded in batched mode (0: all). With "
        "WHISPER_TRIM_WINDOWS off, 30 keeps the punctuation of short notes, which batched "
        "decoding of a padded window often drops.",
    )
    whisper_batch_size: int = Field(
        default=16,
        ge=1,
        description="Clips (30 s chunks) decoded together in batched mode. 16 decodes a "
        "5-minute recording in one generation loop: 1.06x faster than faster-whisper's 8 "
        "on a CPU, same transcript (scripts/benchmarks/batches.py).",
    )
    whisper_first_batch_size: int = Field(
        default=1,
        ge=1,
        description="Clips in the first batch of a long recording whose job asked for live "
        "words (`live`), so that they reach the job's stream after that many clips rather "
        "than with the whole batch. Same transcript; on a CPU it costs such a 5-minute "
        "recording about 8% (scripts/benchmarks/ramp.py). Other jobs are not affected.",
    )
    whisper_encode_batch_size: int = Field(
        default=8,
        ge=0,
        description="Clips run through the encoder at once (0: the whole batch). The "
        "encoder's memory grows with it: 8 keeps a batch of 16 at the peak memory of "
        "faster-whisper's batch of 8 (whole, +480 MiB on a 1-hour recording).",
    )
    whisper_trim_windows: bool = Field(
        default=True,
        description="Batched decoding of audio within one 30 s window, and of micro-batches, "
        "encodes each batch over its longest clip (plus the margin, at least the minimum "
        "window) instead of a padded 30 s window: faster, same or lower WER "
        "(docs/transcription.md). Off: faster-whisper's way.",
    )
    whisper_min_window_seconds: float = Field(
        default=15.0,
        ge=1.0,
        le=30.0,
        description="Shortest window a trimmed batch is encoded over (shorter windows make "
        "tiny.en repeat the end of short notes).",
    )
    whisper_window_margin_seconds: float = Field(
        default=1.0,
        ge=0.0,
        le=30.0,
        description="Padding kept after a trimmed batch's longest clip.",
    )
    whisper_beam_size: int = Field(default=5, description="Beam size for decoding.")
    whisper_language: str | None = Field(
        default=None, description="Force this language code (default: detect per job)."
    )
    whisper_vad_filter: bool = Field(
        default=False,
        description="Skip non-speech with Silero VAD. Batched mode uses VAD anyway on audio "
        "longer than one 30 s window, to cut it into chunks.",
    )
    whisper_vad_min_silence_ms: int | None = Field(
        default=None,
        description="Shortest silence VAD cuts at (default: the library's, 2000 ms sequential, "
        "160 ms batched).",
    )
    whisper_vad_threshold: float = Field(default=0.5, description="VAD speech probability.")
    whisper_word_timestamps: bool = Field(
        default=False, description="Word-level timestamps by default (jobs may ask for them)."
    )
    whisper_initial_prompt: str | None = Field(
        default=None, description="Default initial prompt (vocabulary, style) for every job."
    )
    whisper_hotwords: str | None = Field(default=None, description="Default hotwords.")
    whisper_temperatures: list[float] = Field(
        default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        description="Temperature fallback sequence (batched mode uses the first only).",
    )
    whisper_max_loaded_models: int = Field(
        default=1, description="Models kept loaded at once; the least recently used goes."
    )
    whisper_idle_unload_seconds: float = Field(
        default=900.0,
        description="Unload a non-default model unused for this long (checked per task).",
    )
    transcription_timeout_base_seconds: float = Field(
        default=120.0, description="Fixed part of a job's transcription time limit."
    )
    transcription_timeout_factor: float = Field(
        default=3.0,
        description="Seconds allowed per second of audio on top of the fixed part; a job "
        "over its limit fails with `transcription_timeout`.",
    )
    microbatch_max_jobs: int = Field(
        default=8,
        description="Short jobs transcribed together in one batched pass (1 turns "
        "micro-batching off).",
    )
    microbatch_max_seconds: float = Field(
        default=30.0,
        description="Longest audio that joins a micro-batch (at most 30 s, one Whisper window).",
    )
    microbatch_wait_seconds: float = Field(
        default=0.0,
        description="How long a worker waits for more short jobs to fill a micro-batch.",
    )


class DiarizationSettings(BaseSettings):
    """Who spoke when: the backend of jobs that ask for `diarize` (docs/diarization.md)."""

    model_config = ENV_CONFIG

    diarization_backend: Literal["offline", "pyannote"] = Field(
        default="offline",
        description="`offline`: GE2E speaker embeddings and spectral clustering on the CPU, "
        "no download, no token. `pyannote`: pyannote.audio's pipeline (GPU image; needs "
        "VOXFLOW_PYANNOTE_MODEL_DIR).",
    )
    pyannote_model_dir: Path | None = Field(
        default=None,
        description="A local copy of pyannote's speaker-diarization-community-1 (the "
        "pyannote backend loads it from there, offline).",
    )
    diarization_max_speakers: int = Field(
        default=8,
        ge=1,
        le=32,
        description="The most speakers the offline backend estimates when a job gives no bound.",
    )
    known_speaker_threshold: float = Field(
        default=0.75,
        gt=0,
        lt=1,
        description="Cosine similarity a speaker's voice needs with a known speaker's reference "
        "clip to take its name.",
    )


class TranscriptionWorkerSettings(
    WorkerSettings, ModelSettings, TranscriptionSettings, UploadSettings, DiarizationSettings
):
    """Everything the transcription worker reads from the environment (prefix VOXFLOW_)."""
