"""How a process finds its metrics group: each case is a fresh Python process, as in production."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

IMPORT = "import os, voxflow.observability.metrics; print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new process group, without the suite's metrics directory."""
    base = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run(
        [sys.executable, "-c", code], env=base | env, capture_output=True, text=True,
        timeout=60, check=False, start_new_session=True,
    )  # fmt: skip


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_new_group_clears_what_dead_processes_left(tmp_path: Path) -> None:
    stale = tmp_path / f"counter_{dead_pid()}.db"
    stale.write_bytes(b"")
    done = run(IMPORT, VOXFLOW_METRICS_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path)
    assert not stale.exists()


def test_joining_a_running_group_keeps_its_dead_members_counts(tmp_path: Path) -> None:
    live = tmp_path / f"counter_{os.getpid()}.db"  # this test process plays the live member
    dead = tmp_path / f"counter_{dead_pid()}.db"
    live.write_bytes(b"")
    dead.write_bytes(b"")
    done = run(IMPORT, VOXFLOW_METRICS_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert live.exists()
    assert dead.exists()


def test_default_directory_is_per_process_group_and_dead_groups_go(tmp_path: Path) -> None:
    host = socket.gethostname()
    gone = tmp_path / "metrics" / f"{host}-{dead_pid()}"
    other_host = tmp_path / "metrics" / "elsewhere-1"
    gone.mkdir(parents=True)
    other_host.mkdir()
    code = f"{IMPORT}; print(os.getpgrp())"
    done = run(code, VOXFLOW_DATA_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    folder, pgid = done.stdout.split()
    assert Path(folder) == tmp_path.resolve() / "metrics" / f"{host}-{pgid}"
    assert not gone.exists()
    assert other_host.exists()  # another host's groups are not ours to judge


def test_prometheus_client_imported_first_fails_loudly(tmp_path: Path) -> None:
    done = run("import prometheus_client; " + IMPORT, VOXFLOW_METRICS_DIR=str(tmp_path))
    assert done.returncode != 0
    assert "prometheus_client was imported before" in done.stderr
