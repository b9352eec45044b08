"""The benchmarks' harness: what several of them share.

Paths and constants, the consoles, text normalisation for WER, percentiles, rich tables, JSON
results, machine facts, an isolated embedded stack (`started_stack`), migrated embedded
servers with the APIs run as they are deployed (`migrated_servers`, `apis`), the worker's
Whisper engine and model, and the command-line options several benchmarks take.

Every benchmark runs from the repository root as a module (`uv run python -m
scripts.benchmarks.NAME`). raw_whisper.py and the diarization benchmark's `--hour-only`
child import nothing from here: they measure their own peak memory (rich alone is ~2 MB).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tests.support.served import free_port

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from voxflow_cli.client import VoxflowClient
    from voxflow_cli.stack import Stack, StackInfo

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
VOICE_NOTE = SAMPLES / "voice_note.ogg"
RESULTS = ROOT / ".voxflow" / "bench"  # where the figures go by default
SAMPLE_RATE = 16_000  # what Whisper hears: every decoding benchmark decodes to it
MIB = 1024 * 1024
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


# --- text, figures, tables, files ------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower case, no punctuation (apostrophes dropped inside words), single spaces."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", "")
    return " ".join(text.split())


def plain_words(text: str) -> list[str]:
    """Lower-cased words, punctuation removed but apostrophes kept (how the decoding
    benchmarks, modes, windows, mates and packing, score WER)."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


PUNCTUATION = re.compile(r"[.,?!]")


def punctuation_kept(references: list[str], hypotheses: list[str]) -> float:
    """The hypotheses' punctuation marks over the references' (WER ignores punctuation;
    readers and the note-taking LLMs do not)."""
    wanted = sum(len(PUNCTUATION.findall(text)) for text in references) or 1
    return sum(len(PUNCTUATION.findall(text)) for text in hypotheses) / wanted


def percentile(values: Iterable[float], share: float, *, nearest: bool = False) -> float:
    """The value `share` of the way through the sorted values: at that index rounded down, or
    rounded to the nearest with `nearest` (the search benchmark's way)."""
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    return ordered[min(len(ordered) - 1, round(position))] if nearest else ordered[int(position)]


def new_table(title: str, columns: Iterable[str], *, left: Collection[str] = ()) -> Table:
    """A rich table with these columns, right-aligned but for those named in `left`."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


def write_json(path: Path, document: Any) -> None:
    """`document` as indented JSON at `path` (its folder made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# --- command-line options ---------------------------------------------------------------------

ModelOption = Annotated[str, typer.Option(help="Model name or CTranslate2 directory.")]
DeviceOption = Annotated[str, typer.Option(help="cpu or cuda.")]
ComputeTypeOption = Annotated[str, typer.Option(help="CTranslate2 compute type.")]
JsonOutput = Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")]
FiguresPath = Annotated[Path, typer.Option(help="Where to write the figures.")]


def int_list(text: str) -> list[int]:
    """`4,16` as [4, 16] (empty items left out)."""
    return [int(item) for item in text.split(",") if item]


def number_pairs(text: str) -> list[tuple[float, float]]:
    """`5:40,8:40` as [(5.0, 40.0), (8.0, 40.0)]."""
    return [(float(a), float(b)) for a, b in (item.split(":") for item in text.split(","))]


# --- processes, servers and stacks ----------------------------------------------------------


def module_command(name: str, *args: str) -> list[str]:
    """The command running benchmark module `name` in a fresh Python process: start it with
    `cwd=ROOT`, where the `scripts` package is found."""
    return [sys.executable, "-m", f"scripts.benchmarks.{name}", *args]


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
    from voxflow.db import make_engine, make_sessionmaker, session_scope
    from voxflow_cli.client import VoxflowClient
    from voxflow_cli.stack import Stack

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


@dataclass
class Servers:
    """Embedded PostgreSQL (migrated) and Redis in a temporary folder, for the benchmarks
    that run the APIs themselves (`apis`)."""

    folder: Path
    database_url: str
    redis_url: str
    pgdata: Path  # PostgreSQL's data directory: its postmaster.pid names the server process
    logs: Path  # where the API processes write

    def env(self) -> dict[str, str]:
        """What a Voxflow process needs to run on these servers."""
        return {
            "VOXFLOW_DATABASE_URL": self.database_url,
            "VOXFLOW_REDIS_URL": self.redis_url,
            "VOXFLOW_DATA_DIR": str(self.folder / "data"),
            "VOXFLOW_STORAGE_ROOT": str(self.folder / "storage"),
        }


@contextmanager
def migrated_servers(prefix: str) -> Iterator[Servers]:
    """Embedded PostgreSQL and Redis in a new temporary folder, the migrations applied."""
    from voxflow.embedded import EmbeddedServers
    from voxflow.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp)
        embedded = EmbeddedServers(folder / "data")
        urls = embedded.start()
        try:
            upgrade(urls.database_url)
            logs = folder / "logs"
            logs.mkdir()
            yield Servers(folder, urls.database_url, urls.redis_url, embedded.postgres.pgdata,
                          logs)  # fmt: skip
        finally:
            embedded.stop()


