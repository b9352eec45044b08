"""The `voxflow` command: run the stack, manage keys, submit recordings, read their results."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from voxflow.settings import StorageSettings
from voxflow_cli import jobs, search, submit
from voxflow_cli.client import VoxflowClient
from voxflow_cli.common import console, err

app = typer.Typer(
    help="Voxflow: audio to transcripts and notes.\n\n"
    "The API commands read the key from VOXFLOW_API_KEY and the APIs' addresses from "
    "VOXFLOW_INGEST_URL and VOXFLOW_STATUS_URL (default: a local `voxflow run`). They exit "
    "1 when the API refuses or a job fails, and 2 on a usage error such as a missing key.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
DEFAULT_DATA_DIR = StorageSettings().data_dir

DataDir = Annotated[
    Path, typer.Option(envvar="VOXFLOW_DATA_DIR", help="Data directory of the embedded stack.")
]


def _database_url(data_dir: Path) -> str:
    url = os.environ.get("VOXFLOW_DATABASE_URL")
    if url:
        return url
    from voxflow_cli.stack import read_stack_info

    info = read_stack_info(data_dir)
    if info is None:
        err.print("[red]No database: set VOXFLOW_DATABASE_URL or start `voxflow run` first.")
        raise typer.Exit(2)
    return info.database_url


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


def run(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: str = "127.0.0.1",
    ingest_port: int = 8000,
    status_port: int = 8001,
    metrics_port_base: Annotated[
        int, typer.Option(help="Workers' and sweeper's /metrics on base+1..4 (0: free ports).")
    ] = 9100,
) -> None:
    """Run PostgreSQL, Redis and all four services in the foreground (Ctrl-C stops)."""
    from voxflow_cli.stack import Stack

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


def sweeper() -> None:
    """Run the sweeper loop (re-enqueues jobs whose message or worker vanished)."""
    from sweeper.main import main as run_sweeper

    run_sweeper()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo(
    sample: Annotated[Path, typer.Argument(exists=True, dir_okay=False)] = Path(
        "samples/voice_note.ogg"
    ),
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Start the embedded stack, submit a sample, print transcript and notes, stop."""
    from voxflow.apikeys import issue_key
    from voxflow.db import make_engine, make_sessionmaker, session_scope
    from voxflow_cli.stack import Stack

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
        options = submit.job_options(["summary", "diary", "action_items"], live=True)
        accepted = client.submit(sample, options)
        job = submit.follow(client, str(accepted["id"]))
        upload_to_done = time.perf_counter() - uploaded
        submit.print_outcome(client, job)
        console.print(
            f"upload to completed: {upload_to_done:.2f}s for {accepted['duration_seconds']:.1f}s "
            f"of audio; demo total so far {time.perf_counter() - started:.1f}s"
        )
    finally:
        stack.stop()


# Help lists commands in this order: the daily ones first, then running the platform.
app.command(name="submit")(submit.submit)
app.command(name="jobs")(jobs.jobs)
app.command(name="show")(jobs.show)
app.command(name="transcript")(jobs.transcript)
app.command(name="notes")(jobs.notes)
app.command(name="search")(search.search)
app.command(name="cancel")(jobs.cancel)
app.command(name="delete")(jobs.delete)
app.command(name="run")(run)
app.command(name="demo")(demo)
app.add_typer(keys_app, name="keys")
app.command(name="migrate")(migrate)
app.command(name="sweeper")(sweeper)


def main() -> None:
    """Entry point of the `voxflow` script."""
    app()


if __name__ == "__main__":
    main()
