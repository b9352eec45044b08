"""The throughput benchmark's targets and reports: the table, the JSON and markdown files."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.benchmarks.corpus import CorpusSpec
from scripts.benchmarks.harness import (
    MIB,
    console,
    git_revision,
    loadavg,
    machine,
    new_table,
    write_json,
)
from scripts.benchmarks.throughput.phases import (
    RAW_BATCHED,
    RAW_BATCHED_AGAIN,
    VOXFLOW,
    VOXFLOW_MB_OFF,
    VOXFLOW_MB_ON,
    Phase,
    mib,
)

# Targets (from the "Transcription engine" issue; see the package's documentation).
LONG_TARGET = 0.9
NOTES_OFF_TARGET = 1.0
NOTES_ON_TARGET = 2.0
RSS_MARGIN_BYTES = 150 * MIB


def _find(phases: list[Phase], workload: str, mode: str) -> Phase | None:
    return next((p for p in phases if p.workload == workload and p.mode == mode), None)


def baseline(phases: list[Phase], workload: str) -> float | None:
    """Raw batched throughput on a workload: the mean of its runs before and after Voxflow's.

    This machine's speed drifts by up to 10 % over a run; timing the library on both sides
    of Voxflow's phases keeps that drift out of the ratios (and the two rows show it).
    """
    runs = [p.throughput for p in phases
            if p.workload == workload and p.mode in (RAW_BATCHED, RAW_BATCHED_AGAIN)]  # fmt: skip
    return sum(runs) / len(runs) if runs else None


def evaluate(phases: list[Phase]) -> dict[int, list[dict[str, Any]]]:
    """Targets per phase (by index): what each must reach, its value and whether it did."""
    checks: dict[int, list[dict[str, Any]]] = {}
    for index, phase in enumerate(phases):
        base = _find(phases, phase.workload, RAW_BATCHED)
        raw = baseline(phases, phase.workload)
        if base is None or raw is None or phase.mode.startswith("raw"):
            continue
        found: list[dict[str, Any]] = []
        ratio = phase.throughput / raw
        minimum = {
            ("long", VOXFLOW): LONG_TARGET,
            ("notes", VOXFLOW_MB_OFF): NOTES_OFF_TARGET,
            ("notes", VOXFLOW_MB_ON): NOTES_ON_TARGET,
        }.get((phase.workload, phase.mode))
        if minimum is not None:
            found.append(
                {"kind": "throughput", "target": f"throughput >= {minimum:g}x raw batched",
                 "ratio": round(ratio, 4), "minimum": minimum, "passed": ratio >= minimum}
            )  # fmt: skip
            # Same references on both sides: compare edit counts (WER x reference words).
            extra = round(phase.word_errors - base.word_errors)
            found.append(
                {"kind": "wer", "target": "WER <= raw batched", "wer": round(phase.wer, 5),
                 "raw_batched_wer": round(base.wer, 5), "extra_word_errors": extra,
                 "reference_words": phase.reference_words, "passed": extra <= 0}
            )  # fmt: skip
        if phase.workload.startswith("memory") and phase.peak_rss_bytes and base.peak_rss_bytes:
            over = phase.peak_rss_bytes - base.peak_rss_bytes
            found.append(
                {"kind": "memory", "target": "peak RSS <= raw batched + 150 MiB",
                 "over_raw_mib": round(over / MIB, 1), "passed": over <= RSS_MARGIN_BYTES}
            )  # fmt: skip
        checks[index] = found
    return checks


def _target_text(checks: list[dict[str, Any]]) -> str:
    """Short verdicts with their values: `0.896x ≥ 0.9: FAIL, WER +2 errors: FAIL`."""
    parts = []
    for check in checks:
        verdict = "pass" if check["passed"] else "FAIL"
        if check["kind"] == "memory":
            parts.append(f"RSS {check['over_raw_mib']:+.0f} MiB ≤ +150: {verdict}")
        elif check["kind"] == "wer":
            parts.append(f"WER {check['extra_word_errors']:+d} errors: {verdict}")
        else:
            parts.append(f"{check['ratio']:.3f}x ≥ {check['minimum']:g}: {verdict}")
    return ", ".join(parts)


COLUMNS = ("Workload", "Mode", "Audio s", "Wall s", "Throughput", "vs raw batched", "WER",
           "Peak RSS MiB", "Peak anon MiB", "Target")  # fmt: skip


def table_rows(phases: list[Phase], checks: dict[int, list[dict[str, Any]]]) -> list[list[str]]:
    """The report's rows, as text."""
    rows = []
    for index, phase in enumerate(phases):
        raw = baseline(phases, phase.workload)
        ratio = f"{phase.throughput / raw:.2f}x" if raw else "-"
        rows.append(
            [
                phase.workload,
                phase.mode,
                f"{phase.audio_seconds:.0f}",
                f"{phase.wall_seconds:.1f}",
                f"{phase.throughput:.1f}x",
                ratio,
                f"{phase.wer:.3f}",
                mib(phase.peak_rss_bytes),
                mib(phase.peak_anon_bytes),
                _target_text(checks.get(index, [])),
            ]
        )
    return rows


