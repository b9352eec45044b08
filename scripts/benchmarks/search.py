"""Search benchmark: `GET /v1/search` over 10,000 transcripts, through HTTP, on one process.

    uv run python -m scripts.benchmarks.search                       # 10,000 transcripts
    uv run python -m scripts.benchmarks.search --transcripts 2000    # quicker

Embedded PostgreSQL and Redis start in a temporary directory; the migrations run; the
transcripts are written (scripts/benchmarks/searchseed.py: 50 to 200 segments each, four
tenants of 40, 30, 20 and 10 % of them); then the status API runs as it is deployed
(`uvicorn status_api.app:app`, one process) and is asked, as the biggest tenant:

* each kind of query alone, one request at a time (httpx; the first requests warm up):
  a word in nearly every transcript, two of them, a phrase, an `or`, an exclusion, a
  tenant's own word, subject words in many, some and one transcript, a word of another
  tenant's, a word nowhere, and the second page of a common word;
* all of them in rotation with wrk at 1, 4 and 16 connections.

Reported: p50/p95/p99 per kind and per phase, requests per second, hits per page, and the
sizes of the table and its index. The target: p95 under 50 ms for the mix.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import psycopg
import typer

from scripts.benchmarks import loadgen
from scripts.benchmarks.harness import (
    CURRENT,
    ROOT,
    JsonOutput,
    Variant,
    apis,
    console,
    git_revision,
    int_list,
    loadavg,
    migrated_servers,
    new_table,
    percentile,
    progress,
    write_json,
)
from scripts.benchmarks.searchseed import Seeded, seed

TENANTS = ["acme", "globex", "initech", "umbrella"]
TARGET_P95_MS = 50.0


@dataclass
class Kind:
    """One kind of query, and what it measured alone."""

    name: str
    query: str
    cursor: str | None = None
    hits: int = 0
    next_page: bool = False
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0

    def path(self, limit: int) -> str:
        """The request's path and query string."""
        params: dict[str, Any] = {"q": self.query, "limit": limit}
        if self.cursor:
            params["cursor"] = self.cursor
        return f"/v1/search?{urlencode(params)}"


