"""The web console's first load in headless Chromium, on loopback: bytes and time to interactive.

    uv run python -m scripts.benchmarks.console [--loads 10] [--jobs 20]

One embedded stack (`voxflow run`) with `--jobs` finished voice notes. Each load opens the
console in a fresh browser context (an empty cache, as a first visit) and measures:

* *first visit*: no key yet; interactive when the key field is usable, i.e. the page's
  `voxflow:ready` mark (the modules ran and drew the first view);
* *returning*: a key saved on the device; interactive when the jobs table shows its first
  page of jobs (the first row's appearance, timed in the page);
* *reload*: the returning visit again in the same context, the files revalidated (304s).

Bytes are what the browser received (headers and bodies, as transferred), summed over every
response of the load. Targets: under 300 KB and under 1 s. Chromium is Debian's
(`/usr/bin/chromium`, `make tools`); Playwright downloads no browser. Writes
`.voxflow/bench/console.json`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from playwright.sync_api import Browser, BrowserContext, Request, sync_playwright

from scripts.benchmarks.harness import (
    RESULTS,
    VOICE_NOTE,
    FiguresPath,
    RunningStack,
    console,
    git_revision,
    loadavg,
    new_table,
    progress,
    started_stack,
    write_json,
)

CHROMIUM = Path("/usr/bin/chromium")
OUT = RESULTS / "console.json"
BYTES_TARGET = 300 * 1024
SECONDS_TARGET = 1.0
KEY_NAME = "voxflow.api_key"
# Runs in the page before its own scripts: notes when the jobs table gets its first row.
FIRST_ROW = """
new MutationObserver((_, observer) => {
  if (document.querySelector("table.jobs tbody tr")) {
    performance.mark("bench:first-row");
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""


def _load(
    context: BrowserContext, url: str, until: str, mark: str, *, reload: bool = False
) -> dict[str, Any]:
    """One load of the console: bytes received, requests, and milliseconds to `mark`."""
    page = context.pages[0] if reload else context.new_page()
    finished: list[Request] = []

    def done(request: Request) -> None:
        finished.append(request)

    page.on("requestfinished", done)
    if reload:
        page.reload(wait_until="load")
    else:
        page.goto(url, wait_until="load")
    page.wait_for_selector(until)
    page.wait_for_load_state("networkidle")
    timing: dict[str, float] = page.evaluate(
        """(mark) => {
            const nav = performance.getEntriesByType("navigation")[0];
            const ready = performance.getEntriesByName(mark)[0].startTime;
            return { dcl: nav.domContentLoadedEventEnd, ready };
        }""",
        mark,
    )
    sizes = [request.sizes() for request in finished]
    return {
        "bytes": sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes),
        "body_bytes": sum(s["responseBodySize"] for s in sizes),
        "requests": len(finished),
        "dom_content_loaded_ms": round(timing["dcl"], 1),
        "interactive_ms": round(timing["ready"], 1),
    }


def measure(browser: Browser, running: RunningStack, loads: int) -> dict[str, list[dict[str, Any]]]:
    """`loads` first visits, returning visits and reloads, each in a fresh context."""
    url = running.info.status_url + "/"
    key = running.client.api_key
    seen: dict[str, list[dict[str, Any]]] = {"first visit": [], "returning": [], "reload": []}
    for index in range(loads + 1):  # the first round warms the servers up and is dropped
        fresh = browser.new_context()
        first = _load(fresh, url, "body[data-ready] #api-key", "voxflow:ready")
        fresh.close()
        returning = browser.new_context()
        returning.add_init_script(FIRST_ROW)
        returning.add_init_script(f"localStorage.setItem({KEY_NAME!r}, {json.dumps(key)})")
        again = _load(returning, url, "table.jobs tbody tr", "bench:first-row")
        reloaded = _load(returning, url, "table.jobs tbody tr", "bench:first-row", reload=True)
        returning.close()
        if index:
            seen["first visit"].append(first)
            seen["returning"].append(again)
            seen["reload"].append(reloaded)
        progress.print(f"[dim]load {index}/{loads}: {first['interactive_ms']:.0f} ms, "
                       f"{again['interactive_ms']:.0f} ms, {again['bytes']} bytes")  # fmt: skip
    return seen


def _summary(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    interactive = sorted(s["interactive_ms"] for s in samples)
    return {
        "load": name,
        "loads": len(samples),
        "bytes": max(s["bytes"] for s in samples),
        "body_bytes": max(s["body_bytes"] for s in samples),
        "requests": max(s["requests"] for s in samples),
        "dom_content_loaded_ms_median": statistics.median(
            s["dom_content_loaded_ms"] for s in samples
        ),
        "interactive_ms_median": statistics.median(interactive),
        "interactive_ms_max": interactive[-1],
    }


def main(
    loads: Annotated[int, typer.Option(help="Measured loads of each kind.")] = 10,
    jobs: Annotated[int, typer.Option(help="Finished voice notes the jobs table lists.")] = 20,
    output: FiguresPath = OUT,
) -> None:
    """Measure the console's first load: bytes received and time until it can be used."""
    if not CHROMIUM.is_file():
        progress.print(f"[red]{CHROMIUM} is missing: `make tools` installs Debian's chromium")
        sys.exit(1)
    with started_stack(None, purpose="console benchmark") as running:
        progress.print(f"[dim]uploading {jobs} voice notes")
        ids = [str(running.client.submit(VOICE_NOTE, {})["id"]) for _ in range(jobs)]
        for job_id in ids:
            running.client.wait(job_id, poll=0.2)
        time.sleep(1)  # the workers' last writes settle
        before = loadavg()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            samples = measure(browser, running, loads)
            browser.close()
    rows = [_summary(name, found) for name, found in samples.items()]
    table = new_table(
        f"The console's load in headless Chromium on loopback ({loads} loads each)",
        ("load", "bytes (max)", "bodies", "requests", "DOMContentLoaded ms",
         "interactive ms (median)", "interactive ms (max)"),
        left=("load",),
    )  # fmt: skip
    for r in rows:
        table.add_row(
            r["load"], f"{r['bytes']:,}", f"{r['body_bytes']:,}", str(r["requests"]),
            f"{r['dom_content_loaded_ms_median']:.0f}", f"{r['interactive_ms_median']:.0f}",
            f"{r['interactive_ms_max']:.0f}",
        )  # fmt: skip
    console.print(table)
    worst_bytes = max(r["bytes"] for r in rows)
    worst_ms = max(r["interactive_ms_max"] for r in rows)
    console.print(
        f"Under {BYTES_TARGET // 1024} KB: "
        + ("[green]met" if worst_bytes < BYTES_TARGET else "[red]not met")
        + f" ({worst_bytes / 1024:.1f} KB at most); interactive under {SECONDS_TARGET:.0f} s: "
        + ("[green]met" if worst_ms < SECONDS_TARGET * 1000 else "[red]not met")
        + f" ({worst_ms:.0f} ms at most)"
    )
    document = {"git": git_revision(), "loadavg_before": before, "jobs_listed": jobs,
                "results": rows, "samples": samples}  # fmt: skip
    write_json(output, document)


if __name__ == "__main__":
    typer.run(main)
