"""OpenAI's speech API before any worker runs: models, and every refusal, through its SDK.

The success path (a worker transcribes, the SDK parses every format) is in
tests/e2e/test_openai.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES
from tests.support.served import served
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Job, Transcript
from voxflow.jobs.states import JobStatus

VOICE_NOTE = SAMPLES / "voice_note.ogg"


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingestion API's spool directory."""
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def ingest(spool: Path) -> Iterator[TestClient]:
    """The ingestion API, one upload a minute per tenant (the rate limit test spends it)."""
    settings = IngestSettings(spool_dir=spool, uploads_per_minute=1)
    with TestClient(create_app(settings)) as client:
        yield client


def sdk(client: TestClient, key: str) -> openai.OpenAI:
    """OpenAI's own client, on the app, with no retries (a retry would hide a status)."""
    return openai.OpenAI(
        api_key=key, base_url="http://testserver/v1", http_client=client, max_retries=0
    )


@pytest.fixture
def key(api_key: object) -> str:
    """The test tenant's secret."""
    return str(api_key.secret)  # type: ignore[attr-defined]


def test_models_are_the_allowed_ones_and_the_alias(ingest: TestClient, key: str) -> None:
    client = sdk(ingest, key)
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "whisper-1"
    assert "tiny.en" in ids
    model = client.models.retrieve("tiny.en")
    assert (model.id, model.object, model.owned_by) == ("tiny.en", "model", "voxflow")
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4o-transcribe")
    assert missing.value.code == "model_not_found"


def test_a_bad_key_is_the_sdks_authentication_error(ingest: TestClient) -> None:
    client = sdk(ingest, "vf_" + "Z" * 43)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=VOICE_NOTE)
    assert refused.value.code == "invalid_api_key"
    body = refused.value.response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"model": "gpt-4o-transcribe"}, "model_not_found"),
        ({"model": "whisper-1", "response_format": "tsv"}, "invalid_response_format"),
        (
            {"model": "whisper-1", "timestamp_granularities": ["word"]},
            "invalid_timestamp_granularities",
        ),
        ({"model": "whisper-1", "temperature": 1.5}, "invalid_temperature"),
        ({"model": "whisper-1", "language": "english"}, "invalid_language"),
        (
            {"model": "whisper-1", "stream": True, "response_format": "srt"},
            "invalid_response_format",
        ),
    ],
    ids=[
        "unknown model",
        "format",
        "granularity without verbose_json",
        "temperature",
        "language",
        "streamed srt",
    ],
)
def test_bad_options_are_the_sdks_bad_request_and_make_no_job(
    ingest: TestClient,
    key: str,
    sessions: sessionmaker[Session],
    tenant: str,
    arguments: dict[str, object],
    code: str,
) -> None:
    client = sdk(ingest, key)
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(file=VOICE_NOTE, **arguments)  # type: ignore[call-overload]
    assert refused.value.status_code == 400
    assert refused.value.code == code
    error = refused.value.response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    with sessions() as session:
        assert session.scalar(select(func.count()).where(Job.tenant == tenant)) == 0


