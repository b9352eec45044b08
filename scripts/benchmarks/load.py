"""API load benchmark: requests/s, latency, errors, CPU and memory of one API process.

    uv run python scripts/benchmarks/load.py                      # this checkout
    uv run python scripts/benchmarks/load.py --baseline 90728ab   # and an older commit, same run
    uv run python scripts/benchmarks/load.py --soak 100000        # 100,000 mixed requests

Each API (`uvicorn status_api.app:app`, `uvicorn ingest_api.app:app`, one process each, as
`voxflow run` and the images start them) runs against embedded PostgreSQL and Redis with
seeded jobs, and wrk loads it from the same machine at 16, 64 and 256 connections:

* `healthz`: the status API's `/healthz`, the framework's ceiling in this run;
* `job`: an authenticated `GET /v1/jobs/{id}`; `list`: `GET /v1/jobs?limit=20`;
* `srt`: the SubRip transcript of a 1-hour job; `upload`: `POST /v1/jobs` of a 15 s note.

With `--baseline REV`, that commit is checked out in a git worktree and its APIs are
measured in the same run (same servers, same data, alternating order), so the ratios
compare code, not machine moods. Reported per phase: requests/s, p50/p95/p99 latency,
errors (socket errors, timeouts, non-2xx answers), the API process's CPU seconds per
1,000 requests, PostgreSQL's, and the API process's RSS after the phase.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.table import Table

if TYPE_CHECKING:  # mypy names modules by their path from the repository root
    from scripts.benchmarks import loadgen
    from scripts.benchmarks.common import ROOT, console, free_port, git_revision, progress
    from scripts.benchmarks.loadseed import Seeded, multipart_note, seed
else:  # run as a script, whose own directory is on sys.path
    import loadgen
    from common import ROOT, console, free_port, git_revision, progress
    from loadseed import Seeded, multipart_note, seed

SCENARIOS = ("healthz", "job", "list", "srt", "upload")
CONNECTIONS = (16, 64, 256)
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
def baseline_worktree(revision: str) -> Iterator[Path]:
    """`revision` checked out beside this repository (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix="vf-load-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), revision],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


@contextmanager
def apis(variant: Variant, env: dict[str, str], log_dir: Path) -> Iterator[Running]:
    """Start the variant's two APIs (its sources first on the import path) and wait for them."""
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


@dataclass
class Result:
    """One measured phase."""

    scenario: str
    connections: int
    variant: str
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    api_cpu_per_1k: float
    db_cpu_per_1k: float
    rss_mib: float


def _script(scenario: str, seeded: Seeded, body: tuple[Path, str]) -> tuple[str, str]:
    """The wrk script of a scenario and the API (status or ingest) it loads."""
    auth = {"Authorization": f"Bearer {seeded.key}"}
    if scenario == "upload":
        upload_auth = {"Authorization": f"Bearer {seeded.upload_key}"}
        return loadgen.upload_script("/v1/jobs", body[0], body[1], upload_auth), "ingest"
    paths = {
        "healthz": ["/healthz"],
        "job": [f"/v1/jobs/{seeded.job_id}"],
        "list": ["/v1/jobs?limit=20"],
        "srt": [f"/v1/jobs/{seeded.hour_id}/transcript?format=srt"],
    }[scenario]
    return loadgen.get_script(paths, {} if scenario == "healthz" else auth), "status"


def measure(
    scenario: str, connections: int, variant: str, running: Running, seeded: Seeded,
    body: tuple[Path, str], seconds: float, pgdata: Path,
) -> Result:  # fmt: skip
    """Warm up, then run one phase and account for the CPU it cost."""
    script, api = _script(scenario, seeded, body)
    url, pid = (
        (running.ingest_url, running.ingest_pid)
        if api == "ingest"
        else (running.status_url, running.status_pid)
    )
    # Warm-up (imports, pools, caches) on few connections: a burst of connections closed
    # mid-request would leave the server answering dead sockets when the phase starts.
    loadgen.run_phase(script, url, connections=min(connections, 16), seconds=1)
    time.sleep(0.5)
    postmaster = loadgen.postmaster_pid(pgdata)
    api_before, db_before = loadgen.tree_cpu_seconds(pid), loadgen.tree_cpu_seconds(postmaster)
    # A request unanswered after half the phase counts as an error (a timeout).
    phase = loadgen.run_phase(
        script, url, connections=connections, seconds=seconds, timeout_seconds=seconds / 2
    )
    api_cpu = loadgen.tree_cpu_seconds(pid) - api_before
    db_cpu = loadgen.tree_cpu_seconds(postmaster) - db_before
    per_1k = 1000 / max(phase.requests, 1)
    return Result(
        scenario=scenario, connections=connections, variant=variant, rate=phase.rate,
        p50_ms=phase.p50_ms, p95_ms=phase.p95_ms, p99_ms=phase.p99_ms, errors=phase.errors,
        requests=phase.requests, api_cpu_per_1k=api_cpu * per_1k, db_cpu_per_1k=db_cpu * per_1k,
        rss_mib=loadgen.rss_mib(pid),
    )  # fmt: skip


def report(results: list[Result], variants: list[str]) -> None:
    """One table: a row per phase, with the ratio to the baseline when there is one."""
    table = Table(title="API load (wrk, one API process, same machine)")
    for column in ("scenario", "conns", "variant", "req/s", "p50 ms", "p95 ms", "p99 ms",
                   "errors", "API CPU s/1k", "DB CPU s/1k", "RSS MiB", "x baseline"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("scenario", "variant") else "right")
    by_key = {(r.scenario, r.connections, r.variant): r for r in results}
    for r in results:
        base = by_key.get((r.scenario, r.connections, variants[0]))
        ratio = f"{r.rate / base.rate:.2f}" if base and len(variants) > 1 and base.rate else ""
        table.add_row(
            r.scenario, str(r.connections), r.variant, f"{r.rate:,.0f}", f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}", f"{r.p99_ms:.1f}", str(r.errors), f"{r.api_cpu_per_1k:.3f}",
            f"{r.db_cpu_per_1k:.3f}", f"{r.rss_mib:.0f}", ratio,
        )  # fmt: skip
    console.print(table)


