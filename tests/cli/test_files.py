"""What `voxflow submit` picks from folders and globs, where it writes, and how search shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from voxflow_cli.common import age, clock
from voxflow_cli.files import Recording, collect, notes_path, plan_outputs
from voxflow_cli.search import MATCH_STYLE, highlight


def touch(root: Path, *names: str) -> None:
    """Empty files under `root` (the CLI only looks at names)."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()


def test_folders_are_searched_recursively_for_media_and_skip_hidden_files(
    tmp_path: Path,
) -> None:
    touch(tmp_path, "b.MP3", "a.ogg", "sub/c.m4a", "sub/clip.mov", "notes.txt", ".d.ogg",
          ".cache/e.ogg", "sub/.f.wav")  # fmt: skip
    found = collect([str(tmp_path)])
    assert [r.relative.as_posix() for r in found] == ["a.ogg", "b.MP3", "sub/c.m4a", "sub/clip.mov"]
    assert all(r.path == tmp_path / r.relative for r in found)


def test_files_are_taken_as_named_and_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path, "talk.ogg", "odd.dat", "sub/talk.ogg")
    found = collect([str(tmp_path / "odd.dat"), str(tmp_path), str(tmp_path / "talk.ogg")])
    assert [(r.path.name, r.relative.as_posix()) for r in found] == [
        ("odd.dat", "odd.dat"), ("talk.ogg", "sub/talk.ogg"), ("talk.ogg", "talk.ogg")
    ]  # fmt: skip


def test_globs_keep_the_folders_below_their_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path, "calls/2024/a.m4a", "calls/2025/b.m4a", "calls/2025/b.txt", "calls/c.ogg")
    monkeypatch.chdir(tmp_path)
    found = collect(["calls/**/*.m4a"])
    assert [r.relative.as_posix() for r in found] == ["2024/a.m4a", "2025/b.m4a"]
    everything = collect([str(tmp_path / "calls" / "*")])  # a matched folder is searched
    assert [r.relative.as_posix() for r in everything] == ["2024/a.m4a", "2025/b.m4a", "c.ogg"]
    assert collect(["calls/*.flac"]) == []
    with pytest.raises(FileNotFoundError):
        collect(["calls/missing.ogg"])


def test_outputs_keep_relative_folders_and_number_clashing_names(tmp_path: Path) -> None:
    recordings = [
        Recording(Path("in/a.ogg"), Path("a.ogg")),
        Recording(Path("in/a.mp3"), Path("a.mp3")),  # wants a.txt too
        Recording(Path("other/A.wav"), Path("A.wav")),  # and so does A.txt on macOS
        Recording(Path("in/x/a.ogg"), Path("x/a.ogg")),
    ]
    out = tmp_path / "out"
    assert plan_outputs(recordings, "txt", out) == [
        out / "a.txt", out / "a-2.txt", out / "A-3.txt", out / "x/a.txt"
    ]  # fmt: skip
    assert plan_outputs(recordings, "verbose_json", None) == [
        Path("in/a.json"), Path("in/a-2.json"), Path("other/A.json"), Path("in/x/a.json")
    ]  # fmt: skip
    assert notes_path(out / "a-2.srt", "srt") == out / "a-2.notes.md"


def test_snippets_highlight_marks_and_drop_other_markup() -> None:
    text = highlight("call the <mark>dentist</mark> &amp; <b>pay</b> the <MARK>bill</MARK>")
    assert text.plain == "call the dentist & pay the bill"
    marked = [text.plain[span.start : span.end] for span in text.spans if span.style == MATCH_STYLE]
    assert marked == ["dentist", "bill"]
    assert highlight("[red]not markup[/]").plain == "[red]not markup[/]"


def test_ages_and_lengths_read_at_a_glance() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert age("2026-12-06T11:59:30+00:00", now) == "30s"
    assert age("2026-12-06T11:47:59+00:00", now) == "12m"
    assert age("2026-12-06T09:10:00+00:00", now) == "2h"
    assert age("2026-12-01T12:00:00Z", now) == "5d"
    assert age(None, now) == "-"
    assert (clock(13.3), clock(3725), clock(None)) == ("0:13", "1:02:05", "-")
