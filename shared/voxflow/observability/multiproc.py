"""Prometheus multiprocess mode: one metrics directory per process group, chosen in time.

prometheus_client decides when it is first imported whether metric values live in memory
or in memory-mapped files under PROMETHEUS_MULTIPROC_DIR; a process that imported it without
the variable can never join a group. Voxflow therefore imports prometheus_client only in
modules whose first statement is `prepare()` (voxflow.observability.metrics and .exposition),
so every process has the variable before the library loads, whichever of its modules happens
to import metrics first. No entry point has to remember an ordering.

A group is the processes one endpoint reports for: an API's uvicorn workers, a Celery worker's
main and pool processes, the sweeper. The rule that forms groups:

- A process that inherits PROMETHEUS_MULTIPROC_DIR joins that group (Celery pool children,
  processes `voxflow run` starts with a directory of their own, containers whose environment
  names one, the test suite).
- A process that finds it unset starts or joins the group of its directory: VOXFLOW_METRICS_DIR,
  else DATA_DIR/metrics/<host>-<process group id>. uvicorn's workers are spawned by a master
  that never imports the app, but they share its process group id, so they agree on it.
  It exports the variable, so that everything it forks or spawns joins too.
- Starting a group clears what an earlier run left: when no live process has files in the
  directory, the files of dead processes are deleted (a restarted uvicorn worker finds its
  siblings alive and keeps its dead predecessor's counts, so totals never go down). Default
  directories of process groups that no longer exist on this host are removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from pathlib import Path

from voxflow.settings import MetricsSettings, StorageSettings

log = logging.getLogger(__name__)

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> Path:
    """This process's metrics directory, exported as PROMETHEUS_MULTIPROC_DIR (idempotent)."""
    inherited = os.environ.get(ENV_VAR, "").strip()
    if inherited:
        path = Path(inherited)
        path.mkdir(parents=True, exist_ok=True)
        return path
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError(
            "prometheus_client was imported before voxflow.observability.metrics set "
            f"{ENV_VAR}; its metrics would stay in this process. Import "
            "voxflow.observability.metrics first, or set the variable in the environment."
        )
    configured = MetricsSettings().metrics_dir
    if configured is not None:
        path = configured.resolve()
    else:
        parent = (StorageSettings().data_dir / "metrics").resolve()
        remove_dead_groups(parent)
        path = parent / group_name()
    path.mkdir(parents=True, exist_ok=True)
    start_group(path)
    os.environ[ENV_VAR] = str(path)
    return path


def group_name() -> str:
    """The default directory name of this process group: `<host>-<process group id>`."""
    return f"{socket.gethostname()}-{os.getpgrp()}"


def pid_of(file: Path) -> int | None:
    """The process that wrote a metric file (`counter_123.db`, `gauge_livesum_123.db`)."""
    tail = file.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (in this PID namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_group(path: Path) -> None:
    """Delete the files of dead processes, unless a live process still writes here.

    Runs before this process has written anything, so a file under its own id is a dead
    predecessor's (process ids repeat in containers) and always goes.
    """
    me = os.getpid()
    files = [(f, pid_of(f)) for f in path.glob("*.db")]
    running = any(pid is not None and pid != me and alive(pid) for _, pid in files)
    # In a running group, keep its dead members' counts: totals must never go down.
    stale = [f for f, pid in files if pid == me or not running]
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        log.info("cleared %d metric files of an earlier run from %s", len(stale), path)


def remove_dead_groups(parent: Path) -> None:
    """Remove default directories of this host's process groups that no longer exist."""
    prefix = f"{socket.gethostname()}-"
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        pgid = entry.name.removeprefix(prefix)
        if not entry.name.startswith(prefix) or not pgid.isdigit():
            continue
        try:
            os.killpg(int(pgid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            pass
