"""`voxflow search`: matching segments of the tenant's transcripts, marks shown, JSON too."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session, sessionmaker

from tests.cli.conftest import Voxflow
from tests.services.status_api.conftest import JobMaker


def test_search_shows_the_matching_segment_with_its_job_and_time(
    voxflow: Voxflow, sessions: sessionmaker[Session], tenant: str
) -> None:
    # A transcribed job of this tenant (the status API's test helper plays the worker).
    [job_id] = JobMaker(sessions, tenant).queued()
    JobMaker(sessions, tenant).transcribe(job_id)

    found = voxflow("search", "general kenobi", "--json")
    assert found.exit_code == 0, found.stderr
    hits = json.loads(found.stdout)
    assert [(h["job_id"], h["start"]) for h in hits] == [(str(job_id), 3661.25)]
    assert "<mark>General</mark> <mark>Kenobi</mark>" in hits[0]["snippet"]

    shown = voxflow("search", "general kenobi")
    assert shown.exit_code == 0, shown.stderr
    assert "meeting.wav" in shown.stdout  # the job's file name
    assert "1:01:01" in shown.stdout  # the segment's time
    assert "<mark>" not in shown.stdout  # marks are shown as highlights, not tags
    assert "General Kenobi" in shown.stdout

    nothing = voxflow("search", "kenobi -general", "--json")
    assert nothing.exit_code == 0
    assert json.loads(nothing.stdout) == []
    refused = voxflow("search", "   ")
    assert refused.exit_code != 0
    assert "empty_query" in refused.stderr
