"""`voxflow run`: the whole platform on one machine, as child processes.

Starts PostgreSQL and Redis (embedded, unless VOXFLOW_DATABASE_URL and VOXFLOW_REDIS_URL name
external ones), migrates, then runs both APIs, both workers and the sweeper with the same
commands a deployment uses. Stops everything cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from voxflow.embedded import EmbeddedServers
from voxflow.migrate import upgrade

log = logging.getLogger(__name__)

STATE_FILE = "stack.json"
# Ports of the /metrics endpoints that are not an API's, above Stack.metrics_port_base.
METRICS_PORT_OFFSETS = {
    "transcription_worker": 1,
    "llm_worker": 2,
    "sweeper": 3,
    "webhook_sender": 4,
}
# Celery's soft shutdown on SIGTERM: running jobs get VOXFLOW_SOFT_SHUTDOWN_SECONDS to finish,
# then go back to the queue (see voxflow.worker.shutdown).
WORKER_ENV = {"REMAP_SIGTERM": "SIGQUIT"}
CELERY_WORKERS = ("transcription_worker", "llm_worker", "webhook_sender")


@dataclass(frozen=True)
class StackInfo:
    """Where a running stack can be reached; written to DATA_DIR/stack.json."""

    database_url: str
    redis_url: str
    ingest_url: str
    status_url: str
    pid: int
    # Prometheus targets: service name -> URL of its process group's /metrics.
    metrics_urls: dict[str, str] = field(default_factory=dict)


def _console_origins(host: str, port: int) -> list[str]:
    """Where a browser may open the console: the status API's address, and on loopback both
    names of this machine (a page at localhost is another origin than one at 127.0.0.1)."""
    names = ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost") else [host]
    return [f"http://{name}:{port}" for name in names]


def read_stack_info(data_dir: Path) -> StackInfo | None:
    """The running stack's addresses, if `voxflow run` is up in this data directory."""
    path = data_dir / STATE_FILE
    if not path.is_file():
        return None
    info = StackInfo(**json.loads(path.read_text()))
    try:
        os.kill(info.pid, 0)
    except OSError:
        return None  # a stale file left by a stack that was killed
    return info


