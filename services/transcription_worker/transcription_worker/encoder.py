"""A Whisper model that decodes large batches but encodes them a few clips at a time.

faster-whisper's batched pipeline runs each batch of 30 s clips through the encoder, then
through one generation loop of the decoder. A 5-minute recording is about 11 clips: in the
library's batches of 8 that is two loops, the second one for 3 clips; in one batch of 16 it
is one loop, and the recording decodes 1.06x faster on a CPU. The encoder's memory grows
with the batch, though (its self-attention holds 1500 x 1500 scores per head for every
clip): encoded whole, a batch of 16 adds 480 MiB to the peak on a 1-hour recording. This
model keeps both: the pipeline decodes 16 clips at a time (WHISPER_BATCH_SIZE), and
`encode` runs them through the encoder 8 at a time (WHISPER_ENCODE_BATCH_SIZE), joining the
outputs (16 x 1500 x d_model floats, 37 MB for tiny) for one generation loop. A clip's
encoder output does not depend on its batch mates, so the transcripts are faster-whisper's
word for word, and the peak memory is that of its batch of 8.

Measured by `scripts/benchmarks/batches.py` (table in docs/transcription.md).
"""

from __future__ import annotations

from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.transcribe import get_ctranslate2_storage


class SplitEncoderWhisperModel(WhisperModel):  # type: ignore[misc]
    """`WhisperModel` whose `encode` runs at most `encode_batch_size` clips at a time.

    0 (or a batch no larger) encodes the batch whole, exactly as faster-whisper does.
    """

    encode_batch_size: int = 0

    def encode(self, features: np.ndarray[Any, Any]) -> ctranslate2.StorageView:
        """The encoder output for `features` ([batch, n_mels, frames], or one clip)."""
        step = self.encode_batch_size
        if features.ndim == 2 or step <= 0 or features.shape[0] <= step:
            return super().encode(features)
        parts = [
            np.asarray(self._encode_on_host(features[start : start + step]))
            for start in range(0, features.shape[0], step)
        ]
        # A host array: generate() moves it to the model's device, as faster-whisper's
        # multi-GPU path (to_cpu) relies on.
        return ctranslate2.StorageView.from_array(np.concatenate(parts))

    def _encode_on_host(self, features: np.ndarray[Any, Any]) -> ctranslate2.StorageView:
        """One piece's encoder output, copied to host memory when the model is on a GPU."""
        storage = get_ctranslate2_storage(features)
        return self.model.encode(storage, to_cpu=self.model.device == "cuda")
