"""The LLM stage of real jobs: notes from a vendor, costs recorded, budgets, failures."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.services.llm_worker.conftest import VENDOR_API_KEY
from tests.support.jobs import LEASE, WORKER, new_job, reload, transcript_for
from tests.support.llm_vendors import VendorServer, auth_error, ok
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.models import LlmCall
from voxflow.jobs.states import JobStatus
from voxflow.worker.stage_runner import run_stage


def _tasks() -> ModuleType:
    # Imported late: the Celery app reads VOXFLOW_REDIS_URL, set by a session fixture.
    from llm_worker import tasks

    return tasks


TRANSCRIPT = "We agreed to ship on Friday. Anna will write the release notes by Thursday."


@pytest.fixture
def configure(
    vendor_server: VendorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Route the worker's LLM calls to the local vendor server (a fresh router per test)."""
    monkeypatch.setenv("VOXFLOW_TEST_VENDOR_KEY", VENDOR_API_KEY)
    run = uuid.uuid4().hex[:8]
    deployments = [{
        "name": f"gpt-{run}", "provider": "openai", "model": "gpt-test",
        "api_key_env": "VOXFLOW_TEST_VENDOR_KEY", "base_url": vendor_server.url("openai"),
        "input_price_per_million": 2, "output_price_per_million": 8, "model_class": run,
    }]  # fmt: skip
    monkeypatch.setenv("VOXFLOW_LLM_DEPLOYMENTS", json.dumps(deployments))
    _tasks()._drop_router()
    yield
    _tasks()._drop_router()


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(text)
    monkeypatch.setenv("VOXFLOW_LLM_CONFIG_FILE", str(path))
    _tasks()._drop_router()


