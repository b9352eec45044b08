"""The commands about jobs (jobs, show, transcript, notes, cancel, delete) and their errors."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.conftest import Apis, Voxflow
from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker

pytestmark = pytest.mark.e2e


def completed_job(voxflow: Voxflow) -> str:
    """A finished job of the test's tenant, with a summary; its id."""
    result = voxflow("submit", str(SAMPLES / "voice_note.ogg"), "-t", "summary", "--wait", "--json")
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    assert item["status"] == "completed", item
    job_id: str = item["job_id"]
    return job_id


def test_list_show_transcript_and_notes(voxflow: Voxflow, workers: dict[str, Worker]) -> None:
    job_id = completed_job(voxflow)

    listed = voxflow("jobs", "--json")
    assert listed.exit_code == 0, listed.output
    [job] = json.loads(listed.stdout)  # a JSON array: the tenant has this one job
    assert (job["id"], job["status"], job["source"]["filename"]) == (
        job_id, "completed", "voice_note.ogg"
    )  # fmt: skip
    assert json.loads(voxflow("jobs", "--status", "failed", "--json").stdout) == []
    table = voxflow("jobs", "--all")
    assert job_id in table.stdout
    assert re.search(r"voice_note\.ogg\s+completed\s+100%\s+0:13", table.stdout), table.stdout

    shown = voxflow("show", job_id)
    assert shown.exit_code == 0, shown.output
    for expected in (job_id, "voice_note.ogg", "completed", "queued -> transcribing",
                     "generating -> completed"):  # fmt: skip
        assert expected in shown.stdout, shown.stdout
    document = json.loads(voxflow("show", job_id, "--json").stdout)
    assert document["id"] == job_id
    assert [event["to_status"] for event in document["events"]] == [
        "queued", "transcribing", "transcribed", "generating", "completed"
    ]  # fmt: skip

    srt = voxflow("transcript", job_id, "--format", "srt")
    assert srt.exit_code == 0, srt.output
    assert srt.stdout.startswith("1\n00:00:0"), srt.stdout[:40]
    assert "-->" in srt.stdout
    assert "dentist" in voxflow("transcript", job_id).stdout.lower()

    notes = voxflow("notes", job_id)
    assert notes.exit_code == 0, notes.output
    assert "summary" in notes.stdout
    assert "local / extractive-v1" in notes.stdout
    assert "tokens" in notes.stdout
    assert "$0.0000" in notes.stdout
    results = json.loads(voxflow("notes", job_id, "--json").stdout)
    assert [result["task"] for result in results["results"]] == ["summary"]


def test_cancel_and_delete(voxflow: Voxflow, workers: dict[str, Worker]) -> None:
    # A 36 s meeting takes the worker a few seconds: time to cancel it on its way.
    submitted = voxflow("submit", str(SAMPLES / "meeting.ogg"))
    assert submitted.exit_code == 0, submitted.output
    job_id = re.search(r"job (\S+) queued", submitted.stdout)[1]  # type: ignore[index]
    canceled = voxflow("cancel", job_id)
    assert canceled.exit_code == 0, canceled.output
    assert f"job {job_id} canceled" in canceled.stdout
    again = voxflow("cancel", job_id, "--json")
    assert again.exit_code == 1
    assert "job_finished" in again.stderr

    kept = voxflow("delete", job_id, stdin="n\n")  # asks first; "n" keeps the job
    assert kept.exit_code == 1
    assert "Delete job" in kept.stderr
    assert voxflow("show", job_id).exit_code == 0
    deleted = voxflow("delete", job_id, "--yes", "--json")
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout) == {"id": job_id, "deleted": True}
    gone = voxflow("show", job_id)
    assert gone.exit_code == 1
    assert "job_not_found" in gone.stderr


def test_errors_name_the_api_code_and_say_what_to_do(voxflow: Voxflow, apis: Apis) -> None:
    unknown = voxflow("show", "no-such-job")
    assert unknown.exit_code == 1
    assert unknown.stdout == ""
    assert "error: job_not_found: No job 'no-such-job' exists for this API key." in unknown.stderr
    for command in (["transcript", "no-such-job"], ["notes", "no-such-job"],
                    ["cancel", "no-such-job"], ["delete", "--yes", "no-such-job"]):  # fmt: skip
        answer = voxflow(*command)
        assert (answer.exit_code, "job_not_found" in answer.stderr) == (1, True), command

    keyless = Voxflow(apis, None)
    for command in (["jobs"], ["show", "x"], ["submit", str(SAMPLES / "voice_note.ogg")]):
        missing = keyless(*command)
        assert missing.exit_code == 2, command
        assert "missing_api_key" in missing.stderr
        assert "voxflow keys create --tenant" in missing.stderr
        assert "VOXFLOW_API_KEY" in missing.stderr

    revoked = Voxflow(apis, "vf_notakey")("jobs")
    assert revoked.exit_code == 1
    assert "invalid_api_key" in revoked.stderr
    assert "voxflow keys create" in revoked.stderr

    nobody = Voxflow(Apis("http://127.0.0.1:9", "http://127.0.0.1:9"), "vf_x")("jobs")
    assert nobody.exit_code == 1
    assert "error: unreachable: Cannot reach http://127.0.0.1:9" in nobody.stderr


def test_help_lists_the_commands(voxflow: Voxflow) -> None:
    shown = voxflow("--help")
    assert shown.exit_code == 0
    for command in ("submit", "jobs", "show", "transcript", "notes", "search", "cancel",
                    "delete", "run", "keys"):  # fmt: skip
        assert re.search(rf"│ {command}\s", shown.stdout), command
