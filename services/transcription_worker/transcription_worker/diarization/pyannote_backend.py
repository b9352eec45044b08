"""The production backend: a pyannote.audio 4.x pipeline loaded from a local directory.

pyannote.audio brings torch (about 5 GB with CUDA), so it is not a dependency of the
worker: a declared extra would put torch into the workspace's one lock file, which every
install reads. Images that want it install it next to the worker:

    uv pip install "pyannote.audio>=4"

and point VOXFLOW_PYANNOTE_MODEL_DIR at a pipeline directory (config.yaml and the models it
names, e.g. a downloaded `pyannote/speaker-diarization-community-1`). Nothing is fetched at
run time and no token is used. Telemetry (on by default in 4.x) is switched off before the
first import. The waveform is passed in memory: pyannote 4 would otherwise decode files
through torchcodec.

Turns come from the pipeline's `exclusive_speaker_diarization` (one speaker at a time, what
a transcript can use); speakers are renumbered in order of first appearance, and the
centroids are the pipeline's `speaker_embeddings` (rows in its label order, reordered to
ours). A voice print runs the pipeline's own embedding model on the clip.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from transcription_worker.decode import SAMPLE_RATE
from transcription_worker.diarization.base import (
    Diarization,
    DiarizerUnavailableError,
    Embeddings,
    Samples,
    Turn,
    by_appearance,
    speaker_bounds,
)

INSTALL_HINT = 'uv pip install "pyannote.audio>=4"'


class PyannoteUnavailableError(DiarizerUnavailableError):
    """pyannote.audio is not installed, or the pipeline directory is unusable."""


def _import_pipeline() -> Any:
    """pyannote.audio's Pipeline class, imported on first use with telemetry off."""
    os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
    try:
        from pyannote.audio import Pipeline  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as error:
        raise PyannoteUnavailableError(
            "the pyannote diarization backend needs pyannote.audio 4.x (with torch), which "
            f"the worker does not install by default: {INSTALL_HINT}"
        ) from error
    return Pipeline


def _labels_in_order(annotation: Any) -> list[str]:
    """The annotation's labels in its own order (what `speaker_embeddings` rows follow)."""
    return list(annotation.labels())


class PyannoteDiarizer:
    """`Diarizer` on a local pyannote.audio pipeline (loaded once, on first use)."""

    def __init__(self, pipeline_dir: Path, device: str = "cpu") -> None:
        self.pipeline_dir = Path(pipeline_dir)
        self.device = device
        self._pipeline: Any = None
        self._lock = threading.Lock()

    @property
    def pipeline(self) -> Any:
        """The pipeline, loaded from `pipeline_dir` on first use."""
        with self._lock:
            if self._pipeline is None:
                pipeline_class = _import_pipeline()
                if not self.pipeline_dir.is_dir():
                    raise PyannoteUnavailableError(f"no pyannote pipeline at {self.pipeline_dir}")
                pipeline = pipeline_class.from_pretrained(self.pipeline_dir)
                if pipeline is None:
                    raise PyannoteUnavailableError(
                        f"pyannote could not load a pipeline from {self.pipeline_dir}"
                    )
                import torch  # type: ignore[import-not-found, unused-ignore]

                self._pipeline = pipeline.to(torch.device(self.device)) or pipeline
            return self._pipeline

    def diarize(
        self,
        samples: Samples,
        *,
        speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization:
        """Who spoke when, by the pyannote pipeline (counts passed through)."""
        speaker_bounds(speakers, min_speakers, max_speakers, 1)  # same checks as offline
        pipeline = self.pipeline  # first: says what to install when pyannote is missing
        import torch  # type: ignore[import-not-found, unused-ignore]

        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)
        counts = {"num_speakers": speakers, "min_speakers": min_speakers,
                  "max_speakers": max_speakers}  # fmt: skip
        output = pipeline(
            {"waveform": waveform, "sample_rate": SAMPLE_RATE},
            **{key: value for key, value in counts.items() if value is not None},
        )
        full = getattr(output, "speaker_diarization", output)
        exclusive = getattr(output, "exclusive_speaker_diarization", None)
        exclusive = full if exclusive is None else exclusive
        labels = _labels_in_order(full)
        index = {label: n for n, label in enumerate(labels)}
        turns = [
            Turn(round(float(segment.start), 3), round(float(segment.end), 3), index[label])
            for segment, _, label in exclusive.itertracks(yield_label=True)
            if label in index
        ]
        embeddings = getattr(output, "speaker_embeddings", None)
        if embeddings is None or len(embeddings) != len(labels):
            centroids = np.zeros((len(labels), 0), np.float32)
        else:
            rows = np.asarray(embeddings, dtype=np.float32)
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            centroids = np.nan_to_num(rows / np.maximum(norms, 1e-12))
        return by_appearance(turns, centroids)

    def voice_print(self, samples: Samples) -> Embeddings:
        """The clip's embedding by the pipeline's own speaker-embedding model."""
        embed = getattr(self.pipeline, "_embedding", None)
        if embed is None:
            raise PyannoteUnavailableError("this pyannote pipeline has no embedding model")
        import torch  # type: ignore[import-not-found, unused-ignore]

        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        vector = np.asarray(embed(waveform[None, None]), dtype=np.float32).reshape(-1)
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
