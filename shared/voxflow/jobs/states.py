"""Job states and the only transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its lifecycle."""

    QUEUED = "queued"
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}
)

# Running stages hold a lease; when it expires the sweeper returns the job to the waiting
# state in front of that stage (or fails it once attempts are exhausted).
RUNNING_TO_WAITING: dict[JobStatus, JobStatus] = {
    JobStatus.TRANSCRIBING: JobStatus.QUEUED,
    JobStatus.GENERATING: JobStatus.TRANSCRIBED,
}
WAITING_TO_RUNNING: dict[JobStatus, JobStatus] = {v: k for k, v in RUNNING_TO_WAITING.items()}

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.TRANSCRIBING, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.TRANSCRIBING: frozenset(
        {JobStatus.TRANSCRIBED, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.TRANSCRIBED: frozenset(
        {JobStatus.GENERATING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.GENERATING: frozenset(
        {JobStatus.COMPLETED, JobStatus.TRANSCRIBED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    """Tell whether `source -> target` is an allowed transition."""
    return target in TRANSITIONS[source]


class IllegalTransitionError(ValueError):
    """Raised when code asks for a transition the state machine forbids."""

    def __init__(self, source: JobStatus, target: JobStatus) -> None:
        super().__init__(f"job cannot go from {source} to {target}")
        self.source = source
        self.target = target