@dataclass
class Stack:
    """The platform's processes on this machine."""

    data_dir: Path
    host: str = "127.0.0.1"
    ingest_port: int = 8000
    status_port: int = 8001
    transcription_concurrency: int = 1
    llm_concurrency: int = 1
    log_dir: Path | None = None  # children write here (one file each) instead of our stdout
    metrics_port_base: int = 9100  # workers and sweeper on base+1..+4; 0: any free ports
    embedded: EmbeddedServers | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    info: StackInfo | None = None

    def _servers(self) -> tuple[str, str]:
        database = os.environ.get("VOXFLOW_DATABASE_URL")
        broker = os.environ.get("VOXFLOW_REDIS_URL")
        if database and broker:
            return database, broker
        self.embedded = EmbeddedServers(self.data_dir)
        urls = self.embedded.start()
        return urls.database_url, urls.redis_url

    def _commands(self) -> dict[str, list[str]]:
        py = sys.executable
        celery = [py, "-m", "celery"]
        worker_flags = ["--without-gossip", "--without-mingle", "-l", "INFO"]
        return {
            "ingest_api": [py, "-m", "uvicorn", "ingest_api.app:app",
                           "--host", self.host, "--port", str(self.ingest_port)],
            "status_api": [py, "-m", "uvicorn", "status_api.app:app",
                           "--host", self.host, "--port", str(self.status_port)],
            "transcription_worker": [*celery, "-A", "transcription_worker.tasks", "worker",
                                     "-Q", "transcription", "-n", "transcription@%h",
                                     "-c", str(self.transcription_concurrency), *worker_flags],
            "llm_worker": [*celery, "-A", "llm_worker.tasks", "worker", "-Q", "llm",
                           "-n", "llm@%h", "-c", str(self.llm_concurrency), *worker_flags],
            # Job webhooks (docs/webhooks.md): sent here, retried through the sweeper.
            "webhook_sender": [*celery, "-A", "webhook_sender.tasks", "worker", "-Q", "webhooks",
                               "-n", "webhooks@%h", "-c", "1", *worker_flags],
            "sweeper": [py, "-m", "sweeper"],
        }  # fmt: skip

    def start(self, ready_timeout: float = 60.0) -> StackInfo:
        """Start servers, migrate, start every service and wait for the APIs to be ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        database_url, redis_url = self._servers()
        upgrade(database_url)
        ingest_url = f"http://{self.host}:{self.ingest_port}"
        status_url = f"http://{self.host}:{self.status_port}"
        env = {
            **os.environ,
            "VOXFLOW_DATABASE_URL": database_url,
            "VOXFLOW_REDIS_URL": redis_url,
            "VOXFLOW_DATA_DIR": str(self.data_dir.resolve()),
            "VOXFLOW_PUBLIC_STATUS_URL": status_url,
            # The web console (served by the status API) uploads to the ingestion API.
            "VOXFLOW_PUBLIC_INGEST_URL": ingest_url,
            "VOXFLOW_CONSOLE_ORIGINS": json.dumps(_console_origins(self.host, self.status_port)),
        }
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        groups, metrics_urls = self._metrics(ingest_url, status_url)
        for name, command in self._commands().items():
            output = None
            if self.log_dir is not None:
                output = (self.log_dir / f"{name}.log").open("ab")
            # A new session each: Ctrl-C reaches only us, and we stop children in order.
            extra = WORKER_ENV if name in CELERY_WORKERS else {}
            self.children[name] = subprocess.Popen(
                command, env={**env, **groups.get(name, {}), **extra}, start_new_session=True,
                stdout=output, stderr=output,
            )  # fmt: skip
            if output is not None:
                output.close()  # the child holds its own descriptor
        self.info = StackInfo(
            database_url, redis_url, ingest_url, status_url, os.getpid(), metrics_urls
        )
        try:
            self._wait_ready([ingest_url, status_url], ready_timeout)
        except BaseException:
            self.stop()
            raise
        (self.data_dir / STATE_FILE).write_text(json.dumps(asdict(self.info)))
        return self.info

    def _metrics(
        self, ingest_url: str, status_url: str
    ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Each service's metrics environment, and the URL Prometheus scrapes it at.

        Every service is a process group with a metrics directory of its own, emptied here
        (this run starts the group). The APIs serve /metrics on their port; the workers'
        main processes and the sweeper on a port of their own.
        """
        root = self.data_dir.resolve() / "metrics"
        groups: dict[str, dict[str, str]] = {}
        urls = {"ingest_api": f"{ingest_url}/metrics", "status_api": f"{status_url}/metrics"}
        for name in self._commands():
            folder = root / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            groups[name] = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
            if name in urls:
                continue
            offset = METRICS_PORT_OFFSETS[name]
            port = self.metrics_port_base + offset if self.metrics_port_base else _free_port()
            groups[name] |= {"VOXFLOW_METRICS_PORT": str(port), "VOXFLOW_METRICS_HOST": self.host}
            urls[name] = f"http://{self.host}:{port}/metrics"
        return groups, urls

    def _wait_ready(self, urls: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(urls)
        while pending:
            self._check_children()
            try:
                if httpx.get(f"{pending[0]}/readyz", timeout=2).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{pending[0]} did not become ready in {timeout:.0f}s")
            time.sleep(0.2)

    def _check_children(self) -> None:
        for name, child in self.children.items():
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with status {child.returncode}")

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM or until a child dies."""
        stopping = False

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stopping:
            try:
                self._check_children()
            except RuntimeError:
                log.exception("a service died; stopping the stack")
                return
            time.sleep(0.5)

    def stop(self, grace: float = 30.0) -> None:
        """Stop services (APIs first, then workers), then the embedded servers."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, child in self.children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                child.kill()
                child.wait()
        self.children.clear()
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
