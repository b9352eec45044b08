"""Task and queue names: the only contract between publishers and workers."""

from __future__ import annotations

from voxflow.jobs.states import JobStatus

TRANSCRIPTION_QUEUE = "transcription"
LLM_QUEUE = "llm"

TRANSCRIBE_TASK = "voxflow.transcribe"
GENERATE_TASK = "voxflow.generate"

# The waiting state a job is in decides which task picks it up next.
TASK_FOR_STATUS: dict[JobStatus, tuple[str, str]] = {
    JobStatus.QUEUED: (TRANSCRIBE_TASK, TRANSCRIPTION_QUEUE),
    JobStatus.TRANSCRIBED: (GENERATE_TASK, LLM_QUEUE),
}
