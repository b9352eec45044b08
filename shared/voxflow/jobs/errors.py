"""Error codes a failed job records, and the exceptions that carry them."""

from __future__ import annotations


class JobError(Exception):
    """A failure with a machine-readable code and a human sentence."""

    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class PermanentJobError(JobError):
    """A failure that retrying cannot fix (bad audio, missing file): fail the job now."""

    code = "permanent_error"


class LeaseLostError(JobError):
    """This worker no longer owns the job (lease expired, canceled, or taken over)."""

    code = "lease_lost"


ATTEMPTS_EXHAUSTED = "attempts_exhausted"