def test_bad_audio_is_a_bad_request(ingest: TestClient, key: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.ogg"
    text.write_text("this is not audio\n" * 100)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(ingest, key).audio.transcriptions.create(model="whisper-1", file=text)
    assert refused.value.code == "unsupported_media"
    assert refused.value.response.json()["error"]["param"] is None


def test_a_spent_rate_limit_is_the_sdks_rate_limit_error(
    ingest: TestClient, key: str, tmp_path: Path
) -> None:
    client = sdk(ingest, key)
    bad = tmp_path / "empty.ogg"
    bad.write_bytes(b"")
    with pytest.raises(openai.BadRequestError):  # counted: the limit is checked first
        client.audio.transcriptions.create(model="whisper-1", file=bad)
    with pytest.raises(openai.RateLimitError) as limited:
        client.audio.transcriptions.create(model="whisper-1", file=VOICE_NOTE)
    assert limited.value.code == "rate_limited"
    assert int(limited.value.response.headers["Retry-After"]) >= 1
    assert limited.value.response.json()["error"]["type"] == "rate_limit_error"


def test_the_job_api_keeps_its_own_error_shape(ingest: TestClient) -> None:
    answer = ingest.post("/v1/jobs", headers={"Authorization": f"Bearer vf_{uuid.uuid4().hex}"})
    assert answer.status_code == 401
    assert set(answer.json()["error"]) == {"code", "message"}


@pytest.fixture
def live(spool: Path) -> Iterator[str]:
    """The ingestion API under a real uvicorn (a client can hang up on it), waiting 60 s."""
    with served(create_app(IngestSettings(spool_dir=spool, openai_wait_seconds=60))) as address:
        yield f"http://{address}"


def _answered(base: str) -> float:
    """Transcription requests this API has finished with (its own request metric)."""
    metrics = httpx.get(f"{base}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("voxflow_http_requests_total{")
        and 'route="/v1/audio/transcriptions"' in line
    )


def test_a_client_that_hangs_up_stops_the_wait_and_the_job_goes_on(
    live: str, key: str, sessions: sessionmaker[Session], tenant: str, spool: Path
) -> None:
    # No worker runs here: the job stays queued, so only the hang-up can end the wait.
    client = openai.OpenAI(api_key=key, base_url=f"{live}/v1", max_retries=0, timeout=2.0)
    before = _answered(live)
    with pytest.raises(openai.APITimeoutError):
        client.audio.transcriptions.create(model="whisper-1", file=VOICE_NOTE)
    hung_up = time.monotonic()
    while _answered(live) == before:
        assert time.monotonic() - hung_up < 10, "the API still waits for a client that left"
        time.sleep(0.1)
    with sessions() as session:
        jobs = session.scalars(select(Job).where(Job.tenant == tenant)).all()
    assert [job.status for job in jobs] == ["queued"]  # recorded, queued, and left to run
    assert list(spool.iterdir()) == []


def _answer_while(
    client: TestClient, key: str, sessions: sessionmaker[Session], act: Callable[[Job], None]
) -> Any:
    """A transcription request, and `act` on its job (as a worker would) while it waits."""
    with sessions() as session:
        seen = set(session.scalars(select(Job.id)))
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            sdk(client, key).audio.transcriptions.with_raw_response.create,
            model="whisper-1", file=VOICE_NOTE,
        )  # fmt: skip
        while True:
            with sessions() as session:
                job = session.scalars(select(Job).where(Job.id.not_in(seen))).first()
            if job is not None:
                break
            assert not answer.done(), answer.result()
            time.sleep(0.02)
        act(job)
        return answer.result(timeout=30)


@pytest.fixture
def patient(spool: Path) -> Iterator[TestClient]:
    """An ingestion API with no upload rate limit, waiting up to a minute."""
    settings = IngestSettings(spool_dir=spool, uploads_per_minute=None, openai_wait_seconds=60)
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_job_that_fails_on_its_audio_is_a_bad_request_not_retried(
    patient: TestClient, key: str, sessions: sessionmaker[Session]
) -> None:
    def fail(job: Job) -> None:
        with session_scope(sessions) as session:
            assert service.claim(session, job.id, JobStatus.QUEUED, "w", timedelta(minutes=1))
        with session_scope(sessions) as session:
            assert service.fail(session, job.id, JobStatus.TRANSCRIBING, "corrupt_audio",
                                "The audio is damaged.", actor="w")  # fmt: skip

    with pytest.raises(openai.BadRequestError) as refused:
        _answer_while(patient, key, sessions, fail)
    assert refused.value.code == "corrupt_audio"
    assert refused.value.message.endswith("The audio is damaged.")
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert refused.value.response.headers["X-Voxflow-Job-Id"]


def test_a_canceled_job_is_a_conflict(
    patient: TestClient, key: str, sessions: sessionmaker[Session]
) -> None:
    def cancel(job: Job) -> None:
        with session_scope(sessions) as session:
            assert service.cancel(session, job.id, actor="tenant") is not None

    with pytest.raises(openai.ConflictError) as refused:
        _answer_while(patient, key, sessions, cancel)
    assert refused.value.code == "job_canceled"


def _segment(position: int) -> dict[str, Any]:
    return {"id": position, "start": 2.0 * position, "end": 2.0 * position + 1.5,
            "text": f"Part {position} of the note."}  # fmt: skip


def _claimed(sessions: sessionmaker[Session], job_id: str) -> uuid.UUID:
    """Claim the request's job as a transcription worker would."""
    with session_scope(sessions) as session:
        claimed = service.claim(session, uuid.UUID(job_id), JobStatus.QUEUED, "w",
                                timedelta(minutes=1))  # fmt: skip
        assert claimed is not None
        assert claimed.options["live"] is True  # the worker publishes the first words early
        return claimed.id


def test_a_streamed_transcription_sends_each_segment_as_the_worker_publishes_it(
    live: str, key: str, sessions: sessionmaker[Session]
) -> None:
    client = openai.OpenAI(api_key=key, base_url=f"{live}/v1", max_retries=0, timeout=20.0)
    answer = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=VOICE_NOTE, stream=True
    )
    assert answer.headers["content-type"].startswith("text/event-stream")
    job_id = _claimed(sessions, answer.headers["X-Voxflow-Job-Id"])
    events = iter(answer.parse())

    # Each segment the worker publishes (with its lease renewal) is a delta, at once.
    with session_scope(sessions) as session:
        service.heartbeat(session, job_id, JobStatus.TRANSCRIBING, "w", timedelta(minutes=1),
                          segments=[(0, _segment(0))])  # fmt: skip
    first = next(events)
    assert isinstance(first, TranscriptionTextDeltaEvent)
    assert first.delta == "Part 0 of the note."
    with session_scope(sessions) as session:
        service.heartbeat(session, job_id, JobStatus.TRANSCRIBING, "w", timedelta(minutes=1),
                          segments=[(1, _segment(1))])  # fmt: skip
    assert next(events) == TranscriptionTextDeltaEvent(
        type="transcript.text.delta", delta=" Part 1 of the note."
    )
    # The transcript replaces the draft: what it adds comes next, then the whole text.
    segments = [_segment(i) for i in range(3)]
    text = " ".join(s["text"] for s in segments)
    with session_scope(sessions) as session:
        service.finish_transcription(session, job_id, "w", Transcript(
            job_id=job_id, language="en", duration_seconds=6.0, text=text, segments=segments,
            model="tiny.en", processing_seconds=0.1,
        ))  # fmt: skip
    rest = list(events)
    assert [type(event) for event in rest] == [
        TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent
    ]  # fmt: skip
    assert rest[0].delta == " Part 2 of the note."  # type: ignore[union-attr]
    done = rest[1]
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert done.text == text == first.delta + " Part 1 of the note." + rest[0].delta  # type: ignore[union-attr]


