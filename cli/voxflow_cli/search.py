"""`voxflow search`: find words in every transcript of the tenant (`GET /v1/search`).

Kept small on purpose: the endpoint is young, and its shape lives in two places here, the
fields read in `search` and the mark-up read in `highlight`.
"""

from __future__ import annotations

import html
import re
from itertools import islice
from typing import Annotated

import typer
from rich.text import Text

from voxflow_cli.client import PAGE_SIZE
from voxflow_cli.common import (
    STATUS_URL,
    ApiKey,
    Json,
    StatusUrl,
    clock,
    connect,
    console,
    err,
    print_json,
    reporting,
)

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*>")
MATCH_STYLE = "bold black on yellow"


def highlight(snippet: str) -> Text:
    """A snippet for the terminal: `<mark>` spans highlighted, other tags dropped, entities
    decoded (the snippet is HTML, so that a browser can show it as is)."""
    text, marked, position = Text(), False, 0
    for tag in _TAG.finditer(snippet):
        text.append(html.unescape(snippet[position : tag.start()]), MATCH_STYLE if marked else "")
        if tag.group(2).lower() == "mark":
            marked = not tag.group(1)
        position = tag.end()
    text.append(html.unescape(snippet[position:]), MATCH_STYLE if marked else "")
    return text


def search(
    query: Annotated[
        str, typer.Argument(metavar="QUERY", help="Words to find.", show_default=False)
    ],
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many matches.")] = 20,
    json_output: Json = False,
    api_key: ApiKey = "",
    status_url: StatusUrl = STATUS_URL,
) -> None:
    """Search your transcripts: each match with its file, time, speaker and job.

    --json prints a JSON array of the API's matches.
    """
    with reporting(connect(api_key, status_url)) as client:
        hits = list(islice(client.iter_search(query, min(limit, PAGE_SIZE)), limit))
    if json_output:
        print_json(hits)
        return
    if not hits:
        err.print("No matches.")
        return
    for hit in hits:
        where = Text.assemble(
            (hit.get("filename") or "-", "bold"), "  ",
            (f"{clock(hit['start'])}-{clock(hit['end'])}", "cyan"),
            f"  {hit.get('speaker_name') or hit['speaker']}" if hit.get("speaker") else "",
            ("  " + str(hit["job_id"]), "dim"),
        )  # fmt: skip
        console.print(where)
        console.print(Text("  ").append_text(highlight(hit.get("snippet") or hit["text"])))
