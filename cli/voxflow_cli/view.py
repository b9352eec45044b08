"""What `voxflow submit` shows on stderr for a batch: one overall bar, then a line per file."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

if TYPE_CHECKING:
    from voxflow_cli.batch import Item

_STATES = {
    "waiting": "[dim]waiting", "uploading": "uploading", "queued": "[yellow]queued",
    "transcribed": "[cyan]transcribed", "generating": "[cyan]writing notes",
    "canceled": "[magenta]canceled", "deleted": "[magenta]deleted",
}  # fmt: skip


class BatchView:
    """Redraws the batch as its items change (thread-safe: the upload and stream threads call
    `show`). On a terminal too small for a line per file, lines of finished files are hidden;
    the overall bar still counts them. Elsewhere (a log, CI) the final state is printed once."""

    def __init__(self, items: Sequence[Item], console: Console, *, wait: bool) -> None:
        self.items, self.wait = items, wait
        self._lock = threading.Lock()
        self.overall = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[tally]}"), TimeElapsedColumn(), console=console,
        )  # fmt: skip
        self._bar = self.overall.add_task(
            "transcribing" if wait else "uploading", total=len(items), tally=""
        )
        name = Column(no_wrap=True, overflow="ellipsis", max_width=60)
        self.lines = Progress(
            TextColumn("  {task.fields[name]}", markup=False, table_column=name),
            TextColumn("{task.fields[state]}"),
            console=console,
        )
        self._crowded = console.is_terminal and len(items) + 3 > console.height
        self._lines = {
            id(item): self.lines.add_task(
                "", total=None, name=str(item.recording.path), state=self.state(item)
            )
            for item in items
        }
        self.live = Live(Group(self.overall, self.lines), console=console, refresh_per_second=8)

    def __enter__(self) -> BatchView:
        self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live.stop()
        if not self.live.console.is_terminal:  # a log gets the final state, ending its line
            self.live.console.print()

    def finished(self, item: Item) -> bool:
        """Whether nothing more will happen to the item in this run."""
        return item.failed or item.status == "completed" or (not self.wait and bool(item.job_id))

    def state(self, item: Item, note: str = "") -> str:
        """The item's line, as rich markup."""
        if item.error is not None and item.failed:
            text = f"[red]{item.status}: {escape(item.error['code'])}"
        elif item.status == "completed":
            text = "[green]done" + "".join(f" -> {escape(str(p))}" for p in item.written[:1])
        elif item.status == "transcribing":
            text = f"[cyan]transcribing {item.progress}%"
        elif item.status == "queued" and not self.wait:
            text = f"[green]queued[/] [dim]{item.job_id}"
        else:
            text = _STATES.get(item.status, escape(item.status))
        return f"{text} [dim]({escape(note)})" if note else text

    def show(self, item: Item, note: str = "") -> None:
        """Redraw the item's line and the overall bar."""
        with self._lock:
            done = sum(1 for each in self.items if self.finished(each))
            failed = sum(1 for each in self.items if each.failed)
            tally = f"[green]{done - failed} ok[/]" + (f" [red]{failed} failed" if failed else "")
            self.overall.update(self._bar, completed=done, tally=tally)
            visible = not (self._crowded and self.finished(item) and not item.failed)
            self.lines.update(self._lines[id(item)], state=self.state(item, note), visible=visible)
