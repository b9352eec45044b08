"""faster-whisper's batched pipeline, refined twice: trimmed windows and a ramped first batch.

`RampedBatchedPipeline` (long recordings whose words someone watches) decodes its first
clips on their own, so the first words reach the live streams early; see its docstring.
The rest of this note is about `TrimmedBatchedPipeline` (short recordings and
micro-batches), which encodes each batch over its audio rather than 30 s.

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
last sentence of short notes: the padding is how it knows the speech has ended. Even at
15 s this still happens now and then (one 8 s note in 40), so a clip whose text repeats a
run of words back to back is decoded again over the full window, as faster-whisper would
have decoded it. A genuine repetition only costs that second pass, never the text.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = 100  # log-Mel frames (10 ms hop)
WINDOW_FRAMES = 3000  # one 30 s Whisper window
REPEAT_MIN_WORDS = 4  # a run this long said twice in a row marks a decoding loop
_WORD = re.compile(r"[\w']+")


def repeats_itself(text: str, min_words: int = REPEAT_MIN_WORDS) -> bool:
    """Tell whether some run of at least `min_words` words comes twice back to back.

    Whisper's loops repeat a phrase or sentence verbatim ("... buy some milk. Thomas went
    to the market on Friday to buy some milk."); case and punctuation are ignored.
    """
    words = _WORD.findall(text.lower())
    for size in range(min_words, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return True
    return False


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


class RampedBatchedPipeline(BatchedInferencePipeline):  # type: ignore[misc]
    """`BatchedInferencePipeline` whose first batch is small, for the live streams.

    The library decodes a recording's clips `batch_size` at a time and yields a batch's
    segments only when the whole batch is decoded: with 16 clips per batch, a 5-minute
    recording's first words come out with its last. This pipeline decodes the first
    `first_batch` clips on their own, then the rest as the library does, so the first words
    reach the job's stream after a small part of the work. Each clip's decoding does not
    depend on its batch mates, so the transcript is the same; the cost is one more, less
    efficient, batch (about 8% of a 5-minute recording on a CPU with `first_batch` 1, and
    more on a GPU, where a batch of 1 takes nearly as long as a batch of 16). The engine
    uses it only for jobs that ask for live words.
    """

    last_speech_timestamp: float

    def __init__(self, model: Any, *, first_batch: int) -> None:
        super().__init__(model)
        self.first_batch = first_batch

    def _batched_segments_generator(
        self,
        features: Any,
        tokenizer: Any,
        chunks_metadata: list[dict[str, Any]],
        batch_size: int,
        options: Any,
        log_progress: bool,
    ) -> Iterator[Any]:
        first = self.first_batch
        rest = super()._batched_segments_generator
        if first <= 0 or first >= min(batch_size, len(features)):
            yield from rest(features, tokenizer, chunks_metadata, batch_size, options,
                            log_progress)  # fmt: skip
            return
        speech = self.last_speech_timestamp
        for segment in rest(features[:first], tokenizer, chunks_metadata[:first], first,
                            options, log_progress):  # fmt: skip
            speech = self.last_speech_timestamp
            yield segment
        # The library resets its word-timing state when a pass ends; this pass goes on.
        self.last_speech_timestamp = speech
        yield from rest(features[first:], tokenizer, chunks_metadata[first:], batch_size,
                        options, log_progress)  # fmt: skip


class TrimmedBatchedPipeline(BatchedInferencePipeline):  # type: ignore[misc]
    """`BatchedInferencePipeline` whose batches are encoded over their longest clip only."""

    last_speech_timestamp: float  # the library's word-alignment state across batches

    def __init__(self, model: Any, *, min_seconds: float, margin_seconds: float) -> None:
        super().__init__(model)
        self.min_seconds = min_seconds
        self.margin_seconds = margin_seconds

    def forward(
        self, features: Any, tokenizer: Any, chunks_metadata: list[dict[str, Any]], options: Any
    ) -> Any:
        """Encode and decode one batch (the library's step), over fewer frames when short.

        A clip whose text loops (`repeats_itself`) is decoded again over the full window.
        """
        longest = max((float(chunk["duration"]) for chunk in chunks_metadata), default=30.0)
        frames = trimmed_frames(longest, self.min_seconds, self.margin_seconds)
        if frames >= features.shape[-1]:
            return super().forward(features, tokenizer, chunks_metadata, options)
        before = self.last_speech_timestamp
        trimmed = np.ascontiguousarray(features[..., :frames])
        outputs: list[Any] = super().forward(trimmed, tokenizer, chunks_metadata, options)
        looping = [
            index
            for index, segments in enumerate(outputs)
            if repeats_itself(" ".join(segment["text"] for segment in segments))
        ]
        if looping:
            log.info(
                "%d of %d clips repeated themselves in a %d-frame window; decoding them "
                "again over the full window", len(looping), len(outputs), frames
            )  # fmt: skip
            after = self.last_speech_timestamp
            self.last_speech_timestamp = before  # word timing state, as for the first pass
            again = super().forward(
                np.ascontiguousarray(features[looping]),
                tokenizer,
                [chunks_metadata[index] for index in looping],
                options,
            )
            self.last_speech_timestamp = max(after, self.last_speech_timestamp)
            for index, segments in zip(looping, again, strict=True):
                outputs[index] = segments
        return outputs