def soak(running: Running, seeded: Seeded, total: int, round_seconds: float) -> dict[str, Any]:
    """`total` mixed requests against the status API; RSS sampled after every round."""
    base = f"/v1/jobs/{seeded.job_id}"
    paths = [base, "/v1/jobs?limit=20", f"{base}/events", f"{base}/results",
             f"{base}/transcript", f"{base}/transcript?format=vtt", base,
             "/v1/jobs?limit=20&status=completed", f"/v1/jobs/{seeded.hour_id}",
             f"/v1/jobs/{seeded.hour_id}/transcript?format=srt"]  # fmt: skip
    script = loadgen.get_script(paths, {"Authorization": f"Bearer {seeded.key}"})
    done, errors, samples = 0, 0, []
    started = time.perf_counter()
    while done < total:
        phase = loadgen.run_phase(script, running.status_url, connections=16, seconds=round_seconds)
        done += phase.requests
        errors += phase.errors
        samples.append((done, loadgen.rss_mib(running.status_pid)))
        progress.print(
            f"[dim]soak: {done:,} requests, {errors} errors, RSS {samples[-1][1]:.0f} MiB"
        )
    elapsed = time.perf_counter() - started
    first = samples[0][1]  # after the first round: imports, pools and caches are warm
    growth = (samples[-1][1] - first) / first
    outcome = {"requests": done, "errors": errors, "seconds": round(elapsed, 1),
               "rate": round(done / elapsed), "rss_first_mib": round(first, 1),
               "rss_last_mib": round(samples[-1][1], 1),
               "rss_max_mib": round(max(s[1] for s in samples), 1),
               "rss_growth": round(growth, 4), "samples": samples,
               "passed": errors == 0 and abs(growth) <= 0.10}  # fmt: skip
    verdict = "[green]passed" if outcome["passed"] else "[red]FAILED"
    console.print(
        f"soak: {done:,} mixed requests in {elapsed:.0f} s ({outcome['rate']:,}/s),"
        f" {errors} errors, RSS {first:.0f} → {samples[-1][1]:.0f} MiB ({growth:+.1%},"
        f" max {outcome['rss_max_mib']} MiB): {verdict}"
    )
    return outcome


