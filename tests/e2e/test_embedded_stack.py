"""The embedded default, as a newcomer meets it: `voxflow demo` with no configuration.

Always runs (also when the rest of the suite uses this machine's servers), so both ways of
running Voxflow are exercised: here PostgreSQL and Redis come from the PyPI wheels.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.e2e


def test_demo_runs_on_embedded_servers_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXFLOW_")}
    # A short path: Unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="vf-demo-") as tmp:
        data_dir = Path(tmp) / "data"
        result = subprocess.run(
            [sys.executable, "-m", "voxflow.cli.main", "demo", str(SAMPLES / "voice_note.ogg"),
             "--data-dir", str(data_dir)],
            cwd=ROOT, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
            timeout=240, check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "dentist" in result.stdout.lower()
        assert "summary (local / extractive-v1)" in result.stdout
        assert "upload to completed" in result.stdout
        assert (data_dir / "postgres" / "PG_VERSION").is_file()
        assert (data_dir / "redis" / "appendonly.aof").exists()  # Redis ran with AOF on
        assert not (data_dir / "stack.json").exists()
        leftovers = [
            p.info["cmdline"]
            for p in psutil.process_iter(attrs=["cmdline"])
            if p.info["cmdline"] and any(str(data_dir) in part for part in p.info["cmdline"])
        ]
        assert leftovers == [], leftovers
