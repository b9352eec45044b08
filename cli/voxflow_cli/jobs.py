"""Commands about jobs already submitted: list, show, transcript, notes, cancel, delete."""

from __future__ import annotations

import json
import sys
from itertools import islice
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from voxflow.jobs.states import JobStatus
from voxflow_cli.client import PAGE_SIZE
from voxflow_cli.common import (
    STATUS_URL,
    ApiKey,
    Json,
    StatusUrl,
    TranscriptFormat,
    age,
    clock,
    connect,
    console,
    err,
    print_json,
    reporting,
    styled_status,
    when,
)

JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id.", show_default=False)]


def jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 20,
    every: Annotated[bool, typer.Option("--all", help="Every job (ignores --limit).")] = False,
    json_output: Json = False,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """List your jobs, newest first.

    --json prints a JSON array of the jobs, each as `GET /v1/jobs/{id}` shows it.
    """
    with reporting(connect(api_key, status_url)) as client:
        page_size = PAGE_SIZE if every else min(limit, PAGE_SIZE)
        pages = client.iter_jobs(status.value if status else None, page_size)
        listed = list(pages if every else islice(pages, limit))
    if json_output:
        print_json(listed)
        return
    if not listed:
        err.print("No jobs." if status is None else f"No {status.value} jobs.")
        return
    # Every column but the file name keeps its width (an id is what the other commands take);
    # the file name gets what is left of the terminal, shortened to fit: 8 characters at 80.
    fixed = {"status": 12, "progress": 8, "duration": 8, "age": 3}
    spare = console.width - 36 - sum(fixed.values()) - len(fixed) - 1
    table = Table(box=None, pad_edge=False, collapse_padding=True)
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("file", no_wrap=True, overflow="ellipsis", max_width=max(8, spare))
    for name, width in fixed.items():
        table.add_column(
            name, no_wrap=True, min_width=width, justify="left" if name == "status" else "right"
        )
    for job in listed:
        table.add_row(
            job["id"], escape(job["source"]["filename"] or "-"), styled_status(job["status"]),
            f"{job['progress']}%", clock(job["source"]["duration_seconds"]),
            age(job["created_at"]),
        )  # fmt: skip
    console.print(table)


def show(
    job_id: JobId,
    json_output: Json = False,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Show one job: state, stage times, options and timeline.

    --json prints the job as the API shows it, with its timeline added as `events`.
    """
    with reporting(connect(api_key, status_url)) as client:
        job = client.job(job_id)
        events = client.events(job_id)
    if json_output:
        print_json({**job, "events": events})
        return
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    status = styled_status(job["status"])
    if job["status"] not in ("completed", "failed", "canceled"):
        status += f" {job['progress']}%"
    source = job["source"]
    rows = [
        ("file", escape(source["filename"] or "-")),
        ("status", status),
        ("audio", f"{clock(source['duration_seconds'])}, {source['size_bytes']:,} bytes"),
        ("created", f"{_local(job['created_at'])} ({age(job['created_at'])} ago)"),
        ("stages", _stage_times(job)),
        ("options", escape(json.dumps(job["options"]))),
    ]
    if job.get("error"):
        rows.append(("error", f"[red]{escape(job['error']['code'])}[/]: {job['error']['message']}"))
    if job.get("webhook_url"):
        rows.append(("webhook", escape(job["webhook_url"])))
    for name, value in rows:
        facts.add_row(name, value)
    console.print(Panel(facts, title=f"job {job['id']}", title_align="left"))
    timeline = Table(
        "at", "change", "by", "detail", box=None, title="timeline", title_justify="left"
    )
    for event in events:
        before = event["from_status"] or "-"
        detail = escape(json.dumps(event["detail"])) if event["detail"] else ""
        timeline.add_row(
            _local(event["at"]), f"{before} -> {styled_status(event['to_status'])}",
            escape(event["actor"] or "-"), detail,
        )  # fmt: skip
    console.print(timeline)


def _local(value: str | None) -> str:
    moment = when(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _stage_times(job: dict[str, Any]) -> str:
    """How long the job waited, was transcribed and had its notes written, as far as known."""
    spans = [
        ("waited", job["created_at"], job["transcription_started_at"]),
        ("transcribed in", job["transcription_started_at"], job["transcribed_at"]),
        ("notes in", job["generation_started_at"], job["finished_at"]),
    ]
    parts = []
    for name, start, end in spans:
        began, ended = when(start), when(end)
        if began and ended:
            parts.append(f"{name} {(ended - began).total_seconds():.1f} s")
    return ", ".join(parts) or "-"


def transcript(
    job_id: JobId,
    fmt: Annotated[
        TranscriptFormat, typer.Option("--format", "-f", help="Transcript format.")
    ] = TranscriptFormat.TXT,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Print a job's transcript, as the API renders it in the format asked for."""
    with reporting(connect(api_key, status_url)) as client:
        text = client.transcript(job_id, fmt.value)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def notes(
    job_id: JobId,
    json_output: Json = False,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Show a job's notes, with their provider, tokens and cost.

    --json prints the API's results document (`GET /v1/jobs/{id}/results`).
    """
    from rich.markdown import Markdown  # a sixth of the command's start-up: only here

    with reporting(connect(api_key, status_url)) as client:
        found = client.results(job_id)
    if json_output:
        print_json(found)
        return
    if not found["results"]:
        finished = found["status"] in ("completed", "failed", "canceled")
        why = "the job asked for none (submit with -t summary)" if finished else "not yet"
        err.print(f"No notes: {why} (job {found['status']}).")
        return
    for result in found["results"]:
        usage = result["usage"]
        tokens = f"{usage['tokens_in']:,} in + {usage['tokens_out']:,} out tokens"
        subtitle = f"{result['provider']} / {result['model']} · {tokens} · ${usage['cost_usd']:.4f}"
        if result["cached"]:
            subtitle += " · cached"
        console.print(
            Panel(Markdown(result["output"]), title=f"[bold]{result['task']}", title_align="left",
                  subtitle=escape(subtitle), subtitle_align="right")
        )  # fmt: skip
    totals = found["totals"]
    console.print(
        f"[dim]{totals['calls']} LLM calls ({totals['failed_calls']} failed), "
        f"{totals['tokens_in']:,} + {totals['tokens_out']:,} tokens, ${totals['cost_usd']:.4f}"
    )


def cancel(
    job_id: JobId,
    json_output: Json = False,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Cancel a job that has not finished.

    --json prints the job afterwards.
    """
    with reporting(connect(api_key, status_url)) as client:
        job = client.cancel(job_id)
    if json_output:
        print_json(job)
    else:
        console.print(f"job {job['id']} {styled_status(job['status'])}")


def delete(
    job_id: JobId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: Json = False,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Delete a job with its audio, transcript, notes and timeline.

    Asks first, unless --yes. --json prints `{"id": ..., "deleted": true}`.
    """
    with reporting(connect(api_key, status_url)) as client:
        job = client.job(job_id)  # an unknown id is the API's 404 before any question
        if not yes:
            name = job["source"]["filename"] or "no name"
            typer.confirm(
                f"Delete job {job_id} ({name}, {job['status']}) and all it produced?",
                abort=True, err=True,
            )  # fmt: skip
        client.delete(job_id)
    if json_output:
        print_json({"id": job["id"], "deleted": True})
    else:
        console.print(f"deleted job {job['id']}")
