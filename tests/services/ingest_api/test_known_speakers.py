"""Diarization options and known speakers on the upload routes: checked, stored, removed."""

from __future__ import annotations

import base64
import io
import json
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient
from faster_whisper import decode_audio
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app
from ingest_api.settings import IngestSettings
from status_api.app import create_app as create_status_app
from tests.conftest import SAMPLES
from voxflow.jobs.models import Job
from voxflow.storage.local import LocalStorage

VOICE_NOTE = SAMPLES / "voice_note.ogg"


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def client(spool: Path) -> Iterator[TestClient]:
    with TestClient(create_app(IngestSettings(spool_dir=spool, uploads_per_minute=None))) as c:
        yield c


def clip(seconds: float) -> str:
    """A data URL of the first `seconds` of the voice note, as 16 kHz 16-bit WAV."""
    samples = decode_audio(str(VOICE_NOTE))[: int(seconds * 16_000)]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return "data:audio/wav;base64," + base64.b64encode(out.getvalue()).decode()


def post(
    client: TestClient,
    auth: dict[str, str],
    options: dict[str, Any],
    names: list[str] = (),  # type: ignore[assignment]
    references: list[str] = (),  # type: ignore[assignment]
) -> Any:
    data: dict[str, Any] = {"options": json.dumps(options)}
    if names:
        data["known_speaker_names[]"] = names
    if references:
        data["known_speaker_references[]"] = references
    files = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
    return client.post("/v1/jobs", headers=auth, files=files, data=data)


def count_jobs(sessions: sessionmaker[Session], tenant: str) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).where(Job.tenant == tenant)) or 0)


def test_known_speakers_are_stored_beside_the_recording_and_deleted_with_it(
    client: TestClient, auth: dict[str, str], sessions: sessionmaker[Session],
    storage_root: Path, spool: Path,
) -> None:  # fmt: skip
    answer = post(client, auth, {"diarize": True, "max_speakers": 3},
                  ["Ada Lovelace", "Bob"], [clip(3), clip(2)])  # fmt: skip
    assert answer.status_code == 202, answer.text
    job_id = uuid.UUID(answer.json()["id"])
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
    assert job.options["diarize"] is True
    assert job.options["max_speakers"] == 3
    known = job.options["known_speakers"]
    assert [k["name"] for k in known] == ["Ada Lovelace", "Bob"]
    storage = LocalStorage(storage_root)
    assert [k["key"] for k in known] == [f"{job.source_key}.speaker-{i}" for i in range(2)]
    assert all(storage.exists(k["key"]) for k in known)
    assert list(spool.iterdir()) == []
    with TestClient(create_status_app()) as status:
        assert status.delete(f"/v1/jobs/{job_id}", headers=auth).status_code == 204
    assert not any(storage.exists(key) for key in job.audio_keys)


@pytest.mark.parametrize(
    ("options", "names", "references", "code"),
    [
        ({"speakers": 2}, [], [], "invalid_options"),  # counts need diarize
        ({"diarize": True, "speakers": 2, "max_speakers": 3}, [], [], "invalid_options"),
        ({"diarize": True, "min_speakers": 4, "max_speakers": 2}, [], [], "invalid_options"),
        ({}, ["Ada"], ["CLIP3"], "known_speakers_need_diarize"),
        ({"diarize": True}, ["Ada", "Bob"], ["CLIP3"], "known_speakers_mismatch"),
        ({"diarize": True}, ["Ada", "Ada"], ["CLIP3", "CLIP3"], "invalid_known_speaker_name"),
        ({"diarize": True}, ["A", "B", "C", "D", "E"], ["CLIP3"] * 5, "too_many_known_speakers"),
        ({"diarize": True}, ["Ada"], ["https://example.com/ada.wav"],
         "invalid_known_speaker_reference"),
        ({"diarize": True}, ["Ada"], ["data:audio/wav;base64,bm90IGF1ZGlv"],
         "invalid_known_speaker_reference"),
        ({"diarize": True}, ["Ada"], ["CLIP0.5"], "invalid_known_speaker_reference"),
    ],
    ids=["counts without diarize", "exact and bounds", "min above max", "names without diarize",
         "mismatch", "same name twice", "five speakers", "not a data url", "not audio",
         "too short"],
)  # fmt: skip
def test_bad_diarization_requests_are_refused_and_leave_nothing(
    client: TestClient, auth: dict[str, str], sessions: sessionmaker[Session], tenant: str,
    storage_root: Path, spool: Path, options: dict[str, Any], names: list[str],
    references: list[str], code: str,
) -> None:  # fmt: skip
    refs = [clip(float(r[4:])) if r.startswith("CLIP") else r for r in references]
    answer = post(client, auth, options, names, refs)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == code
    assert count_jobs(sessions, tenant) == 0
    assert list(LocalStorage(storage_root).iter_keys(f"{tenant}/")) == []
    assert list(spool.iterdir()) == []


def test_openai_route_wants_diarized_json_for_known_speakers(
    client: TestClient, auth: dict[str, str], sessions: sessionmaker[Session], tenant: str
) -> None:
    sdk = openai.OpenAI(api_key=auth["Authorization"][7:], base_url="http://testserver/v1",
                        http_client=client, max_retries=0)  # fmt: skip
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.audio.transcriptions.create(
            model="whisper-1", file=VOICE_NOTE, response_format="json",
            known_speaker_names=["Ada"], known_speaker_references=[clip(3)],
        )  # fmt: skip
    assert refused.value.code == "known_speakers_need_diarize"
    assert count_jobs(sessions, tenant) == 0
