"""Rendered transcripts are kept per process: served again without the database, never stale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from tests.services.status_api.conftest import JobMaker


@pytest.fixture
def transcript_reads() -> Iterator[list[str]]:
    """Statements of this process that read the transcripts table."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM transcripts" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    yield seen
    event.remove(Engine, "before_cursor_execute", note)


def test_a_rendering_is_served_again_without_loading_the_transcript(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], transcript_reads: list[str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    url = f"/v1/jobs/{job_id}/transcript"
    first = client.get(url, headers=auth, params={"format": "srt"})
    assert first.status_code == 200
    assert len(transcript_reads) == 1
    again = client.get(url, headers=auth, params={"format": "srt"})
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert len(transcript_reads) == 1, "the kept rendering was rendered again"
    # Another format, or another line width, is another rendering.
    vtt = client.get(url, headers=auth, params={"format": "vtt"})
    assert vtt.status_code == 200
    assert vtt.content.startswith(b"WEBVTT")
    assert len(transcript_reads) == 2
    narrow = client.get(url, headers=auth, params={"format": "srt", "max_line_chars": 20})
    assert narrow.status_code == 200
    assert len(transcript_reads) == 3


def test_a_kept_rendering_is_not_served_for_a_deleted_job_or_another_tenant(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    url = f"/v1/jobs/{job_id}/transcript"
    assert client.get(url, headers=auth).status_code == 200
    assert client.get(url, headers={"Authorization": "Bearer vf_nobody"}).status_code == 401
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth).status_code == 204
    gone = client.get(url, headers=auth)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "job_not_found"
