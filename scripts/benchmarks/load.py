"""API load benchmark: requests/s, latency, errors, CPU and memory of one API process.

    uv run python -m scripts.benchmarks.load                      # this checkout
    uv run python -m scripts.benchmarks.load --baseline 90728ab   # and an older commit, same run
    uv run python -m scripts.benchmarks.load --soak 100000        # 100,000 mixed requests

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

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from scripts.benchmarks import loadgen
from scripts.benchmarks.harness import (
    CURRENT,
    ROOT,
    JsonOutput,
    Running,
    Variant,
    apis,
    console,
    git_revision,
    int_list,
    migrated_servers,
    new_table,
    progress,
    write_json,
)
from scripts.benchmarks.loadseed import Seeded, multipart_note, seed

SCENARIOS = ("healthz", "job", "list", "srt", "upload")
CONNECTIONS = (16, 64, 256)


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
    # A request unanswered after half the phase counts as an error (a timeout).
    costed = loadgen.run_costed_phase(
        script, url, api_pid=pid, pgdata=pgdata, connections=connections, seconds=seconds,
        timeout_seconds=seconds / 2,
    )  # fmt: skip
    phase = costed.phase
    return Result(
        scenario=scenario, connections=connections, variant=variant, rate=phase.rate,
        p50_ms=phase.p50_ms, p95_ms=phase.p95_ms, p99_ms=phase.p99_ms, errors=phase.errors,
        requests=phase.requests, api_cpu_per_1k=costed.api_cpu_per_1k,
        db_cpu_per_1k=costed.db_cpu_per_1k, rss_mib=loadgen.rss_mib(pid),
    )  # fmt: skip


def report(results: list[Result], variants: list[str]) -> None:
    """One table: a row per phase, with the ratio to the baseline when there is one."""
    table = new_table(
        "API load (wrk, one API process, same machine)",
        ("scenario", "conns", "variant", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
         "API CPU s/1k", "DB CPU s/1k", "RSS MiB", "x baseline"),
        left=("scenario", "variant"),
    )  # fmt: skip
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
    output: JsonOutput = None,
) -> None:
    """Measure the APIs under load (and an older commit's, with --baseline)."""
    loadgen.check_wrk()
    wanted = [s for s in scenarios.split(",") if s]
    levels = int_list(connections)
    results: list[Result] = []
    soaked: dict[str, Any] | None = None
    with _variants(baseline) as variants, migrated_servers("vf-load-") as servers:
        seeded = seed(servers.database_url, servers.redis_url)
        body = multipart_note(servers.folder, seconds=15.0)
        env = servers.env() | {
            # Uploads are measured, not limited: the per-tenant limits stay checked.
            "VOXFLOW_UPLOADS_PER_MINUTE": "100000000", "VOXFLOW_MAX_ACTIVE_JOBS": "100000000",
        }  # fmt: skip
        phases = [(scenario, level) for scenario in wanted for level in levels]
        for index, (scenario, level) in enumerate(phases):
            # Alternate which variant goes first, so drift favours neither.
            for variant in variants if index % 2 == 0 else variants[::-1]:
                progress.print(f"[dim]{scenario} at {level} connections: {variant.name}")
                with apis(variant, env, servers.logs) as running:
                    results.append(measure(scenario, level, variant.name, running, seeded,
                                           body, seconds, servers.pgdata))  # fmt: skip
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
            with apis(current, env, servers.logs) as running:
                soaked = soak(running, seeded, soak_requests, round_seconds=10)
    if output is not None:
        document = {"git": git_revision(), "baseline": baseline, "seconds": seconds,
                    "cpu_count": os.cpu_count(), "results": [asdict(r) for r in results],
                    "soak": soaked}  # fmt: skip
        write_json(output, document)
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
