"""`voxflow submit`: upload recordings, follow their jobs, print or write the transcripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from voxflow_cli.batch import Batch, Item
from voxflow_cli.client import VoxflowClient
from voxflow_cli.common import (
    INGEST_URL,
    STATUS_URL,
    ApiKey,
    IngestUrl,
    Json,
    StatusUrl,
    TranscriptFormat,
    connect,
    console,
    err,
    fail,
    print_json,
    reporting,
)
from voxflow_cli.files import collect, plan_outputs
from voxflow_cli.view import BatchView

JOB_OPTIONS = "Job options"
OUTPUT = "Waiting and output"


def job_options(
    tasks: list[str] | None,
    language: str | None = None,
    instruction: str | None = None,
    *,
    live: bool = False,
    diarize: bool = False,
    speakers: int | None = None,
) -> dict[str, Any]:
    """The upload's `options` field; options left unset are not sent (the API's defaults)."""
    options: dict[str, Any] = {"tasks": tasks or []}
    if live:  # someone watches: the worker publishes a long recording's first words sooner
        options["live"] = True
    if language:
        options["language"] = language
    if instruction:
        options["instruction"] = instruction
    if diarize or speakers:
        options["diarize"] = True
    if speakers:
        options["speakers"] = speakers
    return options


def follow(client: VoxflowClient, job_id: str) -> dict[str, Any]:
    """Watch the job's live stream: a progress bar, and the words as they are transcribed
    (both on stderr: stdout keeps only the transcript and the notes)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task("queued", total=100)
        for event in client.watch(job_id):
            data = json.loads(event.data)
            if event.event == "progress":
                progress.update(bar, completed=data["progress"], description=data["status"])
            elif event.event == "state":
                done = 100 if data["to"] == "completed" else None
                progress.update(bar, description=data["to"], completed=done)
            elif event.event == "segment":
                minutes, seconds = divmod(int(data["start"]), 60)
                stamp = (f"{minutes:02d}:{seconds:02d} ", "dim")
                progress.console.print(Text.assemble(stamp, data["text"].strip()))
    return client.job(job_id)


def print_outcome(client: VoxflowClient, job: dict[str, Any]) -> None:
    """Transcript and notes on stdout, or the job's error on stderr and exit 1."""
    if job["status"] != "completed":
        error = job.get("error") or {}
        fail(error.get("code") or job["status"], error.get("message") or f"job {job['status']}")
    console.print(Panel(client.transcript(job["id"], "txt").strip(), title="Transcript"))
    for result in client.results(job["id"])["results"]:
        title = f"{result['task']} ({result['provider']} / {result['model']})"
        console.print(Panel(result["output"].strip(), title=title))


def submit(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            show_default=False,
            help="Recordings, folders (searched recursively for audio and video files, hidden "
            "ones skipped) and quoted globs such as 'calls/**/*.m4a'.",
        ),
    ],
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            "-t",
            rich_help_panel=JOB_OPTIONS,
            help="Notes to write: summary, diary, action_items, custom (repeatable).",
        ),
    ] = None,
    language: Annotated[
        str | None, typer.Option(rich_help_panel=JOB_OPTIONS, help="Spoken language (ISO code).")
    ] = None,
    instruction: Annotated[
        str | None, typer.Option(rich_help_panel=JOB_OPTIONS, help="Instruction for `custom`.")
    ] = None,
    diarize: Annotated[
        bool,
        typer.Option(
            "--diarize", rich_help_panel=JOB_OPTIONS, help="Find who spoke when (A, B, ...)."
        ),
    ] = False,
    speakers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            rich_help_panel=JOB_OPTIONS,
            help="The number of speakers, when known (implies --diarize).",
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=JOB_OPTIONS,
            help="URL to POST to when a job finishes (docs/webhooks.md).",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", rich_help_panel=OUTPUT, help="Wait for the jobs to finish.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            rich_help_panel=OUTPUT,
            help="Write the transcripts into this folder, keeping the recordings' "
            "relative folders (implies --wait).",
        ),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            rich_help_panel=OUTPUT,
            help="Write each transcript beside its recording (implies --wait).",
        ),
    ] = False,
    fmt: Annotated[
        TranscriptFormat,
        typer.Option("--format", "-f", rich_help_panel=OUTPUT, help="Format of written files."),
    ] = TranscriptFormat.TXT,
    concurrency: Annotated[
        int, typer.Option(min=1, max=32, rich_help_panel=OUTPUT, help="Uploads at once.")
    ] = 4,
    json_output: Json = False,
    api_key: ApiKey = "",
    ingest_url: IngestUrl = INGEST_URL,
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Upload recordings, and with --wait, --out or --write, wait for their transcripts.

    --out DIR and --write save each transcript (and its notes, with -t) as a file.
    One recording with --wait prints its transcript and notes on stdout. Several show one
    overall bar and a line per file on stderr, and print `JOB_ID<tab>FILE` per accepted file
    on stdout (with --json: an array with each file's job, status, error and written files).
    Exits 1 if any upload was refused or any job failed, naming the files and why.
    """
    if out is not None and write:
        fail("usage", "Give --out or --write, not both.", 2)
    try:
        recordings = collect(paths)
    except FileNotFoundError as exc:
        fail("no_such_file", f"{exc.args[0]}: no such file or folder, and no glob matches.", 2)
    if not recordings:
        fail("no_recordings", f"No audio or video files in {', '.join(paths)}.", 2)
    wait = wait or write or out is not None
    # One recording, shown on the terminal: the words as they come, then transcript and notes.
    single = len(recordings) == 1 and not (write or out is not None or json_output)
    options = job_options(
        task, language, instruction, live=single and wait, diarize=diarize, speakers=speakers
    )
    with reporting(connect(api_key, status_url, ingest_url)) as client:
        if single:
            accepted = client.submit(recordings[0].path, options, webhook_url)
            console.print(
                f"job [bold]{accepted['id']}[/] queued ({accepted['duration_seconds']:.1f}s)"
            )
            if wait:
                print_outcome(client, follow(client, str(accepted["id"])))
            return
        outputs = plan_outputs(recordings, fmt.value, out) if (write or out) else []
        items = [Item(recording) for recording in recordings]
        for item, output in zip(items, outputs, strict=False):
            item.output = output
        try:
            with BatchView(items, err, wait=wait) as view:
                Batch(
                    client, items, view, options, webhook_url=webhook_url, wait=wait,
                    fmt=fmt.value, concurrency=concurrency,
                ).run()  # fmt: skip
        except KeyboardInterrupt:
            err.print("interrupted: jobs already uploaded go on (`voxflow jobs` lists them)")
            raise typer.Exit(130) from None
    _report(items, json_output)


def _report(items: list[Item], json_output: bool) -> None:
    """What a batch gave: job ids (or JSON) on stdout, failures on stderr, the exit status."""
    if json_output:
        print_json([item.summary() for item in items])
    else:
        for item in items:
            if item.job_id:
                typer.echo(f"{item.job_id}\t{item.recording.path}")
    failed = [item for item in items if item.failed]
    if not failed:
        return
    err.print(f"[red]{len(failed)} of {len(items)} recordings failed:", soft_wrap=True)
    for item in failed:
        error = item.error or {"code": item.status, "message": f"job {item.status}"}
        where = "refused at upload" if item.status == "refused" else item.status
        err.print(
            f"  {item.recording.path}: {error['code']}: {error['message']} ({where})",
            markup=False, soft_wrap=True,
        )  # fmt: skip
    raise typer.Exit(1)
