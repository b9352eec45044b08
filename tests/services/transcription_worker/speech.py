"""Word error rate helpers shared by the transcription worker's tests."""

from __future__ import annotations

import re

import jiwer


def normalise(text: str) -> str:
    """Lowercase words without punctuation, for WER."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalisation."""
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))