CURRENT = "current"


@dataclass
class Variant:
    """One version of the code under test: this checkout, or a commit in a worktree."""

    name: str
    source: Path  # the repository root whose `shared/` and `services/*` are imported


@dataclass
class Running:
    """Both APIs of one variant, started."""

    status_url: str
    ingest_url: str
    status_pid: int
    ingest_pid: int
    processes: list[subprocess.Popen[bytes]]


@contextmanager
def apis(variant: Variant, env: dict[str, str], log_dir: Path) -> Iterator[Running]:
    """Start the variant's two APIs (its sources first on the import path) and wait for them.

    Each is `uvicorn status_api.app:app` / `uvicorn ingest_api.app:app`, one process, as
    `voxflow run` and the images start them.
    """
    source = variant.source
    paths = [
        source / "shared",
        source / "services" / "ingest_api",
        source / "services" / "status_api",
    ]
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    ports = {"status_api": free_port(), "ingest_api": free_port()}
    child_env["VOXFLOW_PUBLIC_STATUS_URL"] = f"http://127.0.0.1:{ports['status_api']}"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, port in ports.items():
            log = (log_dir / f"{variant.name}-{name}.log").open("ab")
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", f"{name}.app:app", "--host", "127.0.0.1",
                 "--port", str(port)],
                env=child_env, stdout=log, stderr=subprocess.STDOUT, cwd=source,
            )  # fmt: skip
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        _wait_ready(list(urls.values()), processes)
        yield Running(
            status_url=urls["status_api"], ingest_url=urls["ingest_api"],
            status_pid=processes["status_api"].pid, ingest_pid=processes["ingest_api"].pid,
            processes=list(processes.values()),
        )  # fmt: skip
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            if process.poll() is None:
                process.kill()


def _wait_ready(urls: list[str], processes: dict[str, subprocess.Popen[bytes]]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    for url in urls:
        while True:
            if any(p.poll() is not None for p in processes.values()):
                raise SystemExit(f"an API exited at startup; see its log ({url})")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not become ready in 60 s")
            time.sleep(0.2)


# --- machine facts ----------------------------------------------------------------------------


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

    from transcription_worker.settings import TranscriptionSettings

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "cuda_devices": ctranslate2.get_cuda_device_count(),
        "transcription_settings": TranscriptionSettings().model_dump(mode="json"),
    }


def runtime(model: str, compute_type: str, device: str) -> str:
    """`(python 3.11.2, tiny.en int8 on cpu)`: the last line of a decoding benchmark."""
    return f"(python {sys.version.split()[0]}, {model} {compute_type} on {device})"


# --- Whisper --------------------------------------------------------------------------------


def decoded(paths: Iterable[Path]) -> list[Any]:
    """Each file decoded to 16 kHz mono samples (as the worker hands audio to its engine)."""
    from faster_whisper import decode_audio

    return [decode_audio(str(path), sampling_rate=SAMPLE_RATE) for path in paths]


def worker_engine() -> tuple[Any, Any]:
    """The transcription worker's `WhisperEngine` with its model loaded, and its settings
    (from the environment, as the worker reads them)."""
    from transcription_worker.engine import WhisperEngine
    from transcription_worker.settings import TranscriptionWorkerSettings

    settings = TranscriptionWorkerSettings()
    engine = WhisperEngine(settings, settings)
    engine.preload()
    return engine, settings


def whisper_model(model: str, device: str, compute_type: str) -> Any:
    """faster-whisper's `WhisperModel`: a model name (the worker's copy of it) or a folder."""
    from faster_whisper import WhisperModel

    from transcription_worker.engine import resolve_model

    return WhisperModel(resolve_model(model), device=device, compute_type=compute_type)


def no_progress(_fraction: float) -> None:
    """An engine progress callback that ignores the progress."""
