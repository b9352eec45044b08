"""OpenAI's speech API end to end: its SDK against the ingestion API and real workers."""

from __future__ import annotations

import time
import uuid
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient
from faster_whisper import decode_audio
from openai.types.audio import (
    Transcription,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app as create_ingest_app
from ingest_api.audio_probe import probe_file
from ingest_api.settings import IngestSettings
from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker
from tests.e2e.helpers import normalise, wait_done
from tests.support.served import served
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs.models import Job, JobEvent, Transcript, TranscriptSegment

pytestmark = pytest.mark.e2e

VOICE_NOTE = SAMPLES / "voice_note.ogg"
SPOKEN = normalise((SAMPLES / "voice_note.txt").read_text())


def sdk(client: TestClient, auth: dict[str, str]) -> openai.OpenAI:
    """OpenAI's client on the app, with the test tenant's key and no retries."""
    key = auth["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(
        api_key=key, base_url="http://testserver/v1", http_client=client, max_retries=0
    )


def wer(text: str) -> float:
    """Word error rate of a transcript against the note's script."""
    return float(jiwer.wer(SPOKEN, normalise(text)))


def test_every_response_format_parses_in_the_sdk(
    ingest: TestClient,
    status: TestClient,
    auth: dict[str, str],
    workers: dict[str, Worker],
    sessions: sessionmaker[Session],
) -> None:
    client = sdk(ingest, auth)
    answer = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=VOICE_NOTE
    )
    plain = answer.parse()
    assert isinstance(plain, Transcription)
    assert wer(plain.text) < 0.15, plain.text
    assert plain.usage is not None
    assert plain.usage.type == "duration"

    # An ordinary job of the tenant: listed, readable, and absent for anyone else.
    job_id = answer.headers["X-Voxflow-Job-Id"]
    assert answer.headers["Location"].endswith(f"/v1/jobs/{job_id}")
    job = status.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert (job["status"], job["source"]["filename"]) == ("completed", "voice_note.ogg")
    listed = status.get("/v1/jobs", headers=auth).json()["items"]
    assert job_id in {item["id"] for item in listed}
    with session_scope(sessions) as session:
        other = issue_key(session, "openai-other-tenant", "other").secret
    stranger = status.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {other}"})
    assert stranger.status_code == 404

    text = client.audio.transcriptions.create(
        model="tiny.en", file=VOICE_NOTE, response_format="text"
    )
    assert isinstance(text, str)
    assert wer(text) < 0.15, text
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=VOICE_NOTE, response_format="srt"
    )
    assert srt.startswith("1\n00:00:0"), srt[:40]
    vtt = client.audio.transcriptions.create(
        model="whisper-1", file=VOICE_NOTE, response_format="vtt", language="en"
    )
    assert vtt.startswith("WEBVTT"), vtt[:40]
    assert "-->" in vtt


def test_verbose_json_with_words_and_segments(
    ingest: TestClient, auth: dict[str, str], workers: dict[str, Worker]
) -> None:
    client = sdk(ingest, auth)
    both = client.audio.transcriptions.create(
        model="whisper-1", file=VOICE_NOTE, response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )  # fmt: skip
    assert isinstance(both, TranscriptionVerbose)
    assert both.language == "english"
    assert both.duration == pytest.approx(probe_file(VOICE_NOTE, max_seconds=60).duration_seconds)
    assert wer(both.text) < 0.15, both.text
    assert both.segments
    assert both.words
    assert all(w.start <= w.end for w in both.words)
    assert [w.start for w in both.words] == sorted(w.start for w in both.words)
    assert wer(" ".join(w.word for w in both.words)) < 0.15

    segments_only = client.audio.transcriptions.create(
        model="whisper-1", file=VOICE_NOTE, response_format="verbose_json"
    )
    assert segments_only.segments
    assert segments_only.words is None
    first = segments_only.segments[0]
    assert 0 <= first.start < first.end <= segments_only.duration + 0.5


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[TestClient]:
    """An ingestion API that waits 10 ms for a transcription: less than any job takes (a
    warm worker has transcribed the voice note within half a second)."""
    settings = IngestSettings(spool_dir=tmp_path, openai_wait_seconds=0.01)
    with TestClient(create_ingest_app(settings)) as client:
        yield client