def kinds(seeded: Seeded, tenant: str) -> list[Kind]:
    """The query mix, with words chosen from what the tenant's transcripts say."""
    counts = seeded.subjects[tenant]
    house = set(seeded.house[tenant])
    subject = [(word, n) for word, n in counts.most_common() if word not in house]

    def near(wanted: int) -> str:
        return min(subject, key=lambda item: (abs(item[1] - wanted), item[0]))[0]

    stranger = next(t for t in TENANTS if t != tenant)
    return [
        Kind("common word", "budget"),
        Kind("two common words", "budget meeting"),
        Kind("phrase", '"weekly update"'),
        Kind("or", "contract or invoice"),
        Kind("exclusion", "printer -office"),
        Kind("own word", seeded.house[tenant][0]),
        Kind("frequent subject", subject[0][0]),
        Kind("subject in ~1%", near(max(1, seeded.transcripts[tenant] // 100))),
        Kind("subject in 1", near(1)),
        Kind("another tenant's word", seeded.house[stranger][0]),
        Kind("nowhere", "zebra"),
        Kind("page 2", "budget"),  # its cursor is filled in once the API runs
    ]


def measure_alone(client: httpx.Client, kind: Kind, limit: int, requests: int) -> None:
    """Time `requests` requests of one kind, one at a time, after a few to warm up."""
    for _ in range(3):
        page = client.get(kind.path(limit))
        page.raise_for_status()
    body = page.json()
    kind.hits, kind.next_page = len(body["items"]), body["next_cursor"] is not None
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(kind.path(limit)).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    kind.p50_ms = statistics.median(times)
    kind.p95_ms = percentile(times, 0.95, nearest=True)
    kind.p99_ms = percentile(times, 0.99, nearest=True)


@dataclass
class MixPhase:
    """The mix in rotation under wrk."""

    connections: int
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    api_cpu_ms: float  # per request
    db_cpu_ms: float


def sizes(database_url: str) -> dict[str, str]:
    """The transcripts table (with its TOAST), the search column and the GIN index."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('transcripts')),"
            " pg_size_pretty(sum(pg_column_size(search_vector))),"
            " pg_size_pretty(pg_relation_size('ix_transcripts_search')) FROM transcripts"
        ).fetchone()
    assert row is not None
    return {"transcripts": row[0], "search_vector": row[1], "index": row[2]}


def report(alone: list[Kind], phases: list[MixPhase], facts: dict[str, Any]) -> None:
    """The two tables and the verdict."""
    share = f"{facts['tenant_transcripts']:,} of {facts['transcripts']:,} transcripts"
    table = new_table(
        f"GET /v1/search alone, one at a time ({facts['tenant']}: {share})",
        ("kind", "query", "hits", "more", "p50 ms", "p95 ms", "p99 ms"),
        left=("kind", "query"),
    )
    for kind in alone:
        table.add_row(kind.name, kind.query, str(kind.hits), "yes" if kind.next_page else "",
                      f"{kind.p50_ms:.1f}", f"{kind.p95_ms:.1f}", f"{kind.p99_ms:.1f}")  # fmt: skip
    console.print(table)
    mix = new_table(
        "The mix in rotation (wrk)",
        ("conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "API CPU ms/req",
         "DB CPU ms/req"),
    )  # fmt: skip
    for phase in phases:
        mix.add_row(str(phase.connections), f"{phase.rate:,.0f}", f"{phase.p50_ms:.1f}",
                    f"{phase.p95_ms:.1f}", f"{phase.p99_ms:.1f}", str(phase.errors),
                    f"{phase.api_cpu_ms:.2f}", f"{phase.db_cpu_ms:.2f}")  # fmt: skip
    console.print(mix)
    console.print(f"sizes: {facts['sizes']}; seeding took {facts['seed_seconds']:.0f} s")
    single = phases[0]
    verdict = "[green]met" if single.p95_ms < TARGET_P95_MS else "[red]NOT met"
    console.print(f"target p95 < {TARGET_P95_MS:.0f} ms (mix, 1 connection): "
                  f"{single.p95_ms:.1f} ms: {verdict}")  # fmt: skip


def main(
    transcripts: Annotated[int, typer.Option(help="Transcripts to seed.")] = 10_000,
    requests: Annotated[int, typer.Option(help="Requests per kind, one at a time.")] = 100,
    seconds: Annotated[float, typer.Option(help="Length of each wrk phase.")] = 10.0,
    connections: Annotated[str, typer.Option(help="wrk phases, comma-separated.")] = "1,4,16",
    limit: Annotated[int, typer.Option(help="Hits per page.")] = 20,
    output: JsonOutput = None,
) -> None:
    """Seed transcripts into a fresh database and time the search endpoint through HTTP."""
    from voxflow.apikeys import issue_key
    from voxflow.db import make_engine, make_sessionmaker, session_scope

    loadgen.check_wrk()
    tenant = TENANTS[0]
    with migrated_servers("vf-search-") as servers:
        progress.print(f"[dim]seeding {transcripts:,} transcripts")
        started = time.perf_counter()
        seeded = seed(servers.database_url, TENANTS, transcripts)
        seed_seconds = time.perf_counter() - started
        engine = make_engine(servers.database_url, pool_size=1)
        with session_scope(make_sessionmaker(engine)) as session:
            key = issue_key(session, tenant, "search-bench").secret
        engine.dispose()
        auth = {"Authorization": f"Bearer {key}"}
        mix = kinds(seeded, tenant)
        phases: list[MixPhase] = []
        with (
            apis(Variant(CURRENT, ROOT), servers.env(), servers.logs) as running,
            httpx.Client(base_url=running.status_url, headers=auth, timeout=30) as client,
        ):
            first = client.get(mix[0].path(limit)).json()
            mix[-1].cursor = first["next_cursor"]
            for kind in mix:
                progress.print(f"[dim]alone: {kind.name} ({kind.query})")
                measure_alone(client, kind, limit, requests)
            script = loadgen.get_script([kind.path(limit) for kind in mix], auth)
            for level in int_list(connections):
                progress.print(f"[dim]mix at {level} connections")
                loadgen.run_phase(script, running.status_url, connections=level, seconds=1)
                costed = loadgen.run_costed_phase(
                    script, running.status_url, api_pid=running.status_pid,
                    pgdata=servers.pgdata, connections=level, seconds=seconds,
                )  # fmt: skip
                phase = costed.phase
                phases.append(MixPhase(
                    connections=level, rate=phase.rate, p50_ms=phase.p50_ms,
                    p95_ms=phase.p95_ms, p99_ms=phase.p99_ms, errors=phase.errors,
                    requests=phase.requests, api_cpu_ms=costed.api_cpu_per_1k,
                    db_cpu_ms=costed.db_cpu_per_1k,
                ))  # fmt: skip
        facts: dict[str, Any] = {
            "tenant": tenant, "tenant_transcripts": seeded.transcripts[tenant],
            "transcripts": transcripts, "seed_seconds": round(seed_seconds, 1),
            "sizes": sizes(servers.database_url), "cpu_count": os.cpu_count(),
            "loadavg": loadavg(),
        }  # fmt: skip
    report(mix, phases, facts)
    if output is not None:
        document = {
            "git": git_revision(), **facts, "limit": limit,
            "alone": [asdict(k) for k in mix], "mix": [asdict(p) for p in phases],
        }  # fmt: skip
        write_json(output, document)
    if phases and phases[0].p95_ms >= TARGET_P95_MS:
        raise SystemExit(1)


if __name__ == "__main__":
    typer.run(main)
