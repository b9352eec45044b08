"""`voxflow submit` over folders: uploads, live streams and transcripts written as files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import Voxflow
from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker

pytestmark = pytest.mark.e2e

VOICE_NOTE = SAMPLES / "voice_note.ogg"


def recordings(folder: Path, names: list[str]) -> list[Path]:
    """Copies of the 13 s voice note under `folder` (identical notes micro-batch well)."""
    made = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(VOICE_NOTE, path)
        made.append(path)
    return made


def test_a_folder_of_twenty_gives_twenty_transcripts(
    voxflow: Voxflow, workers: dict[str, Worker], tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"
    # The same names in two sub-folders: --out keeps the folders, so none overwrites another.
    names = [f"{day}/note{n:02d}.ogg" for day in ("monday", "tuesday") for n in range(10)]
    recordings(folder, names)
    recordings(folder, [".hidden/secret.ogg", ".draft.ogg"])  # hidden: skipped
    (folder / "monday" / "readme.txt").write_text("not a recording")  # not media: skipped
    out = tmp_path / "transcripts"

    result = voxflow("submit", str(folder), "--out", str(out), "--concurrency", "4")

    assert result.exit_code == 0, result.output
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == sorted(name.replace(".ogg", ".txt") for name in names)
    for path in out.rglob("*.txt"):
        assert "dentist" in path.read_text().lower(), path
    # stdout: one `JOB_ID<tab>FILE` line per recording; stderr: the bar and a line per file.
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 20
    assert len({job_id for job_id, _ in lines}) == 20
    assert {Path(file).relative_to(folder).as_posix() for _, file in lines} == set(names)
    assert "20/20" in result.stderr
    assert result.stderr.count("done -> ") == 20


def test_a_corrupt_file_is_named_and_the_others_are_written(
    voxflow: Voxflow, workers: dict[str, Worker], tmp_path: Path
) -> None:
    good = recordings(tmp_path, ["a.ogg", "b.ogg", "sub/c.ogg"])
    content = VOICE_NOTE.read_bytes()
    (tmp_path / "broken.ogg").write_bytes(content[: len(content) * 2 // 5])  # cut short

    result = voxflow("submit", str(tmp_path), "--write", "--format", "vtt", "--json")

    assert result.exit_code == 1, result.output
    for recording in good:  # --write: beside each recording
        assert recording.with_suffix(".vtt").read_text().startswith("WEBVTT")
    assert not (tmp_path / "broken.vtt").exists()
    summary = {Path(item["file"]).name: item for item in json.loads(result.stdout)}
    assert {name: item["status"] for name, item in summary.items()} == {
        "a.ogg": "completed", "b.ogg": "completed", "c.ogg": "completed", "broken.ogg": "refused"
    }  # fmt: skip
    refused = summary["broken.ogg"]
    assert refused["job_id"] is None
    assert refused["error"]["code"] in {"truncated_audio", "corrupt_audio"}
    assert summary["a.ogg"]["written"] == [str(tmp_path / "a.vtt")]
    # stderr names the file, the reason's code and its sentence.
    assert "1 of 4 recordings failed" in result.stderr
    assert f"broken.ogg: {refused['error']['code']}: {refused['error']['message']}" in result.stderr


def test_one_file_with_wait_prints_the_transcript_and_notes(
    voxflow: Voxflow, workers: dict[str, Worker]
) -> None:
    result = voxflow("submit", str(VOICE_NOTE), "-t", "summary", "--wait")

    assert result.exit_code == 0, result.output
    assert "dentist" in result.stdout.lower()
    assert "summary (local / extractive-v1)" in result.stdout
    # The words come on stderr as the live stream delivers them, the transcript on stdout.
    assert "dentist" in result.stderr.lower()


def test_notes_and_diarization_options_reach_the_job(
    voxflow: Voxflow, workers: dict[str, Worker], tmp_path: Path
) -> None:
    recordings(tmp_path, ["x.ogg"])
    out = tmp_path / "out"
    result = voxflow(
        "submit", str(tmp_path / "x.ogg"), "-t", "action_items", "--speakers", "1",
        "--language", "en", "--out", str(out), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.stdout)[0]["job_id"]
    shown = voxflow("show", job_id, "--json")
    assert json.loads(shown.stdout)["options"] | {"model": None} == {
        "tasks": ["action_items"], "language": "en", "diarize": True, "speakers": 1,
        "model": None,
    }  # fmt: skip
    notes = (out / "x.notes.md").read_text()
    assert notes.startswith("## action_items")
    assert "call the dentist" in notes.lower()
    assert (out / "x.txt").read_text().startswith("A: ")  # diarized: one speaker's turn


def test_no_recordings_or_a_missing_path_is_a_usage_error(voxflow: Voxflow, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no audio here")
    empty = voxflow("submit", str(tmp_path))
    assert empty.exit_code == 2
    assert "no_recordings" in empty.stderr
    missing = voxflow("submit", str(tmp_path / "nope.ogg"))
    assert missing.exit_code == 2
    assert "nope.ogg: no such file or folder" in missing.stderr
