"""Rendered transcripts are kept per process: served again without the database, never stale."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.services.status_api.conftest import JobMaker


def _transcript_reads(statements: list[str]) -> int:
    """How many of the statements read the transcripts table."""
    return sum("FROM transcripts" in statement for statement in statements)


def test_a_rendering_is_served_again_without_loading_the_transcript(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], sql_statements: list[str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    url = f"/v1/jobs/{job_id}/transcript"
    first = client.get(url, headers=auth, params={"format": "srt"})
    assert first.status_code == 200
    assert _transcript_reads(sql_statements) == 1
    again = client.get(url, headers=auth, params={"format": "srt"})
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert _transcript_reads(sql_statements) == 1, "the kept rendering was rendered again"
    # Another format, or another line width, is another rendering.
    vtt = client.get(url, headers=auth, params={"format": "vtt"})
    assert vtt.status_code == 200
    assert vtt.content.startswith(b"WEBVTT")
    assert _transcript_reads(sql_statements) == 2
    narrow = client.get(url, headers=auth, params={"format": "srt", "max_line_chars": 20})
    assert narrow.status_code == 200
    assert _transcript_reads(sql_statements) == 3


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
