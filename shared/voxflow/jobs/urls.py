"""A job's address on the status API: the one definition every link to a job is built from."""

from __future__ import annotations

import uuid


def job_url(public_status_url: str, job_id: uuid.UUID | str) -> str:
    """The job's absolute URL (`GET /v1/jobs/{id}` on the status API at `public_status_url`)."""
    return f"{public_status_url.rstrip('/')}/v1/jobs/{job_id}"
