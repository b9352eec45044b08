"""faster-whisper's batched pipeline, encoding each batch over its audio rather than 30 s.

Whisper's encoder reads a window of 3000 log-Mel frames (30 s). faster-whisper pads every
clip to that length, so a 15 s voice note costs the encoder a full window, half of it
padding, and the decoder then attends over all 1500 encoder positions of every beam
hypothesis at every step. CTranslate2's encoder accepts fewer frames (as whisper.cpp's
`audio_ctx` does), so this pipeline cuts each batch's features to its longest clip plus a
margin of the padding (`margin_seconds`), and never below `min_seconds`. The engine uses
it for recordings within one window and for micro-batches; longer recordings keep
faster-whisper's own pipeline.

`scripts/benchmarks/windows.py` chose the defaults (15 s minimum, 1 s margin): on notes of
5 to 25 s, WER is the same as with full windows or lower, and the punctuation that batched
decoding of a padded window often drops comes back. Shorter windows make tiny.en repeat the
last sentence of short notes: the padding is how it knows the speech has ended.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline

FRAMES_PER_SECOND = 100  # log-Mel frames (10 ms hop)
WINDOW_FRAMES = 3000  # one 30 s Whisper window


def trimmed_frames(longest_seconds: float, min_seconds: float, margin_seconds: float) -> int:
    """Frames to encode for a batch whose longest clip lasts `longest_seconds`.

    The clip plus the margin, and at least `min_seconds`; never fewer than the frames
    faster-whisper's segment bookkeeping and word alignment use for that clip (whole
    seconds); even (the encoder's convolution has stride 2); at most one window.
    """
    needed = max(
        math.ceil(longest_seconds) * FRAMES_PER_SECOND,
        math.ceil(max(min_seconds, longest_seconds + margin_seconds) * FRAMES_PER_SECOND),
    )
    return min(WINDOW_FRAMES, needed + needed % 2)


class TrimmedBatchedPipeline(BatchedInferencePipeline):  # type: ignore[misc]
    """`BatchedInferencePipeline` whose batches are encoded over their longest clip only."""

    def __init__(self, model: Any, *, min_seconds: float, margin_seconds: float) -> None:
        super().__init__(model)
        self.min_seconds = min_seconds
        self.margin_seconds = margin_seconds

    def forward(
        self, features: Any, tokenizer: Any, chunks_metadata: list[dict[str, Any]], options: Any
    ) -> Any:
        """Encode and decode one batch (the library's step), over fewer frames when short."""
        longest = max((float(chunk["duration"]) for chunk in chunks_metadata), default=30.0)
        frames = trimmed_frames(longest, self.min_seconds, self.margin_seconds)
        if frames < features.shape[-1]:
            features = np.ascontiguousarray(features[..., :frames])
        return super().forward(features, tokenizer, chunks_metadata, options)