def test_a_streamed_transcription_whose_job_fails_ends_with_the_error(
    live: str, key: str, sessions: sessionmaker[Session]
) -> None:
    client = openai.OpenAI(api_key=key, base_url=f"{live}/v1", max_retries=0, timeout=20.0)
    answer = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=VOICE_NOTE, stream=True
    )
    job_id = _claimed(sessions, answer.headers["X-Voxflow-Job-Id"])
    with session_scope(sessions) as session:
        service.fail(session, job_id, JobStatus.TRANSCRIBING, "corrupt_audio",
                     "The audio is damaged.", actor="w")  # fmt: skip
    with pytest.raises(openai.APIError) as failed:
        list(answer.parse())
    assert failed.value.code == "corrupt_audio"
    assert failed.value.message == "The audio is damaged."
    assert failed.value.type == "invalid_request_error"


def test_a_stream_that_runs_out_of_time_names_the_job(
    spool: Path, key: str, sessions: sessionmaker[Session]
) -> None:
    settings = IngestSettings(spool_dir=spool, uploads_per_minute=None, openai_wait_seconds=0.5)
    with served(create_app(settings)) as address:
        client = openai.OpenAI(api_key=key, base_url=f"http://{address}/v1", max_retries=0)
        answer = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=VOICE_NOTE, stream=True
        )
        with pytest.raises(openai.APIError) as pending:
            list(answer.parse())
    job_id = answer.headers["X-Voxflow-Job-Id"]
    assert pending.value.code == "transcription_pending"
    assert job_id in pending.value.message
    with sessions() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        assert job.status == "queued"
