"""The `voxflow` command: run the stack, manage keys, submit recordings."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from voxflow.cli.client import ApiCallError, VoxflowClient
from voxflow.cli.stack import Stack, read_stack_info
from voxflow.settings import StorageSettings

app = typer.Typer(help="Voxflow: audio to transcripts and notes.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
DEFAULT_DATA_DIR = StorageSettings().data_dir
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path, typer.Option(envvar="VOXFLOW_DATA_DIR", help="Data directory of the embedded stack.")
]


def _database_url(data_dir: Path) -> str:
    url = os.environ.get("VOXFLOW_DATABASE_URL")
    if url:
        return url
    info = read_stack_info(data_dir)
    if info is None:
        err.print("[red]No database: set VOXFLOW_DATABASE_URL or start `voxflow run` first.")
        raise typer.Exit(2)
    return info.database_url


@app.command()
def migrate(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply database migrations."""
    from voxflow.migrate import upgrade

    upgrade(_database_url(data_dir))
    console.print("[green]database is up to date")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Create an API key and print it (it is stored hashed and cannot be shown again)."""
    from voxflow.apikeys import issue_key
    from voxflow.db import make_engine, make_sessionmaker, session_scope

    engine = make_engine(_database_url(data_dir), pool_size=1)
    with session_scope(make_sessionmaker(engine)) as session:
        issued = issue_key(session, tenant, name)
    engine.dispose()
    console.print(issued.secret, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's first characters (vf_ + 8).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Revoke keys by their public prefix."""
    from voxflow.db import make_engine, make_sessionmaker, session_scope
    from voxflow.jobs.repository import revoke_api_key

    engine = make_engine(_database_url(data_dir), pool_size=1)
    with session_scope(make_sessionmaker(engine)) as session:
        count = revoke_api_key(session, prefix)
    engine.dispose()
    console.print(f"revoked {count} key(s)")


@app.command()
def run(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: str = "127.0.0.1",
    ingest_port: int = 8000,
    status_port: int = 8001,
    metrics_port_base: Annotated[
        int, typer.Option(help="Workers' and sweeper's /metrics on base+1..3 (0: free ports).")
    ] = 9100,
) -> None:
    """Run PostgreSQL, Redis and all four services in the foreground (Ctrl-C stops)."""
    stack = Stack(
        data_dir=data_dir, host=host, ingest_port=ingest_port, status_port=status_port,
        metrics_port_base=metrics_port_base,
    )  # fmt: skip
    info = stack.start()
    console.print(
        Panel.fit(
            f"ingest API  {info.ingest_url}/docs\nstatus API  {info.status_url}/docs\n"
            f"database    {info.database_url}\nbroker      {info.redis_url}\n"
            f"metrics     {' '.join(info.metrics_urls.values())}\n\n"
            "create a key: voxflow keys create --tenant demo",
            title="Voxflow is running (Ctrl-C stops)",
        )
    )
    try:
        stack.wait()
    finally:
        console.print("stopping...")
        stack.stop()


@app.command()
def sweeper() -> None:
    """Run the sweeper loop (re-enqueues jobs whose message or worker vanished)."""
    from voxflow.sweeper import run_forever

    run_forever()


def _options(
    tasks: list[str] | None, language: str | None, instruction: str | None, live: bool = False
) -> dict[str, Any]:
    options: dict[str, Any] = {"tasks": tasks or []}
    if live:  # someone watches: the worker publishes a long recording's first words sooner
        options["live"] = True
    if language:
        options["language"] = language
    if instruction:
        options["instruction"] = instruction
    return options


def _follow(client: VoxflowClient, job_id: str) -> dict[str, Any]:
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
                progress.console.print(
                    f"[dim]{minutes:02d}:{seconds:02d}[/] {data['text'].strip()}"
                )
    return client.job(job_id)


def _print_outcome(client: VoxflowClient, job: dict[str, Any]) -> None:
    if job["status"] != "completed":
        error = job.get("error") or {}
        err.print(f"[red]job {job['status']}: {error.get('code')}: {error.get('message')}")
        raise typer.Exit(1)
    console.print(Panel(client.transcript(job["id"], "txt").strip(), title="Transcript"))
    for result in client.results(job["id"])["results"]:
        title = f"{result['task']} ({result['provider']} / {result['model']})"
        console.print(Panel(result["output"].strip(), title=title))


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Recording.")],
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="summary, diary, action_items, custom")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Force the spoken language.")] = None,
    instruction: Annotated[str | None, typer.Option(help="Instruction for `custom`.")] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="URL to POST to when the job finishes (docs/webhooks.md).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait and print the results.")] = False,
    api_key: Annotated[str, typer.Option(envvar="VOXFLOW_API_KEY", help="API key.")] = "",
    ingest_url: Annotated[str, typer.Option(envvar="VOXFLOW_INGEST_URL")] = "http://127.0.0.1:8000",
    status_url: Annotated[str, typer.Option(envvar="VOXFLOW_STATUS_URL")] = "http://127.0.0.1:8001",
) -> None:
    """Upload a recording; with --wait, show progress and print transcript and notes."""
    client = VoxflowClient(ingest_url, status_url, api_key)
    try:
        accepted = client.submit(
            file, _options(task, language, instruction, live=wait), webhook_url
        )
        console.print(f"job [bold]{accepted['id']}[/] queued ({accepted['duration_seconds']:.1f}s)")
        if wait:
            _print_outcome(client, _follow(client, str(accepted["id"])))
    except ApiCallError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@app.command()
def demo(
    sample: Annotated[Path, typer.Argument(exists=True, dir_okay=False)] = Path(
        "samples/voice_note.ogg"
    ),
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Start the embedded stack, submit a sample, print transcript and notes, stop."""
    from voxflow.apikeys import issue_key
    from voxflow.db import make_engine, make_sessionmaker, session_scope

    started = time.perf_counter()
    stack = Stack(
        data_dir=data_dir,
        ingest_port=_free_port(),
        status_port=_free_port(),
        log_dir=data_dir / "logs",
        metrics_port_base=0,
    )
    with console.status("starting PostgreSQL, Redis and the four services..."):
        info = stack.start()
    try:
        engine = make_engine(info.database_url, pool_size=1)
        with session_scope(make_sessionmaker(engine)) as session:
            key = issue_key(session, "demo", "make demo").secret
        engine.dispose()
        client = VoxflowClient(info.ingest_url, info.status_url, key)
        console.print(
            f"stack up in {time.perf_counter() - started:.1f}s (service logs in "
            f"{data_dir / 'logs'}); uploading {sample}"
        )
        uploaded = time.perf_counter()
        accepted = client.submit(
            sample, {"tasks": ["summary", "diary", "action_items"], "live": True}
        )
        job = _follow(client, str(accepted["id"]))
        upload_to_done = time.perf_counter() - uploaded
        _print_outcome(client, job)
        console.print(
            f"upload to completed: {upload_to_done:.2f}s for {accepted['duration_seconds']:.1f}s "
            f"of audio; demo total so far {time.perf_counter() - started:.1f}s"
        )
    finally:
        stack.stop()


def main() -> None:
    """Entry point of the `voxflow` script."""
    app()


if __name__ == "__main__":
    main()
