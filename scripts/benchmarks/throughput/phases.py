"""What the throughput benchmark measures: a phase (one mode on one workload) and its files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scripts.benchmarks.corpus import Recording
from scripts.benchmarks.harness import MIB, loadavg, normalise

RAW_SEQUENTIAL = "raw sequential"
RAW_BATCHED = "raw batched"
RAW_BATCHED_AGAIN = "raw batched, again"
RAW_MICROBATCH = "raw micro-batched"
VOXFLOW = "voxflow"
VOXFLOW_MB_OFF = "voxflow, micro-batching off"
VOXFLOW_MB_ON = "voxflow, micro-batching on"


@dataclass
class FileResult:
    """One file of a phase: its time (raw only), reference and transcript, and WER."""

    name: str
    audio_seconds: float
    wer: float
    hypothesis: str
    wall_seconds: float | None = None


@dataclass
class Phase:
    """One mode on one workload."""

    workload: str
    mode: str
    audio_seconds: float
    wall_seconds: float
    wer: float
    mean_file_wer: float
    peak_rss_bytes: int | None  # high-water mark
    peak_anon_bytes: int | None  # sampled anonymous RSS
    reference_words: int
    files: list[FileResult]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def word_errors(self) -> float:
        """Substitutions, deletions and insertions over the workload."""
        return self.wer * self.reference_words

    @property
    def throughput(self) -> float:
        """Audio seconds per wall second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else float("nan")


def word_error_rates(references: list[str], hypotheses: list[str]) -> tuple[float, list[float]]:
    """Corpus WER (all words at once) and each pair's WER, after normalising both sides."""
    import jiwer

    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    per_file = [float(jiwer.wer(r, h)) for r, h in zip(refs, hyps, strict=True)]
    return float(jiwer.wer(refs, hyps)), per_file


def make_phase(
    workload: str,
    mode: str,
    recordings: list[Recording],
    texts: list[str],
    wall_seconds: float,
    peak_rss: int | None,
    peak_anon: int | None,
    walls: list[float] | None = None,
    details: dict[str, Any] | None = None,
) -> Phase:
    """A phase from what it transcribed, scored against the recordings' reference texts."""
    wer, per_file = word_error_rates([r.text for r in recordings], texts)
    files = [
        FileResult(r.name, r.duration, w, t, walls[i] if walls else None)
        for i, (r, w, t) in enumerate(zip(recordings, per_file, texts, strict=True))
    ]
    return Phase(
        workload=workload,
        mode=mode,
        audio_seconds=sum(r.duration for r in recordings),
        wall_seconds=wall_seconds,
        wer=wer,
        mean_file_wer=sum(per_file) / len(per_file),
        peak_rss_bytes=peak_rss,
        peak_anon_bytes=peak_anon,
        reference_words=sum(len(normalise(r.text).split()) for r in recordings),
        files=files,
        details={**(details or {}), "load_average_at_end": loadavg()},
    )


def mib(value: int | None) -> str:
    """Bytes as whole MiB, or `-`."""
    return "-" if value is None else f"{value / MIB:.0f}"


def contention_text(phase: Phase) -> str:
    """CPU seconds other processes and the hypervisor took during a phase."""
    machine = phase.details.get("machine_cpu_seconds") or {}
    largest = ", ".join(f"{p['name']} {p['cpu']}" for p in machine.get("largest", [])[:3])
    return (
        f"other processes {machine.get('others')} CPU s ({largest}), "
        f"stolen {machine.get('steal')} s"
    )