def main(
    baseline: Annotated[
        str | None, typer.Option(help="Also measure this commit, same run.")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Length of each measured phase.")] = 10.0,
    scenarios: Annotated[str, typer.Option(help="Comma-separated subset.")] = ",".join(SCENARIOS),
    connections: Annotated[str, typer.Option(help="Comma-separated levels.")] = "16,64,256",
    soak_requests: Annotated[
        int, typer.Option("--soak", help="Mixed requests to soak with (0: none).")
    ] = 0,
    output: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
) -> None:
    """Measure the APIs under load (and an older commit's, with --baseline)."""
    from voxflow.embedded import EmbeddedServers
    from voxflow.migrate import upgrade

    loadgen.check_wrk()
    wanted = [s for s in scenarios.split(",") if s]
    levels = [int(c) for c in connections.split(",") if c]
    results: list[Result] = []
    soaked: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="vf-load-") as tmp, _variants(baseline) as variants:
        servers = EmbeddedServers(Path(tmp) / "data")
        urls = servers.start()
        try:
            upgrade(urls.database_url)
            seeded = seed(urls.database_url, urls.redis_url)
            body = multipart_note(Path(tmp), seconds=15.0)
            env = {
                "VOXFLOW_DATABASE_URL": urls.database_url, "VOXFLOW_REDIS_URL": urls.redis_url,
                "VOXFLOW_DATA_DIR": str(Path(tmp) / "data"),
                "VOXFLOW_STORAGE_ROOT": str(Path(tmp) / "storage"),
                # Uploads are measured, not limited: the per-tenant limits stay checked.
                "VOXFLOW_UPLOADS_PER_MINUTE": "100000000", "VOXFLOW_MAX_ACTIVE_JOBS": "100000000",
            }  # fmt: skip
            logs = Path(tmp) / "logs"
            logs.mkdir()
            pgdata = servers.postgres.pgdata
            phases = [(scenario, level) for scenario in wanted for level in levels]
            for index, (scenario, level) in enumerate(phases):
                # Alternate which variant goes first, so drift favours neither.
                for variant in variants if index % 2 == 0 else variants[::-1]:
                    progress.print(f"[dim]{scenario} at {level} connections: {variant.name}")
                    with apis(variant, env, logs) as running:
                        results.append(measure(scenario, level, variant.name, running, seeded,
                                               body, seconds, pgdata))  # fmt: skip
                    if scenario == "upload":
                        seeded.clear_uploads()
            names = [v.name for v in variants]
            results.sort(
                key=lambda r: (wanted.index(r.scenario), r.connections, names.index(r.variant))
            )
            if results:
                report(results, names)
            if soak_requests:
                current = next(v for v in variants if v.name == CURRENT)
                with apis(current, env, logs) as running:
                    soaked = soak(running, seeded, soak_requests, round_seconds=10)
        finally:
            servers.stop()
    if output is not None:
        document = {"git": git_revision(), "baseline": baseline, "seconds": seconds,
                    "cpu_count": os.cpu_count(), "results": [asdict(r) for r in results],
                    "soak": soaked}  # fmt: skip
        output.write_text(json.dumps(document, indent=2))
    if soaked is not None and not soaked["passed"]:
        raise SystemExit(1)


@contextmanager
def _variants(baseline: str | None) -> Iterator[list[Variant]]:
    current = Variant(CURRENT, ROOT)
    if baseline is None:
        yield [current]
        return
    with baseline_worktree(baseline) as path:
        yield [Variant(f"baseline {baseline[:9]}", path), current]


if __name__ == "__main__":
    typer.run(main)
