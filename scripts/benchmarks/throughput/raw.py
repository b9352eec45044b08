"""The raw phases: faster-whisper called directly, in a fresh raw_whisper.py process each."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from scripts.benchmarks.corpus import Recording
from scripts.benchmarks.harness import ROOT, VOICE_NOTE, module_command, progress
from scripts.benchmarks.throughput.phases import (
    RAW_MICROBATCH,
    RAW_SEQUENTIAL,
    Phase,
    contention_text,
    make_phase,
    mib,
)
from scripts.benchmarks.throughput.processes import Contention, RssSampler


def run_raw(workload: str, mode: str, recordings: list[Recording]) -> Phase:
    """Transcribe the files one at a time in a fresh raw_whisper.py process."""
    label = {RAW_SEQUENTIAL: "sequential", RAW_MICROBATCH: "microbatch"}.get(mode, "batched")
    progress.print(f"[bold]{workload}: {mode}[/] ({len(recordings)} files)")
    with tempfile.TemporaryDirectory(prefix="vf-raw-") as tmp:
        out = Path(tmp) / "raw.json"
        command = module_command(
            "raw_whisper", "--mode", label, "--out", str(out), "--warmup", str(VOICE_NOTE),
            *(str(r.path) for r in recordings),
        )  # fmt: skip
        began = time.perf_counter()
        contention = Contention()
        child = subprocess.Popen(command, cwd=ROOT)
        with RssSampler(lambda: [child.pid]) as sampler:
            code = child.wait()
        elapsed = time.perf_counter() - began
        if code != 0:
            raise RuntimeError(f"raw_whisper.py --mode {label} exited with status {code}")
        result = json.loads(out.read_text())
    walls = [float(f["wall_seconds"]) for f in result["files"]]
    phase = make_phase(
        workload, mode, recordings, [f["text"] for f in result["files"]], sum(walls),
        int(result["peak_rss_bytes"]), sampler.anon_peak([child.pid]), walls,
        {
            "model": result["model"],
            "device": result["device"],
            "decode_options": result["decode_options"],
            "model_load_seconds": result["load_seconds"],
            "warmup_seconds": result["warmup_seconds"],
            "process_seconds": elapsed,
            "cpu_seconds": result["cpu_seconds"],
            "sampled_peaks_bytes": sampler.peaks.get(child.pid),
            "machine_cpu_seconds": contention.since({child.pid}),
            "whisper_audio_seconds": sum(float(f["audio_seconds"]) for f in result["files"]),
        },
    )  # fmt: skip
    progress.print(
        f"[dim]  {phase.audio_seconds:.0f}s of audio in {phase.wall_seconds:.1f}s: "
        f"{phase.throughput:.1f}x real time, WER {phase.wer:.3f}, "
        f"peak RSS {mib(phase.peak_rss_bytes)} MiB (anon {mib(phase.peak_anon_bytes)}); "
        f"{contention_text(phase)}"
    )
    return phase
