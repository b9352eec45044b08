"""Task and queue names: the only contract between publishers and workers."""

from __future__ import annotations

TRANSCRIPTION_QUEUE = "transcription"
LLM_QUEUE = "llm"
WEBHOOK_QUEUE = "webhooks"

TRANSCRIBE_TASK = "voxflow.transcribe"
GENERATE_TASK = "voxflow.generate"
DELIVER_WEBHOOK_TASK = "voxflow.deliver_webhook"  # its message carries a delivery id