def transcribed_job(sessions: sessionmaker[Session], tenant: str, *job_tasks: str) -> uuid.UUID:
    """A committed job with a transcript, waiting for its LLM stage."""
    with session_scope(sessions) as session:
        job_id = new_job(session, tenant, tasks=job_tasks)
    with session_scope(sessions) as session:
        service.claim(session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    with session_scope(sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript_for(job_id, TRANSCRIPT))
    return job_id


def run(job_id: uuid.UUID) -> str:
    """The LLM stage, as the Celery task runs it."""
    return run_stage(str(job_id), JobStatus.TRANSCRIBED, "llm-test", "llm_failed",
                     _tasks()._generate)  # fmt: skip


@pytest.mark.usefixtures("configure")
def test_notes_are_written_and_every_call_is_costed(
    sessions: sessionmaker[Session], tenant: str, vendor_server: VendorServer
) -> None:
    items = json.dumps({"action_items": [{"text": "Write the release notes", "owner": "Anna"}]})
    vendor_server.enqueue("openai", ok("We ship Friday.", tokens_in=1000, tokens_out=100),
                          ok(items, tokens_in=1200, tokens_out=50))  # fmt: skip
    job_id = transcribed_job(sessions, tenant, "summary", "action_items")
    assert run(job_id) == "done"
    with session_scope(sessions) as session:
        job = reload(session, job_id)
        results = {r.task: r for r in repository.list_llm_results(session, job_id)}
        calls = repository.list_llm_calls(session, job_id)
    assert job.status == JobStatus.COMPLETED
    assert results["summary"].output == "We ship Friday."
    assert results["summary"].cost_usd == Decimal("0.0028")  # 1000 * 2/M + 100 * 8/M
    assert results["action_items"].output_json == [
        {"text": "Write the release notes", "owner": "Anna"}
    ]
    assert [(c.task, c.outcome, c.tenant) for c in calls] == [
        ("summary", "ok", tenant), ("action_items", "ok", tenant)]  # fmt: skip
    assert sum(c.cost_usd for c in calls) == sum(r.cost_usd for r in results.values())
    body = vendor_server.requests_for("openai")[1].body
    assert body["response_format"] == {"type": "json_object"}


@pytest.mark.usefixtures("configure")
def test_a_spent_budget_fails_the_stage_when_configured_to(
    sessions: sessionmaker[Session], tenant: str, vendor_server: VendorServer,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _config(tmp_path, monkeypatch, "budget: {daily_usd: 0.01, when_exhausted: fail}\n")
    job_id = transcribed_job(sessions, tenant, "summary")
    _spend(sessions, job_id, tenant, Decimal("0.02"))
    assert run(job_id) == "failed"
    with session_scope(sessions) as session:
        job = reload(session, job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "budget_exhausted")
    assert vendor_server.requests_for("openai") == []


@pytest.mark.usefixtures("configure")
def test_a_spent_budget_routes_to_free_deployments_only(
    sessions: sessionmaker[Session], tenant: str, vendor_server: VendorServer,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _config(tmp_path, monkeypatch, f"budget: {{tenants: {{{tenant}: 0.01}}}}\n")
    job_id = transcribed_job(sessions, tenant, "summary")
    _spend(sessions, job_id, tenant, Decimal("0.02"))
    assert run(job_id) == "done"
    with session_scope(sessions) as session:
        (result,) = repository.list_llm_results(session, job_id)
    assert (result.provider, result.cost_usd) == ("local", Decimal(0))
    assert vendor_server.requests_for("openai") == []


@pytest.mark.usefixtures("configure")
def test_a_provider_rejecting_its_key_fails_the_job_with_the_reason(
    sessions: sessionmaker[Session], tenant: str, vendor_server: VendorServer,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _config(tmp_path, monkeypatch, "local_fallback: false\n")
    vendor_server.set_sticky("openai", auth_error())
    job_id = transcribed_job(sessions, tenant, "summary")
    assert run(job_id) == "failed"  # not retried: another attempt cannot fix a key
    with session_scope(sessions) as session:
        job = reload(session, job_id)
        calls = repository.list_llm_calls(session, job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "llm_auth")
    assert "summary" in (job.error_message or "")
    assert [c.outcome for c in calls] == ["auth"]  # the failed attempt is on record


def _spend(sessions: sessionmaker[Session], job_id: uuid.UUID, tenant: str, usd: Decimal) -> None:
    with session_scope(sessions) as session:
        repository.add_llm_calls(session, [LlmCall(
            job_id=job_id, tenant=tenant, task="summary", deployment="earlier",
            provider="openai", model="m", outcome="ok", tokens_in=1, tokens_out=1,
            cost_usd=usd, latency_ms=1,
        )])  # fmt: skip


@pytest.mark.usefixtures("configure")
def test_a_diarized_transcript_reaches_the_llm_as_named_speaker_turns(
    sessions: sessionmaker[Session], tenant: str, vendor_server: VendorServer
) -> None:
    vendor_server.enqueue("openai", ok("Ben ships on Friday.", tokens_in=100, tokens_out=10))
    with session_scope(sessions) as session:
        job_id = new_job(session, tenant, tasks=("summary",))
    with session_scope(sessions) as session:
        service.claim(session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    transcript = transcript_for(job_id, "When do we ship? Friday. I will write the notes.")
    transcript.segments = [
        {"id": 0, "start": 0.0, "end": 1.0, "text": "When do we ship?", "speaker": "A"},
        {"id": 1, "start": 1.2, "end": 1.8, "text": "Friday.", "speaker": "B"},
        {"id": 2, "start": 1.8, "end": 3.0, "text": "I will write the notes.", "speaker": "B"},
    ]
    # Named by the tenant after diarization: the notes use the name, the label otherwise.
    transcript.speakers = [{"label": "A", "name": None, "talk_seconds": 1.0},
                           {"label": "B", "name": "Ben", "talk_seconds": 1.8}]  # fmt: skip
    with session_scope(sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript)
    assert run(job_id) == "done"
    prompt = vendor_server.requests_for("openai")[-1].body["messages"][-1]["content"]
    assert "A: When do we ship?\nBen: Friday. I will write the notes.\n" in prompt