def test_a_wait_that_runs_out_names_the_job_which_goes_on(
    impatient: TestClient,
    status: TestClient,
    auth: dict[str, str],
    workers: dict[str, Worker],
) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as pending:
        sdk(impatient, auth).audio.transcriptions.create(model="whisper-1", file=VOICE_NOTE)
    assert time.monotonic() - started < 30
    answer = pending.value.response
    assert answer.status_code == 504
    assert answer.headers["x-should-retry"] == "false"  # a retry would upload it again
    assert pending.value.code == "transcription_pending"
    job_id = answer.headers["X-Voxflow-Job-Id"]
    assert job_id in pending.value.message
    job = wait_done(status, auth, job_id, workers)
    assert job["status"] == "completed"


def test_forty_concurrent_requests_are_micro_batched(
    ingest: TestClient,
    auth: dict[str, str],
    workers: dict[str, Worker],
    sessions: sessionmaker[Session],
) -> None:
    """The waiting requests do not defeat micro-batching: their jobs share worker passes."""
    client = sdk(ingest, auth)

    def transcribe(_: int) -> tuple[str, str]:
        answer = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=VOICE_NOTE
        )
        return answer.headers["X-Voxflow-Job-Id"], answer.parse().text

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(transcribe, range(40)))
    assert len({job_id for job_id, _ in answers}) == 40
    for _, text in answers:
        assert wer(text) < 0.15, text
    ids = [uuid.UUID(job_id) for job_id, _ in answers]
    with sessions() as session:
        # A batch's leader claims its mates under its own name: one name per worker pass.
        passes = session.scalars(
            select(JobEvent.actor).where(
                JobEvent.job_id.in_(ids), JobEvent.to_status == "transcribing"
            )
        ).all()
        modes = session.scalars(
            select(Transcript.decode_options["mode"].astext).where(Transcript.job_id.in_(ids))
        ).all()
    assert len(passes) == 40
    assert len(set(passes)) <= 20, f"{len(set(passes))} passes for 40 notes"
    assert modes.count("microbatch") >= 30, modes


def _long_recording(path: Path, copies: int) -> str:
    """The meeting sample `copies` times with a second of silence between: several windows.

    Returns what is said, for WER."""
    samples = decode_audio(str(SAMPLES / "meeting.ogg"))
    pause = np.zeros(16_000, dtype=np.float32)
    audio = np.concatenate([part for _ in range(copies) for part in (samples, pause)])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return " ".join([(SAMPLES / "meeting.txt").read_text()] * copies)


def test_a_streamed_transcription_sends_words_while_the_recording_is_transcribed(
    auth: dict[str, str],
    workers: dict[str, Worker],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    recording = tmp_path / "long_meeting.wav"
    spoken = _long_recording(recording, copies=4)
    key = auth["Authorization"].removeprefix("Bearer ")
    settings = IngestSettings(spool_dir=tmp_path / "spool")
    with served(create_ingest_app(settings)) as address:
        client = openai.OpenAI(api_key=key, base_url=f"http://{address}/v1", max_retries=0)
        answer = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=recording, stream=True
        )
        job_id = uuid.UUID(answer.headers["X-Voxflow-Job-Id"])
        deltas: list[str] = []
        state_at_first_delta = None
        done = None
        for event in answer.parse():
            if isinstance(event, TranscriptionTextDeltaEvent):
                if not deltas:
                    with sessions() as session:
                        state_at_first_delta = session.scalar(
                            select(Job.status).where(Job.id == job_id)
                        )
                deltas.append(event.delta)
            else:
                assert isinstance(event, TranscriptionTextDoneEvent)
                done = event
    # The first words came while the worker was still transcribing the recording.
    assert state_at_first_delta == "transcribing"
    assert len(deltas) >= 4, deltas
    assert done is not None
    assert "".join(deltas) == done.text
    assert float(jiwer.wer(normalise(spoken), normalise(done.text))) < 0.15, done.text
    with sessions() as session:
        transcript = session.get(Transcript, job_id)
        assert transcript is not None
        assert transcript.text == done.text
        left = session.scalar(
            select(func.count()).select_from(TranscriptSegment).where(
                TranscriptSegment.job_id == job_id
            )
        )  # fmt: skip
    assert left == 0  # the draft went with the transcript's commit
