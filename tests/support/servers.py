"""The real servers the suite talks to: this machine's (named by env) or embedded ones."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

from voxflow.db import normalize_url
from voxflow.embedded import EmbeddedServers, redis_client_url

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Servers:
    """Admin URL of a PostgreSQL server and URL of a Redis database, both verified reachable."""

    postgres_admin_url: str
    redis_url: str
    embedded: bool


def _check_reachable(servers: Servers) -> None:
    """Fail with a clear message when a named server does not answer (never skip)."""
    try:
        with psycopg.connect(_libpq(servers.postgres_admin_url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise RuntimeError(
            f"PostgreSQL at {servers.postgres_admin_url} is not reachable: {exc}"
        ) from exc
    client = redis.Redis.from_url(redis_client_url(servers.redis_url), socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"Redis at {servers.redis_url} is not reachable: {exc}") from exc
    finally:
        client.close()


def _libpq(url: str) -> str:
    return normalize_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def open_servers(data_dir: Path) -> Iterator[Servers]:
    """External servers from VOXFLOW_TEST_* variables, else embedded ones under `data_dir`."""
    database = os.environ.get("VOXFLOW_TEST_DATABASE_URL")
    broker = os.environ.get("VOXFLOW_TEST_REDIS_URL")
    if database and broker:
        servers = Servers(postgres_admin_url=database, redis_url=broker, embedded=False)
        _check_reachable(servers)
        yield servers
        return
    if database or broker:
        raise RuntimeError("set both VOXFLOW_TEST_DATABASE_URL and VOXFLOW_TEST_REDIS_URL, or none")
    embedded = EmbeddedServers(data_dir)
    urls = embedded.start()
    try:
        servers = Servers(urls.database_url, urls.redis_url, embedded=True)
        _check_reachable(servers)
        yield servers
    finally:
        embedded.stop()


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, drop it afterwards."""
    name = f"voxflow_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq(admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalize_url(admin_url)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
