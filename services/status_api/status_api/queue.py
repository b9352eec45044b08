"""`GET /v1/queue`: the tenant's unfinished jobs per stage, for the console's operator view.

Kept in a module of its own (schema, queries and route): it reads only what the job table
and the timeline already hold. Like every read of this API it is scoped to the key's tenant:
there is no operator role, so platform-wide figures stay on the sweeper's /metrics
(`voxflow_jobs_waiting`, `voxflow_jobs_in_flight`, `voxflow_oldest_waiting_job_age_seconds`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from voxflow.jobs.models import Job, JobEvent
from voxflow.jobs.states import TERMINAL, JobStatus
from voxflow.web.api_runtime import DbSession
from voxflow.web.auth import Tenant
from voxflow.web.errors import error_responses

# A worker counts as seen when it claimed one of the tenant's jobs this recently ...
WORKERS_WINDOW_SECONDS = 600
# ... among its latest jobs (which bounds the timeline rows read, however many jobs it has).
RECENT_JOBS = 200

Stage = Literal["transcription", "notes"]
# Each stage: the status of a job waiting for it, and of one a worker is running.
STAGES: dict[Stage, tuple[JobStatus, JobStatus]] = {
    "transcription": (JobStatus.QUEUED, JobStatus.TRANSCRIBING),
    "notes": (JobStatus.TRANSCRIBED, JobStatus.GENERATING),
}

router = APIRouter(prefix="/v1/queue", tags=["queue"])


class StageQueue(BaseModel):
    """One stage's share of the tenant's unfinished jobs."""

    stage: Stage = Field(description="`transcription` (speech to text) or `notes` (the LLM).")
    waiting: int = Field(description="Jobs waiting for a worker of this stage.")
    running: int = Field(description="Jobs a worker of this stage is running now.")
    oldest_waiting_seconds: float | None = Field(
        description="Seconds since the oldest waiting job entered its state; null if none waits."
    )
    workers_seen: int = Field(
        description="Worker processes running one of the tenant's jobs now, or that claimed "
        f"one in the last {WORKERS_WINDOW_SECONDS // 60} minutes."
    )


class QueueView(BaseModel):
    """The tenant's unfinished jobs per stage."""

    stages: list[StageQueue]


def _worker(owner: str | None) -> str | None:
    """The worker process of a lease owner (`kind@host:pid/task`): its task id aside."""
    return owner.split("/", 1)[0] if owner else None


def queue_view(session: Session, tenant: str) -> QueueView:
    """Counts, oldest waiting age and workers seen for each stage of the tenant's jobs."""
    unfinished = Job.tenant == tenant, Job.status.not_in([s.value for s in TERMINAL])
    age = func.extract("epoch", func.now() - func.min(Job.updated_at))  # transitions set it
    counts = {
        status: (int(count), float(oldest))
        for status, count, oldest in session.execute(
            select(Job.status, func.count(), age).where(*unfinished).group_by(Job.status)
        )
    }
    seen: dict[str, set[str]] = defaultdict(set)
    running = [running for _, running in STAGES.values()]
    for status, owner in session.execute(
        select(Job.status, Job.lease_owner).where(*unfinished, Job.status.in_(running)).distinct()
    ):
        seen[status].add(_worker(owner) or "")
    recent = (
        select(Job.id).where(Job.tenant == tenant).order_by(Job.created_at.desc())
        .limit(RECENT_JOBS).scalar_subquery()
    )  # fmt: skip
    claims = (
        select(JobEvent.to_status, JobEvent.actor)
        .distinct()
        .where(
            JobEvent.job_id.in_(recent),
            JobEvent.to_status.in_(running),
            JobEvent.at > func.now() - timedelta(seconds=WORKERS_WINDOW_SECONDS),
        )
    )
    for status, actor in session.execute(claims):
        seen[status].add(_worker(actor) or "")
    stages = []
    for stage, (waiting, active) in STAGES.items():
        count, oldest = counts.get(waiting.value, (0, None))
        stages.append(
            StageQueue(
                stage=stage,
                waiting=count,
                running=counts.get(active.value, (0, 0.0))[0],
                oldest_waiting_seconds=oldest,
                workers_seen=len(seen[active.value] - {""}),
            )
        )
    return QueueView(stages=stages)


@router.get("", summary="The tenant's queue per stage", responses=error_responses(401))
async def get_queue(tenant: Tenant, session: DbSession) -> QueueView:
    """Jobs waiting and running at each stage, how long the oldest has waited, and how many
    workers have been seen on this tenant's jobs: the console's operator view."""
    return await session.run_sync(queue_view, tenant)
