"""Naming the speakers of a diarized transcript: every format shows the names."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.services.status_api.conftest import JobMaker
from voxflow.apikeys import issue_key
from voxflow.db import session_scope


def test_renamed_speakers_show_in_every_format(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    [job_id] = jobs.queued()
    jobs.transcribe(job_id, diarized=True)
    before = client.get(f"/v1/jobs/{job_id}/transcript?format=txt", headers=auth).text
    assert before.startswith("A: Hello there.\n\nB: Fish & <chips>.\n\nA: General Kenobi.")

    renamed = client.patch(f"/v1/jobs/{job_id}/speakers", headers=auth,
                           json={"names": {"B": "  Ben Kenobi "}})  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == [
        {"label": "A", "name": None, "talk_seconds": 4.25},
        {"label": "B", "name": "Ben Kenobi", "talk_seconds": 4.46},
    ]

    def rendered(fmt: str) -> str:
        answer = client.get(f"/v1/jobs/{job_id}/transcript?format={fmt}", headers=auth)
        assert answer.status_code == 200
        return answer.text

    assert "Ben Kenobi: Fish & <chips>." in rendered("txt")
    assert "Ben Kenobi: Fish & <chips>." in rendered("srt")
    assert "<v Ben Kenobi>Fish &amp; &lt;chips&gt;." in rendered("vtt")
    document = client.get(f"/v1/jobs/{job_id}/transcript?format=json", headers=auth).json()
    assert [s["speaker"] for s in document["segments"]] == ["A", "Ben Kenobi", "A"]
    assert document["speakers"][1]["name"] == "Ben Kenobi"
    verbose = client.get(f"/v1/jobs/{job_id}/transcript?format=verbose_json", headers=auth)
    assert [s["speaker"] for s in verbose.json()["segments"]] == ["A", "Ben Kenobi", "A"]

    # null gives a speaker its label back.
    cleared = client.patch(f"/v1/jobs/{job_id}/speakers", headers=auth,
                           json={"names": {"B": None}})  # fmt: skip
    assert cleared.json()[1]["name"] is None
    assert rendered("txt") == before


def test_renaming_is_refused_clearly(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    plain, diarized, waiting = jobs.queued(3)
    jobs.transcribe(plain)
    jobs.transcribe(diarized, diarized=True)

    def patch(job_id: object, body: object, headers: dict[str, str] = auth) -> tuple[int, str]:
        answer = client.patch(f"/v1/jobs/{job_id}/speakers", headers=headers, json=body)
        return answer.status_code, answer.json()["error"]["code"]

    assert patch(plain, {"names": {"A": "Ada"}}) == (409, "not_diarized")
    assert patch(waiting, {"names": {"A": "Ada"}}) == (409, "transcript_not_ready")
    assert patch(diarized, {"names": {"C": "Carol"}}) == (422, "unknown_speaker")
    assert patch(diarized, {"names": {"A": "Ada\nLovelace"}})[0] == 422  # would break SRT
    assert patch(diarized, {"names": {"A": ""}})[0] == 422
    assert patch(diarized, {"names": {}})[0] == 422
    with session_scope(sessions) as session:
        stranger = {"Authorization": f"Bearer {issue_key(session, 'speakers-other', 's').secret}"}
    assert patch(diarized, {"names": {"A": "Eve"}}, stranger) == (404, "job_not_found")
    names = client.get(f"/v1/jobs/{diarized}/transcript?format=json", headers=auth).json()
    assert [s["name"] for s in names["speakers"]] == [None, None]  # nothing changed