LEGEND = (
    "Throughput = audio s / wall s (x real time). raw: one process, model loaded once, "
    "files one at a time (wall = sum of transcription times); raw batched runs before and "
    'after Voxflow\'s phases, and "vs raw batched" is against the mean of the two. voxflow: '
    "all files uploaded at once, wall = first upload -> last job finished. WER: normalised, "
    'over all words of the workload; target "WER +n errors" counts word errors beyond raw '
    "batched's on the same references. Peak RSS: kernel high-water mark of the raw process "
    "/ the worker's pool process; peak anon: largest anonymous RSS sampled every 0.1 s "
    "(file-backed pages, such as a memory-mapped audio file, left out)."
)


def markdown(rows: list[list[str]], header: str) -> str:
    """A markdown table of the rows, under a one-line header and over the legend."""
    lines = [
        header,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---"] * len(COLUMNS)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", LEGEND]
    return "\n".join(lines) + "\n"


def print_report(rows: list[list[str]], phases: list[Phase]) -> None:
    """The rich table and notes on what the figures mean."""
    table = new_table(
        "Throughput: Voxflow vs faster-whisper called directly",
        COLUMNS,
        left=("Workload", "Mode", "Target"),
    )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for phase in phases:
        if phase.mode == VOXFLOW_MB_ON:
            engaged = phase.details["jobs_in_multi_job_passes"] > 0
            if not phase.details["settings"]["microbatch_settings_exist"]:
                console.print("[yellow]micro-batching settings do not exist: 'on' ran like 'off'")
            elif not engaged:
                console.print(
                    "[yellow]micro-batching was asked for but no jobs were transcribed together "
                    f"({phase.details['passes']} passes for {len(phase.files)} jobs)"
                )
            else:
                console.print(
                    f"micro-batching: {phase.details['passes']} passes for {len(phase.files)} "
                    f"jobs (largest {phase.details['largest_pass']})"
                )
    console.print(f"[dim]{LEGEND}")


@dataclass
class Reports:
    """Writes the JSON and markdown reports (after every phase, and at the end)."""

    json_path: Path
    markdown_path: Path
    spec: CorpusSpec
    corpus_dir: Path
    corpus_seconds: float
    started: float = field(default_factory=time.perf_counter)
    load_before: list[float] = field(default_factory=loadavg)
    machine: dict[str, Any] = field(default_factory=machine)
    git: dict[str, Any] = field(default_factory=git_revision)

    def write(self, phases: list[Phase], *, complete: bool) -> list[list[str]]:
        """Write both files; returns the table rows."""
        load_after = loadavg()
        elapsed = time.perf_counter() - self.started
        checks = evaluate(phases)
        rows = table_rows(phases, checks)
        today = datetime.now(UTC).date().isoformat()
        command = " ".join(["uv run python -m scripts.benchmarks.throughput", *sys.argv[1:]])
        header = (
            f"`{command}` on {today}, {os.cpu_count()} CPU cores, tiny.en on CPU (int8); "
            f"load average {self.load_before[0]:.1f} before, {load_after[0]:.1f} after; the "
            f"phases took {elapsed / 60:.0f} min."
        )
        if not complete:
            header += " **Incomplete: the run stopped early.**"
        document = {
            "complete": complete,
            "command": sys.argv,
            "date": today,
            "machine": self.machine,
            "git": self.git,
            "corpus": dataclasses.asdict(self.spec) | {"dir": str(self.corpus_dir)},
            "wer_method": "normalised (lower case, no punctuation); jiwer.wer over all "
            "reference words of the workload at once (mean of per-file WERs: mean_file_wer)",
            "load_average": {"before": self.load_before, "after": load_after},
            "elapsed_seconds": elapsed,  # the phases, without generating the corpus
            "corpus_seconds": self.corpus_seconds,
            "phases": [
                dataclasses.asdict(p) | {"throughput": p.throughput, "targets": checks.get(i, [])}
                for i, p in enumerate(phases)
            ],
            "all_targets_met": all(c["passed"] for cs in checks.values() for c in cs),
        }
        write_json(self.json_path, document)
        self.markdown_path.parent.mkdir(parents=True, exist_ok=True)
        self.markdown_path.write_text(markdown(rows, header))
        return rows
