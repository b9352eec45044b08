"""A transcription through a real worker process that shares no disk with the API: S3 only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import jiwer
import pytest
from fastapi.testclient import TestClient

from ingest_api.app import create_app as create_ingest_app
from ingest_api.settings import IngestSettings
from status_api.app import create_app as create_status_app
from status_api.settings import StatusSettings
from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker
from tests.e2e.helpers import normalise, submit, wait_done
from tests.support.s3server import S3Server, running_s3_server
from voxflow.queue.names import TRANSCRIPTION_QUEUE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback; the worker process reaches it like any S3 endpoint."""
    with running_s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3_env(s3_server: S3Server) -> dict[str, str]:
    """VOXFLOW_* variables selecting a fresh bucket, under a prefix."""
    return s3_server.env(s3_server.new_bucket(), prefix="e2e")


@pytest.fixture(scope="module")
def s3_worker(
    purged_queues: None, s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Worker]]:
    """A transcription worker whose storage is the bucket (its local root is a decoy)."""
    decoy = tmp_path_factory.mktemp("worker-has-no-audio")
    env = {**s3_env, "VOXFLOW_STORAGE_ROOT": str(decoy)}
    log = tmp_path_factory.mktemp("worker-logs") / "transcription.log"
    worker = Worker("transcription_worker.tasks", TRANSCRIPTION_QUEUE, 1, log, env=env)
    try:
        worker.start()
        yield {"transcription": worker}
    finally:
        worker.stop()


def _values(env: dict[str, str]) -> dict[str, str]:
    return {name.removeprefix("VOXFLOW_").lower(): value for name, value in env.items()}


def test_audio_goes_through_the_bucket(
    s3_worker: dict[str, Worker], s3_server: S3Server, s3_env: dict[str, str],
    auth: dict[str, str],
) -> None:  # fmt: skip
    settings = _values(s3_env)
    with (
        TestClient(create_ingest_app(IngestSettings.model_validate(settings))) as ingest,
        TestClient(create_status_app(StatusSettings.model_validate(settings))) as status,
    ):
        job_id = submit(ingest, auth, "voice_note.ogg", {})
        bucket = s3_env["VOXFLOW_S3_BUCKET"]
        listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
        assert [item["Key"].split("/", 1)[0] for item in listed] == ["e2e"]
        job = wait_done(status, auth, job_id, s3_worker)
        assert job["status"] == "completed", job
        transcript = status.get(f"/v1/jobs/{job_id}/transcript?format=txt", headers=auth).text
        expected = (SAMPLES / "voice_note.txt").read_text()
        assert jiwer.wer(normalise(expected), normalise(transcript)) < 0.15, transcript
        assert status.delete(f"/v1/jobs/{uuid.UUID(job_id)}", headers=auth).status_code == 204
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
