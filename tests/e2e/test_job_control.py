"""Canceling a job while a real worker transcribes it: the worker stops and serves the next."""

from __future__ import annotations

import io
import time
import wave

import numpy as np
import pytest
from fastapi.testclient import TestClient
from faster_whisper import decode_audio
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker
from tests.e2e.helpers import submit, wait_done
from voxflow.jobs.models import Transcript

pytestmark = pytest.mark.e2e


def long_recording(repeats: int = 20) -> bytes:
    """The meeting sample said `repeats` times over (a few minutes), as 16 kHz WAV."""
    samples = np.tile(decode_audio(str(SAMPLES / "meeting.ogg")), repeats)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def test_canceling_a_running_transcription_stops_it(
    ingest: TestClient, status: TestClient, auth: dict[str, str], workers: dict[str, Worker],
    sessions: sessionmaker[Session],
) -> None:  # fmt: skip
    response = ingest.post("/v1/jobs", headers=auth,
                           files={"file": ("long.wav", long_recording(), "audio/wav")})  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while (job := status.get(f"/v1/jobs/{job_id}", headers=auth).json())["status"] == "queued":
        assert time.monotonic() < deadline, (job, workers["transcription"].tail())
        time.sleep(0.05)
    assert job["status"] == "transcribing", job  # 12 minutes of audio: far from done
    canceled = status.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert canceled.status_code == 200, canceled.text
    stopped_at = time.monotonic()
    assert status.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "canceled"
    # The worker notices at its next progress write and takes the next job promptly.
    follow = submit(ingest, auth, "voice_note.ogg", {})
    done = wait_done(status, auth, follow, workers, timeout=120)
    assert done["status"] == "completed"
    with sessions() as session:
        count = select(func.count()).select_from(Transcript).where(Transcript.job_id == job_id)
        assert session.scalar(count) == 0  # the canceled job wrote nothing
    events = status.get(f"/v1/jobs/{job_id}/events", headers=auth).json()
    assert [e["to_status"] for e in events][-1] == "canceled"
    assert time.monotonic() - stopped_at < 60
