"""Schemathesis against both APIs: no 5xx, and every answer is one the OpenAPI document promises.

Every operation of each app's OpenAPI document is fuzzed in-process (positive and negative
generation, derandomized) with a real API key, and each response goes through all of
schemathesis' response checks: not a server error, status code documented, content type and
headers documented, body valid against the response schema, negative data rejected, 405s
with a correct `Allow`, auth enforced. Operations on one job are then replayed against real
jobs of the key's tenant, so 200/204 answers and their schemas are checked too, not only 404s.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import AuthContext, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi import checks
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app as create_ingest_app
from status_api.app import create_app as create_status_app
from tests.conftest import SAMPLES
from tests.services.status_api.conftest import JobMaker
from voxflow.apikeys import KEY_PREFIX, PREFIX_LENGTH, hash_key
from voxflow.db import session_scope
from voxflow.jobs import repository
from voxflow.jobs.models import ApiKey
from voxflow.jobs.states import JobStatus

# Small enough that the file runs in well under a minute on two cores; the coverage phase
# adds its own deterministic boundary cases on top of these.
MAX_EXAMPLES = 25

# The key exists before the schemas are loaded because schemathesis builds (and authenticates)
# its boundary cases at collection time; its row is inserted by the `fuzz_spool` fixture.
SECRET = KEY_PREFIX + secrets.token_urlsafe(32)
TENANT = f"fuzz{uuid.uuid4().hex[:10]}"

# Settings are read when the lifespan starts (first request), after `fuzz_spool` set the env.
INGEST_APP = create_ingest_app()
STATUS_APP = create_status_app()

# The upload's `file` part is documented as `audio/*, video/*`: positive cases carry real audio.
schemathesis.openapi.media_type("audio/ogg", st.just((SAMPLES / "voice_note.ogg").read_bytes()))

# Refusals a schema-valid request may still get, per operation: rules the schema cannot
# express (an opaque cursor this API issued, an existing job id, options semantics, server
# configuration). Used instead of schemathesis' `positive_data_acceptance`, which knows only
# status codes; this table also pins the error code.
JOB_GONE = {404: {"job_not_found"}}
KNOWN_SPEAKER_REFUSALS = {
    "known_speakers_need_diarize", "known_speakers_mismatch", "invalid_known_speaker_name",
    "invalid_known_speaker_reference", "too_many_known_speakers",
}  # fmt: skip
ACCEPTABLE_REFUSALS: dict[str, dict[int, set[str]]] = {
    # `options` is a JSON string the schema describes only in prose; webhooks need a secret
    # this server does not have.
    # Known speakers: names and clips go in pairs, clips must be audio, names differ.
    "POST /v1/jobs": {
        422: {"invalid_options", "model_not_allowed", "webhooks_disabled", *KNOWN_SPEAKER_REFUSALS}
    },
    "GET /v1/jobs": {400: {"invalid_cursor"}},
    "GET /v1/jobs/{job_id}": JOB_GONE,
    "GET /v1/jobs/{job_id}/events": JOB_GONE,
    "GET /v1/jobs/{job_id}/results": JOB_GONE,
    "GET /v1/jobs/{job_id}/webhooks": JOB_GONE,
    "GET /v1/jobs/{job_id}/transcript": {**JOB_GONE, 409: {"transcript_not_ready"}},
    "POST /v1/jobs/{job_id}/cancel": {**JOB_GONE, 409: {"job_finished"}},
    # Which speakers a transcript has (and whether it has any) is data, not schema.
    "PATCH /v1/jobs/{job_id}/speakers": {
        **JOB_GONE,
        409: {"transcript_not_ready", "not_diarized"},
        422: {"unknown_speaker"},
    },
    # Last-Event-ID is a string the schema cannot say more of: only ids the stream sent.
    "GET /v1/jobs/{job_id}/stream": {**JOB_GONE, 400: {"invalid_last_event_id"}},
    # OpenAI's routes. A free-text model name may not be offered here; granularities need
    # `verbose_json` (as at OpenAI); with no worker in this test, a transcription that was
    # accepted is still pending when the (short) wait ends.
    "GET /v1/models": {},
    "GET /v1/models/{model_id}": {404: {"model_not_found"}},
    "POST /v1/audio/transcriptions": {
        # Which models exist, and which fields go together (granularities and a streamed
        # answer need particular formats), are beyond what the schema says.
        400: {
            "model_not_found",
            "invalid_timestamp_granularities",
            "invalid_response_format",
            *KNOWN_SPEAKER_REFUSALS,
        },
        504: {"transcription_pending"},
    },
    "DELETE /v1/jobs/{job_id}": JOB_GONE,
    "GET /v1/queue": {},  # the console's queue view: counts, never a refusal
    # The fuzzing tenant's jobs have no stored audio (the ingestion API is not used for them).
    "GET /v1/jobs/{job_id}/audio": {**JOB_GONE, 410: {"audio_deleted"}},
    # Blank queries, NUL characters and queries that only exclude words are refused by
    # rule; a cursor must be one this API issued.
    "GET /v1/search": {
        400: {"invalid_cursor"},
        422: {"empty_query", "invalid_query", "query_without_terms"},
    },
}


class FuzzKey:
    """Schemathesis auth provider: the fuzzing tenant's bearer key on every generated case."""

    def get(self, case: Case[Any], ctx: AuthContext) -> str:
        """The key (static)."""
        return SECRET

    def set(self, case: Case[Any], data: str, ctx: AuthContext) -> None:
        """Send it as a bearer token."""
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers["Authorization"] = f"Bearer {data}"


