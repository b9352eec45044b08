"""Task and queue names: the only contract between publishers and workers."""

from __future__ import annotations

from voxflow.jobs.states import JobStatus

TRANSCRIPTION_QUEUE = "transcription"
LLM_QUEUE = "llm"
WEBHOOK_QUEUE = "webhooks"

TRANSCRIBE_TASK = "voxflow.transcribe"
GENERATE_TASK = "voxflow.generate"
DELIVER_WEBHOOK_TASK = "voxflow.deliver_webhook"  # its message carries a delivery id

# The waiting state a job is in decides which task picks it up next.
TASK_FOR_STATUS: dict[JobStatus, tuple[str, str]] = {
    JobStatus.QUEUED: (TRANSCRIBE_TASK, TRANSCRIPTION_QUEUE),
    JobStatus.TRANSCRIBED: (GENERATE_TASK, LLM_QUEUE),
}
