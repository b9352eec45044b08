"""Helpers shared by the benchmarks: an isolated embedded stack, machine facts, consoles."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from voxflow.cli.client import VoxflowClient
    from voxflow.cli.stack import Stack, StackInfo

ROOT = Path(__file__).resolve().parents[2]
# The benchmarks always run their own embedded servers and storage, whatever the shell names.
ISOLATED_ENV = (
    "VOXFLOW_DATABASE_URL",
    "VOXFLOW_REDIS_URL",
    "VOXFLOW_DATA_DIR",
    "VOXFLOW_STORAGE_ROOT",
    "VOXFLOW_PUBLIC_STATUS_URL",
)

# Wide enough for the tables when the output is a file or a pipe (rich assumes 80 columns).
console = Console() if sys.stdout.isatty() else Console(width=140)
progress = Console(stderr=True)


def normalise(text: str) -> str:
    """Lower case, no punctuation (apostrophes dropped inside words), single spaces."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", "")
    return " ".join(text.split())


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def isolated_env(extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """Hide the shell's server and storage settings; set `extra` variables meanwhile."""
    names = set(ISOLATED_ENV) | set(extra or {})
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    os.environ.update(extra or {})
    try:
        yield
    finally:
        for name in extra or {}:
            os.environ.pop(name, None)
        os.environ.update(saved)


def print_log_tails(log_dir: Path, lines: int = 15) -> None:
    """Show the end of every service log (after a failure)."""
    for log in sorted(log_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        progress.print(f"[red]--- last lines of {log.name}")
        progress.print("\n".join(tail), markup=False, highlight=False)


@dataclass
class RunningStack:
    """An embedded stack started for a benchmark, with a client holding a fresh API key."""

    stack: Stack
    info: StackInfo
    client: VoxflowClient
    sessions: sessionmaker[Session]
    startup_seconds: float
    log_dir: Path


@contextmanager
def started_stack(
    log_dir: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    purpose: str = "benchmark",
) -> Iterator[RunningStack]:
    """An embedded stack in a temporary data directory on free ports.

    `env` is set while the stack starts (its services inherit it) and removed afterwards.
    """
    from voxflow.apikeys import issue_key
    from voxflow.cli.client import VoxflowClient
    from voxflow.cli.stack import Stack
    from voxflow.db import make_engine, make_sessionmaker, session_scope

    with isolated_env(env), tempfile.TemporaryDirectory(prefix="vf-bench-") as tmp:
        logs = log_dir or Path(tmp) / "logs"
        stack = Stack(
            data_dir=Path(tmp) / "data",
            ingest_port=free_port(),
            status_port=free_port(),
            log_dir=logs,  # keep the services' output out of the report
        )
        progress.print("[dim]pipeline: starting the embedded stack")
        started = time.perf_counter()
        try:
            info = stack.start()
        except BaseException:
            print_log_tails(logs)
            raise
        startup = time.perf_counter() - started
        engine = make_engine(info.database_url, pool_size=1)
        client: VoxflowClient | None = None
        try:
            sessions = make_sessionmaker(engine)
            with session_scope(sessions) as session:
                key = issue_key(session, "bench", purpose).secret
            client = VoxflowClient(info.ingest_url, info.status_url, key)
            yield RunningStack(stack, info, client, sessions, startup, logs)
        except BaseException:
            print_log_tails(logs)
            raise
        finally:
            if client is not None:
                client.close()
            engine.dispose()
            stack.stop()


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def git_revision() -> dict[str, Any]:
    """The checked-out commit and whether the tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def machine() -> dict[str, Any]:
    """Versions, CPU count and the transcription settings in effect."""
    import ctranslate2
    import faster_whisper

    from voxflow.settings import TranscriptionSettings

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "cuda_devices": ctranslate2.get_cuda_device_count(),
        "transcription_settings": TranscriptionSettings().model_dump(mode="json"),
    }