def _schema(app: Any) -> OpenApiSchema:
    """The app's OpenAPI document as a derandomized, bounded schemathesis schema."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    # Unknown query parameters are ignored by design (as by most HTTP APIs, so old servers
    # accept newer clients); generating them as "negative" data would only test that choice.
    # No example database: every run generates the same cases, whatever ran before.
    schema.config.generation.update(
        max_examples=MAX_EXAMPLES, deterministic=True, allow_extra_parameters=False, database="none"
    )
    schema.auth()(FuzzKey)
    return schema


ingest = _schema(INGEST_APP)
status = _schema(STATUS_APP)


@pytest.fixture(scope="module", autouse=True)
def fuzz_spool(
    sessions: sessionmaker[Session], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Store the fuzzing key and configure the apps (spool dir yielded); stop them afterwards."""
    spool = tmp_path_factory.mktemp("fuzz-spool")
    env = pytest.MonkeyPatch()
    env.setenv("VOXFLOW_SPOOL_DIR", str(spool))
    # Hundreds of uploads a minute from one tenant are the point here, not a rate to limit.
    env.setenv("VOXFLOW_UPLOADS_PER_MINUTE", "100000")
    # No worker runs here: an accepted transcription waits this long, then answers 504.
    env.setenv("VOXFLOW_OPENAI_WAIT_SECONDS", "0.05")
    with session_scope(sessions) as session:
        repository.add_api_key(
            session,
            ApiKey(id=uuid.uuid4(), tenant=TENANT, name="fuzz",
                   prefix=SECRET[:PREFIX_LENGTH], key_hash=hash_key(SECRET)),
        )  # fmt: skip
    try:
        yield spool
    finally:
        shutdown_lifespans()
        env.undo()


@pytest.fixture(scope="module")
def jobs(sessions: sessionmaker[Session]) -> JobMaker:
    """Maker of the fuzzing tenant's jobs."""
    return JobMaker(sessions, TENANT)


@pytest.fixture(scope="module")
def finished_job(jobs: JobMaker) -> uuid.UUID:
    """A completed job with a transcript, notes and LLM calls, for the read endpoints."""
    (job_id,) = jobs.queued(tasks=["summary"])
    jobs.transcribe(job_id)
    jobs.claim(job_id, JobStatus.TRANSCRIBED)
    jobs.add_result(job_id, "summary", 100, 20, "0.0012")
    jobs.add_call(job_id, "summary", "ok", "0.0012")
    jobs.finish_generation(job_id)
    return job_id


# The only server error an operation may answer (the table above pins its code).
EXPECTED_5XX = {"POST /v1/audio/transcriptions": 504}


def _validate(case: Case[Any]) -> None:
    """Send the case; run every schemathesis check, and the refusal table for positive cases."""
    excluded: list[CheckFunction] = [checks.positive_data_acceptance]
    if case.operation.label in EXPECTED_5XX:
        excluded.append(schemathesis.checks.not_a_server_error)
    response = case.call_and_validate(excluded_checks=excluded)
    if response.status_code >= 500:
        assert response.status_code == EXPECTED_5XX.get(case.operation.label), response.text
        assert response.json()["error"]["code"] == "transcription_pending", response.text
    assert case.meta is not None
    if case.meta.generation.mode is not GenerationMode.POSITIVE or response.status_code < 400:
        return
    allowed = ACCEPTABLE_REFUSALS.get(case.operation.label, {})
    code = response.json()["error"]["code"]
    assert code in allowed.get(response.status_code, set()), (
        f"{case.operation.label} refused schema-valid data: {response.status_code} {code} "
        f"(query {case.query}, path {case.path_parameters}, body fields "
        f"{sorted(case.body) if isinstance(case.body, dict) else type(case.body).__name__})"
    )


@ingest.parametrize()
def test_ingest_api(case: Case[Any], fuzz_spool: Path) -> None:
    _validate(case)
    # Whatever the answer, the upload's spool file is gone once it has been given.
    assert list(fuzz_spool.iterdir()) == []


@status.parametrize()
def test_status_api(case: Case[Any], jobs: JobMaker, finished_job: uuid.UUID) -> None:
    _validate(case)
    if case.path_parameters is None or "job_id" not in case.path_parameters:
        return
    assert case.meta is not None
    if case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    # Again on a real job: a fresh one for what changes a job, the finished one for reads.
    if case.method.upper() == "GET":
        case.path_parameters["job_id"] = str(finished_job)
    else:
        (fresh,) = jobs.queued()
        case.path_parameters["job_id"] = str(fresh)
    _validate(case)


def test_every_job_operation_has_a_refusal_entry() -> None:
    """A new endpoint must say which refusals of valid data it may give (none is an answer)."""
    labels = {
        f"{method.upper()} {path}"
        for app in (INGEST_APP, STATUS_APP)
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    }
    assert {label for label in labels if " /v1/" in label} == set(ACCEPTABLE_REFUSALS)
