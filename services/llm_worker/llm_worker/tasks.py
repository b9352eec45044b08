"""The `voxflow.generate` task: a transcript becomes the notes the job asked for."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from celery import Task

from llm_worker.prompts import render
from llm_worker.providers.base import Provider, ProviderError
from llm_worker.providers.local import LocalProvider
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.errors import JobError, PermanentJobError
from voxflow.jobs.models import Job, LlmResult
from voxflow.jobs.states import JobStatus
from voxflow.queue.celery_app import make_celery
from voxflow.queue.names import GENERATE_TASK
from voxflow.worker.identity import worker_id
from voxflow.worker.lease import Heartbeat
from voxflow.worker.runtime import get_runtime, install_process_hooks, run_stage

log = logging.getLogger(__name__)

app = make_celery(name="llm_worker")
install_process_hooks(app)

# The multi-provider router arrives with its own issue; until then every task runs offline.
PROVIDER: Provider = LocalProvider()


def _generate(job: Job, heartbeat: Heartbeat) -> None:
    runtime = get_runtime()
    lease = timedelta(seconds=runtime.settings.lease_seconds)
    with session_scope(runtime.sessions) as session:
        transcript = repository.get_transcript(session, job.id)
        done = {r.task for r in repository.list_llm_results(session, job.id)}
    if transcript is None:
        raise PermanentJobError(
            "The job has no transcript to write notes from.", "transcript_missing"
        )
    for task in job.options.get("tasks", []):
        if task in done:
            continue  # written by an earlier attempt: redelivery must not redo paid work
        heartbeat.check()
        request = render(task, transcript.text, job.options.get("instruction"))
        try:
            completion = PROVIDER.complete(request)
        except ProviderError as exc:
            raise JobError(f"{task}: {exc}", f"llm_{exc.code}") from exc
        result = LlmResult(
            job_id=job.id,
            task=task,
            provider=completion.provider,
            model=completion.model,
            output=completion.text,
            output_json=completion.output_json,
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
            cost_usd=Decimal(0),
            latency_ms=completion.latency_ms,
            cached=False,
        )
        with session_scope(runtime.sessions) as session:
            service.add_llm_result(session, job.id, heartbeat.owner, result, lease)
    with session_scope(runtime.sessions) as session:
        service.finish_generation(session, job.id, heartbeat.owner)
    log.info("job %s: notes written (%s)", job.id, ", ".join(job.options.get("tasks", [])))


@app.task(name=GENERATE_TASK, bind=True)
def generate(self: Task[Any, Any], job_id: str) -> str:
    """Write one job's notes; safe to deliver twice (claims and results are conditional)."""
    owner = worker_id("llm", self.request.id)
    return run_stage(job_id, JobStatus.TRANSCRIBED, owner, "llm_failed", _generate)
