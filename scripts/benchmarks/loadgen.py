"""HTTP load with wrk (Debian's `wrk`, written in C): one phase, its latencies and errors.

wrk is the load generator because it costs the machine far less than the server it loads
(one thread drives thousands of requests a second), so on a 2-core machine the figures
say what the API can do rather than what a Python client can send. A Lua script tells wrk
what to request (a rotation of paths, or a fixed multipart upload) and prints the
summary as one JSON line, which `run_phase` reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

_MARK = "VOXFLOW-WRK "

# Prints wrk's summary as JSON (latencies in microseconds); `status` counts non-2xx/3xx.
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p95":%d,"p99":%d,"max":%d}\\n',
    MARK, summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def get_script(paths: Sequence[str], headers: dict[str, str]) -> str:
    """A wrk script that GETs `paths` in rotation with `headers`."""
    lines = [f"MARK = {_lua_string(_MARK)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append("local paths = {" + ", ".join(_lua_string(p) for p in paths) + "}")
    lines.append("local i = 0")
    lines.append("request = function() i = i % #paths + 1; return wrk.format('GET', paths[i]) end")
    return "\n".join(lines) + _DONE


def upload_script(path: str, body_file: Path, content_type: str, headers: dict[str, str]) -> str:
    """A wrk script that POSTs the same multipart body (read from `body_file`) each time."""
    lines = [
        f"MARK = {_lua_string(_MARK)}",
        "wrk.method = 'POST'",
        f"wrk.path = {_lua_string(path)}",
    ]
    headers = {**headers, "Content-Type": content_type}
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append(f"local f = assert(io.open({_lua_string(str(body_file))}, 'rb'))")
    lines.append("wrk.body = f:read('*a'); f:close()")
    return "\n".join(lines) + _DONE


@dataclass(frozen=True)
class Phase:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int  # socket errors, timeouts and answers other than 2xx/3xx
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def check_wrk() -> str:
    """wrk's path, or exit saying how to get it."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    return found


def run_phase(
    script: str, url: str, *, connections: int, seconds: float, threads: int = 1,
    timeout_seconds: float = 10.0,
) -> Phase:  # fmt: skip
    """Run wrk for `seconds` with `connections` open connections and return its summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        done = subprocess.run(
            [check_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
             f"--timeout={timeout_seconds:g}s", "-s", lua.name, url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        Path(lua.name).unlink(missing_ok=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith(_MARK))
    raw = json.loads(line[len(_MARK) :])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Phase(
        requests=raw["requests"], seconds=raw["duration_us"] / 1e6, errors=errors,
        p50_ms=raw["p50"] / 1000, p95_ms=raw["p95"] / 1000, p99_ms=raw["p99"] / 1000,
        max_ms=raw["max"] / 1000,
    )  # fmt: skip


@dataclass(frozen=True)
class Costed:
    """A phase, and the CPU the API's processes and PostgreSQL spent on it."""

    phase: Phase
    api_cpu_seconds: float
    db_cpu_seconds: float

    @property
    def api_cpu_per_1k(self) -> float:
        """API CPU seconds per 1,000 requests (= milliseconds per request)."""
        return self.api_cpu_seconds * (1000 / max(self.phase.requests, 1))

    @property
    def db_cpu_per_1k(self) -> float:
        """PostgreSQL CPU seconds per 1,000 requests (= milliseconds per request)."""
        return self.db_cpu_seconds * (1000 / max(self.phase.requests, 1))


def run_costed_phase(
    script: str, url: str, *, api_pid: int, pgdata: Path, connections: int, seconds: float,
    timeout_seconds: float = 10.0,
) -> Costed:  # fmt: skip
    """`run_phase`, with the CPU seconds the API (process `api_pid` and its children) and the
    PostgreSQL cluster in `pgdata` used meanwhile."""
    postmaster = postmaster_pid(pgdata)
    api_before, db_before = tree_cpu_seconds(api_pid), tree_cpu_seconds(postmaster)
    phase = run_phase(
        script, url, connections=connections, seconds=seconds, timeout_seconds=timeout_seconds
    )
    return Costed(
        phase, tree_cpu_seconds(api_pid) - api_before, tree_cpu_seconds(postmaster) - db_before
    )


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants.

    Live descendants are read one by one; those that already exited are in the parent's
    `children_*` times (a probe worker of the ingest API, a PostgreSQL backend that closed).
    """
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        descendants = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = times.user + times.system + times.children_user + times.children_system
    for child in descendants:
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of one process, MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def postmaster_pid(data_dir: Path) -> int:
    """The main process of a PostgreSQL cluster (from its postmaster.pid)."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])
