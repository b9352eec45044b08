"""What `voxflow run` costs in memory, idle: the RSS of each process group it starts.

    uv run python -m scripts.benchmarks.stack_memory [--settle 20] [--output FILE]

Starts `voxflow run` on its own embedded servers (in a scratch data directory), waits until
the stack answers and then `--settle` seconds more (the workers load their models), and sums
the resident memory of each child and its descendants (a Celery worker's pool processes).
RSS counts pages a prefork child shares with its parent twice, so a worker's figure is an
upper bound. The embedded PostgreSQL and Redis are not counted: they are the same whatever
the stack runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import psutil
import typer

from scripts.benchmarks.harness import (
    MIB,
    ROOT,
    JsonOutput,
    console,
    isolated_env,
    machine,
    new_table,
    write_json,
)
from tests.support.served import free_port

# `voxflow run` names its children in stack.json's metrics URLs; these are their commands.
GROUPS = {
    "ingest_api": "ingest_api.app",
    "status_api": "status_api.app",
    "transcription_worker": "transcription_worker.tasks",
    "llm_worker": "llm_worker.tasks",
    "webhook_sender": "webhook_sender.tasks",
    "sweeper": "sweeper",
}


def group_of(process: psutil.Process) -> str:
    """The stack's name for a child of `voxflow run`, from its command line."""
    command = " ".join(process.cmdline())
    for name, marker in GROUPS.items():
        if marker in command:
            return name
    return "other"


def measure(data_dir: Path, settle: float) -> dict[str, tuple[int, float]]:
    """Start the stack, let it settle, and return each group's process count and RSS in MiB."""
    command = [sys.executable, "-m", "voxflow_cli.main", "run", "--data-dir", str(data_dir),
               "--ingest-port", str(free_port()), "--status-port", str(free_port()),
               "--metrics-port-base", "0"]  # fmt: skip
    with (data_dir.parent / "run.log").open("wb") as log:
        stack = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not (data_dir / "stack.json").exists():
            if stack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"voxflow run did not start; see {data_dir.parent / 'run.log'}")
            time.sleep(0.5)
        time.sleep(settle)
        groups: dict[str, tuple[int, float]] = {}
        for child in psutil.Process(stack.pid).children():
            name = group_of(child)
            if name == "other":
                continue  # the embedded servers
            family = [child, *child.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in family if p.is_running()) / MIB
            count, total = groups.get(name, (0, 0.0))
            groups[name] = (count + len(family), total + rss)
        return groups
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(60)


def main(
    settle: Annotated[float, typer.Option(help="Seconds to wait once the stack answers.")] = 20,
    output: JsonOutput = None,
) -> None:
    """Measure and print the idle stack's memory by process group."""
    with tempfile.TemporaryDirectory(prefix="vf-memory-") as scratch, isolated_env():
        groups = measure(Path(scratch) / "data", settle)
    total = sum(rss for _, rss in groups.values())
    table = new_table("voxflow run, idle: RSS by process group", ["group", "processes", "MiB",
                      "share"], left={"group"})  # fmt: skip
    for name, (count, rss) in sorted(groups.items(), key=lambda item: -item[1][1]):
        table.add_row(name, str(count), f"{rss:.0f}", f"{rss / total:.0%}")
    table.add_row("total", str(sum(c for c, _ in groups.values())), f"{total:.0f}", "100%")
    console.print(table)
    if output is not None:
        write_json(output, {"machine": machine(), "settle_seconds": settle,
                            "groups": {n: {"processes": c, "rss_mib": round(r, 1)}
                                       for n, (c, r) in groups.items()}})  # fmt: skip


if __name__ == "__main__":
    typer.run(main)
