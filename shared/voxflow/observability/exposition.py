"""Serving a process group's metrics: one registry that reads every member's files.

The APIs answer `/metrics` on their own port (voxflow.web.observability); a Celery worker's
main process and the sweeper serve it from a small HTTP thread on VOXFLOW_METRICS_PORT.
"""

from __future__ import annotations

from voxflow.observability import multiproc

multiproc.prepare()  # before prometheus_client loads (see voxflow.observability.multiproc)

import logging  # noqa: E402
import os  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402
from wsgiref.simple_server import WSGIServer  # noqa: E402

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

log = logging.getLogger(__name__)

# Gauge modes whose files belong to one live process and go when it dies.
_LIVE_MODES = ("liveall", "livemin", "livemax", "livesum", "livemostrecent")


class GroupCollector(Collector):
    """Every metric file of the group, merged; live gauges of dead processes dropped first.

    A pool child that exits cleanly drops its own live gauges (`process_exited`); this
    catches the ones that were killed (OOM, SIGKILL, a hard time limit).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or multiproc.prepare()
        self._files = MultiProcessCollector(None, str(self.path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        """Reap dead processes' live gauges, then read and merge all files."""
        for mode in _LIVE_MODES:
            for file in self.path.glob(f"gauge_{mode}_*.db"):
                pid = multiproc.pid_of(file)
                if pid is not None and not multiproc.alive(pid):
                    mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]
        merged: Iterable[Metric] = self._files.collect()  # type: ignore[no-untyped-call]
        return merged


def group_registry(*extra: Collector) -> CollectorRegistry:
    """A registry with the group's metrics and `extra` scrape-time collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GroupCollector())
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int, host: str, *extra: Collector) -> WSGIServer:
    """Serve the group's metrics (and `extra`) at http://host:port/metrics in a thread."""
    server, _thread = start_http_server(port, host, registry=group_registry(*extra))
    log.info("metrics on http://%s:%d/metrics (pid %d)", host, server.server_port, os.getpid())
    return server


def process_exited(pid: int | None = None) -> None:
    """Drop a finished process's live gauges (its counters stay: they were counted)."""
    path = str(multiproc.prepare())
    mark_process_dead(os.getpid() if pid is None else pid, path)  # type: ignore[no-untyped-call]
