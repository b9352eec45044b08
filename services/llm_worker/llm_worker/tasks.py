"""The `voxflow.generate` task: a transcript becomes the notes the job asked for."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from celery import Task
from sqlalchemy.orm import Session

from llm_worker.notes import Note, NoteError, write_note
from llm_worker.router.attempts import Attempt
from llm_worker.router.config import BudgetPolicy, load_config
from llm_worker.router.router import Router
from llm_worker.settings import LlmWorkerSettings
from voxflow.db import session_scope
from voxflow.embedded import redis_client_url
from voxflow.jobs import repository, service
from voxflow.jobs.errors import JobError, LeaseLostError, PermanentJobError
from voxflow.jobs.models import Job, LlmCall, LlmResult
from voxflow.jobs.states import JobStatus
from voxflow.queue.celery_app import make_celery
from voxflow.queue.names import GENERATE_TASK
from voxflow.worker.identity import worker_id
from voxflow.worker.lease import Heartbeat
from voxflow.worker.process import install_process_hooks, worker_runtime
from voxflow.worker.stage_runner import run_stage

log = logging.getLogger(__name__)

app = make_celery(name="llm_worker")

# Failures another attempt cannot fix: the job fails now instead of being retried.
PERMANENT_CODES = frozenset({"auth", "bad_request", "refused", "context_too_long"})

_router: Router | None = None


def get_router() -> Router:
    """This process's router (built after fork: it holds connections and SDK clients)."""
    global _router  # noqa: PLW0603 (one router per worker process)
    if _router is None:
        settings = LlmWorkerSettings()
        config = load_config(settings.llm_config_file, settings.llm_deployments)
        url = settings.llm_redis_url or settings.redis_url
        if not url:
            raise RuntimeError("the LLM router needs Redis: set VOXFLOW_REDIS_URL")
        _router = Router(config, redis.Redis.from_url(redis_client_url(url)))
        names = ", ".join(d.name for d in config.deployments)
        log.info("LLM router ready: %s strategy over %s", config.strategy, names)
    return _router


def _drop_router() -> None:
    global _router  # noqa: PLW0603
    _router = None


install_process_hooks(app, on_start=_drop_router, on_stop=_drop_router)


def _spent_today(session: Session, job: Job, budget: BudgetPolicy) -> Decimal | None:
    """What the tenant's LLM calls cost today (None when it has no budget to keep)."""
    if budget.limit(job.tenant) is None:
        return None
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return repository.tenant_spend_since(session, job.tenant, midnight)


def _free_only(job: Job, budget: BudgetPolicy, spent: Decimal | None) -> bool:
    """Whether the tenant's daily budget is spent (then only free deployments may run)."""
    limit = budget.limit(job.tenant)
    if limit is None or spent is None or spent < limit:
        return False
    if budget.when_exhausted == "fail":
        raise PermanentJobError(
            f"The daily LLM budget of {limit} USD for tenant {job.tenant!r} is spent "
            f"({spent} USD today).",
            "budget_exhausted",
        )
    log.info("tenant %s is over its daily LLM budget: free deployments only", job.tenant)
    return True


def _calls(job: Job, task: str, attempts: list[Attempt]) -> list[LlmCall]:
    """Every call is paid for or counted, so it is stored even when the note is not."""
    return [
        LlmCall(
            job_id=job.id,
            tenant=job.tenant,
            task=task,
            deployment=a.deployment,
            provider=a.provider,
            model=a.model,
            outcome=a.outcome,
            error=a.error,
            tokens_in=a.tokens_in,
            tokens_out=a.tokens_out,
            cost_usd=a.cost_usd,
            latency_ms=a.latency_ms,
        )
        for a in attempts
    ]


def _output_json(task: str, value: Any) -> Any:
    """Action items as a list, whether the model wrapped them in an object or not."""
    # JSON modes (OpenAI, Mistral) only produce objects, so the template asks for one.
    if task == "action_items" and isinstance(value, dict):
        items = value.get("action_items")
        if isinstance(items, list):
            return items
    return value


def _result(job: Job, task: str, note: Note) -> LlmResult:
    completion = note.completion
    return LlmResult(
        job_id=job.id, task=task, provider=completion.provider, model=completion.model,
        output=completion.text, output_json=_output_json(task, completion.output_json),
        tokens_in=sum(a.tokens_in for a in note.attempts if a.outcome == "ok"),
        tokens_out=sum(a.tokens_out for a in note.attempts if a.outcome == "ok"),
        cost_usd=note.cost_usd, latency_ms=sum(a.latency_ms for a in note.attempts),
        cached=note.cached,
    )  # fmt: skip


def _store_note(job: Job, task: str, note: Note, owner: str, lease: timedelta) -> None:
    """One transaction per note: its calls, and its result if the job is still ours.

    A lost lease keeps the result out but the calls in: they were paid for either way.
    """
    lost: LeaseLostError | None = None
    with session_scope(worker_runtime().sessions) as session:
        repository.add_llm_calls(session, _calls(job, task, note.attempts))
        try:
            service.add_llm_result(session, job.id, owner, _result(job, task, note), lease)
        except LeaseLostError as exc:  # the lease check failed before anything was written
            lost = exc
    if lost is not None:
        raise lost


def _generate(job: Job, heartbeat: Heartbeat) -> None:
    runtime = worker_runtime()
    router = get_router()
    budget = router.config.budget
    lease = timedelta(seconds=runtime.settings.lease_seconds)
    with session_scope(runtime.sessions) as session:
        transcript = repository.get_transcript(session, job.id)
        done = {r.task for r in repository.list_llm_results(session, job.id)}
        spent = _spent_today(session, job, budget)  # summed once; each note adds its cost
    if transcript is None:
        raise PermanentJobError(
            "The job has no transcript to write notes from.", "transcript_missing"
        )
    for task in job.options.get("tasks", []):
        if task in done:
            continue  # written by an earlier attempt: redelivery must not redo paid work
        heartbeat.check()
        free_only = _free_only(job, budget, spent)
        try:
            note = write_note(router, task, transcript.text, transcript.segments,
                              job.options.get("instruction"), free_only=free_only,
                              speakers=transcript.speakers)  # fmt: skip
        except NoteError as exc:
            with session_scope(runtime.sessions) as session:
                repository.add_llm_calls(session, _calls(job, task, exc.attempts))
            error = PermanentJobError if exc.code in PERMANENT_CODES else JobError
            raise error(f"{task}: {exc.message}", f"llm_{exc.code}") from exc
        _store_note(job, task, note, heartbeat.owner, lease)
        if spent is not None:
            spent += note.cost_usd
    with session_scope(runtime.sessions) as session:
        service.finish_generation(session, job.id, heartbeat.owner)
    log.info("job %s: notes written (%s)", job.id, ", ".join(job.options.get("tasks", [])))


@app.task(name=GENERATE_TASK, bind=True)
def generate(self: Task[Any, Any], job_id: str) -> str:
    """Write one job's notes; safe to deliver twice (claims and results are conditional)."""
    owner = worker_id("llm", self.request.id)
    return run_stage(job_id, JobStatus.TRANSCRIBED, owner, "llm_failed", _generate)
