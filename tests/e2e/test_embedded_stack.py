"""The embedded default, as a newcomer meets it: `voxflow demo` with no configuration.

Always runs (also when the rest of the suite uses this machine's servers), so both ways of
running Voxflow are exercised: here PostgreSQL and Redis come from the PyPI wheels.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT, SAMPLES
from tests.support.metrics import scrape, value

pytestmark = pytest.mark.e2e


def test_demo_runs_on_embedded_servers_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXFLOW_")}
    # A short path: Unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="vf-demo-") as tmp:
        data_dir = Path(tmp) / "data"
        result = subprocess.run(
            [sys.executable, "-m", "voxflow_cli.main", "demo", str(SAMPLES / "voice_note.ogg"),
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_metrics(urls: dict[str, str]) -> None:
    """Every process group of the stack serves /metrics, each with its part of the job."""
    assert set(urls) == {"ingest_api", "status_api", "transcription_worker", "llm_worker",
                         "webhook_sender", "sweeper"}  # fmt: skip
    found = {name: scrape(url) for name, url in urls.items()}
    upload = {"service": "ingest_api", "route": "/v1/jobs", "method": "POST", "status": "202"}
    assert value(found["ingest_api"], "voxflow_http_requests_total", **upload) == 1
    assert value(found["ingest_api"], "voxflow_jobs_created_total") == 1
    transcribed = value(found["transcription_worker"], "voxflow_stage_duration_seconds_count",
                        stage="transcribing", outcome="done")  # fmt: skip
    assert transcribed == 1
    assert value(found["llm_worker"], "voxflow_jobs_completed_total") == 1
    assert value(found["webhook_sender"], "voxflow_worker_processes", service="webhook_sender") == 1
    assert value(found["sweeper"], "voxflow_collector_up", source="database") == 1
    assert value(found["sweeper"], "voxflow_jobs_waiting", status="queued") == 0


def test_run_serves_cli_clients_and_stops_cleanly_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXFLOW_")}
    with tempfile.TemporaryDirectory(prefix="vf-run-") as tmp:
        data_dir = Path(tmp) / "data"
        log = Path(tmp) / "run.log"
        ingest, status = _free_port(), _free_port()
        voxflow = [sys.executable, "-m", "voxflow_cli.main"]
        with log.open("wb") as out:
            stack = subprocess.Popen(
                [*voxflow, "run", "--data-dir", str(data_dir), "--ingest-port", str(ingest),
                 "--status-port", str(status), "--metrics-port-base", "0"],
                cwd=ROOT, env=env, stdout=out, stderr=out,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (data_dir / "stack.json").exists():
                assert stack.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            info = json.loads((data_dir / "stack.json").read_text())
            assert httpx.get(f"{info['status_url']}/readyz").status_code == 200

            # The CLI finds the running stack's database through DATA_DIR/stack.json.
            key = subprocess.run(
                [*voxflow, "keys", "create", "--tenant", "cli", "--data-dir", str(data_dir)],
                env=env, capture_output=True, text=True, check=True, timeout=60,
            ).stdout.strip()  # fmt: skip
            assert key.startswith("vf_")
            submitted = subprocess.run(
                [*voxflow, "submit", str(SAMPLES / "voice_note.ogg"), "-t", "action_items",
                 "--wait", "--api-key", key, "--ingest-url", info["ingest_url"],
                 "--status-url", info["status_url"]],
                env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=180,
                check=False,
            )  # fmt: skip
            assert submitted.returncode == 0, submitted.stdout + submitted.stderr
            assert "call the dentist" in submitted.stdout.lower()
            assert "action_items (local / extractive-v1)" in submitted.stdout
            # --wait follows the job's live stream: the words come on stderr as they arrive.
            assert "dentist" in submitted.stderr.lower(), submitted.stderr
            check_metrics(info["metrics_urls"])
        finally:
            stack.send_signal(signal.SIGINT)
            code = stack.wait(90)
        assert code == 0, log.read_text()
        assert not (data_dir / "stack.json").exists()
        leftovers = [
            p.info["cmdline"]
            for p in psutil.process_iter(attrs=["cmdline"])
            if p.info["cmdline"] and any(str(data_dir) in part for part in p.info["cmdline"])
        ]
        assert leftovers == [], leftovers
