"""The console's hand-written pieces, run in Chromium: the SSE parser (also on a real job
stream), the Markdown renderer and the search snippet's highlighting, with hostile input.

The status API runs in-process under uvicorn (no workers): the modules are loaded from it,
as the page loads them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route
from sqlalchemy.orm import Session, sessionmaker

from status_api.app import create_app
from tests.console.conftest import Watched
from tests.services.status_api.conftest import JobMaker
from tests.support.served import served
from voxflow.jobs.states import JobStatus


@pytest.fixture(scope="module")
def status_url() -> Iterator[str]:
    """The status API (and so the console) under a real server."""
    with served(create_app()) as address:
        yield f"http://{address}"


@pytest.fixture
def page(open_page: Callable[..., Watched], status_url: str) -> Page:
    """The console, without a key."""
    watched = open_page()
    watched.page.goto(status_url + "/")
    watched.page.get_by_role("heading", name="Welcome to Voxflow").wait_for()
    return watched.page


PARSE = """async (chunks) => {
    const { SseParser } = await import("/console/sse.js");
    const seen = [];
    const parser = new SseParser((event) => seen.push(event));
    for (const chunk of chunks) parser.push(chunk);
    return { seen, retry: parser.retry, lastEventId: parser.lastEventId };
}"""


def parse(page: Page, chunks: list[str]) -> dict[str, Any]:
    """What the parser makes of the chunks, fed one by one."""
    result: dict[str, Any] = page.evaluate(PARSE, chunks)
    return result


STREAM = (
    ": ping\r\n"
    'id: 1.0.0\r\nevent: state\r\ndata: {"to": "queued"}\r\n\r\n'
    'event: progress\ndata: {"progress": 40}\n\n'
    "id: 2.1.0\rdata: line one\rdata:line two\rdata\r\r"
    "retry: 2500\nid: bad\0id\nevent: end\ndata: {}\n\n"
    "event: unfinished\ndata: never dispatched\n"
)
EXPECTED = [
    {"type": "state", "data": '{"to": "queued"}', "id": "1.0.0"},
    {"type": "progress", "data": '{"progress": 40}', "id": "1.0.0"},  # no id: the last one
    {"type": "message", "data": "line one\nline two\n", "id": "2.1.0"},
    {"type": "end", "data": "{}", "id": "2.1.0"},  # an id with NUL is ignored
]


@pytest.mark.parametrize("size", [len(STREAM), 1, 2, 3, 7, 64])
def test_the_sse_parser_reads_any_chunking(page: Page, size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    result = parse(page, chunks)
    assert result["seen"] == EXPECTED
    assert result["retry"] == 2500
    assert result["lastEventId"] == "2.1.0"


def test_a_crlf_split_between_chunks_is_one_line_end(page: Page) -> None:
    result = parse(page, ["data: a\r", "\ndata: b\r", "\n\r", "\n"])
    assert result["seen"] == [{"type": "message", "data": "a\nb", "id": ""}]


FOLLOW = """async ([key, jobId]) => {
    sessionStorage.setItem("voxflow.api_key", key);
    const { followJob } = await import("/console/sse.js");
    const seen = [];
    await followJob(jobId, (type, data) => seen.push([type, data]), new AbortController().signal);
    return seen;
}"""


def test_following_a_real_job_stream(
    page: Page, status_url: str, sessions: sessionmaker[Session], tenant: str, auth: dict[str, str]
) -> None:
    jobs = JobMaker(sessions, tenant)
    (job_id,) = jobs.queued(tasks=["summary"])
    jobs.transcribe(job_id)
    jobs.claim(job_id, JobStatus.TRANSCRIBED)
    jobs.add_result(job_id, "summary", 100, 20, "0.0012")
    jobs.finish_generation(job_id)
    key = auth["Authorization"].removeprefix("Bearer ")
    seen = page.evaluate(FOLLOW, [key, str(job_id)])
    # The same events as a plain HTTP client reads from the stream.
    raw = httpx.get(f"{status_url}/v1/jobs/{job_id}/stream", headers=auth, timeout=30).text
    types = [line.removeprefix("event: ") for line in raw.splitlines() if line.startswith("event:")]
    assert [event for event, _ in seen] == types
    assert types[-1] == "end"
    assert seen[-1][1] == {"status": "completed", "error": None}
    assert [data["text"] for event, data in seen if event == "segment"] == [
        " Hello there.", " Fish & <chips>.", " General Kenobi."
    ]  # fmt: skip
    assert [data["task"] for event, data in seen if event == "note"] == ["summary"]


CUT = [
    'id: 1.0.0\nevent: state\ndata: {"to": "queued"}\n\n'
    'id: 1.1.0\nevent: segment\ndata: {"id": 0}\n\nevent: progress\ndata: {"progress": 5}\n\n',
    'id: 2.1.0\nevent: end\ndata: {"status": "completed", "error": null}\n\n',
]


def test_a_cut_stream_resumes_after_its_last_event(page: Page) -> None:
    asked: list[str | None] = []

    def answer(route: Route) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        body = CUT[len(asked) - 1]  # the first answer ends without an `end` event
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/v1/jobs/*/stream", answer)
    seen = page.evaluate(FOLLOW, ["vf_key", str(uuid.uuid4())])
    assert asked == [None, "1.1.0"]  # the last id sent, not the progress (which has none)
    assert [event for event, _ in seen] == ["state", "segment", "progress", "end"]


def test_a_refused_stream_is_not_retried(page: Page) -> None:
    asked: list[str] = []

    def refuse(route: Route) -> None:
        asked.append(route.request.url)
        body = json.dumps({"error": {"code": "job_not_found", "message": "No job."}})
        route.fulfill(status=404, headers={"Content-Type": "application/json"}, body=body)

    page.route("**/v1/jobs/*/stream", refuse)
    with pytest.raises(PlaywrightError, match="No job"):
        page.evaluate(FOLLOW, ["vf_key", str(uuid.uuid4())])
    assert len(asked) == 1


RENDER = """async ([module, name, text]) => {
    const imported = await import(module);
    const box = document.createElement("div");
    const made = imported[name](text);
    box.append(...(Array.isArray(made) ? made : [made]));
    return box.innerHTML;
}"""


def markdown(page: Page, text: str) -> str:
    """The HTML the renderer builds for a note."""
    html: str = page.evaluate(RENDER, ["/console/markdown.js", "renderMarkdown", text])
    return html


def test_markdown_covers_what_notes_use(page: Page) -> None:
    note = (
        "# Plan\n\nWe **agreed** on *Friday* and `v2`.\nSecond line.\n\n"
        "- call the _dentist_\n- send the **budget** report\n  by Friday\n\n"
        "1. first\n2) second\n\n> quoted\n\n```\ncode <here>\n```\n### Small"
    )
    assert markdown(page, note) == (
        "<h4>Plan</h4>"
        "<p>We <strong>agreed</strong> on <em>Friday</em> and <code>v2</code>.<br>Second line.</p>"
        "<ul><li>call the <em>dentist</em></li>"
        "<li>send the <strong>budget</strong> report by Friday</li></ul>"
        "<ol><li>first</li><li>second</li></ol>"
        "<blockquote><p>quoted</p></blockquote>"
        "<pre><code>code &lt;here&gt;</code></pre>"
        "<h6>Small</h6>"
    )  # fmt: skip


def test_markdown_never_makes_markup_of_a_note(page: Page) -> None:
    hostile = (
        '<img src=x onerror="window.pwned=1">\n\n**<script>window.pwned=2</script>**\n\n'
        "- [link](javascript:alert(1)) <a href='x'>a</a>\n\n# <b>heading</b>\n\n`<i>`"
    )
    html = markdown(page, hostile)
    assert "<img" not in html
    assert "<script" not in html
    assert "<a " not in html
    assert "<b>" not in html
    assert '&lt;img src=x onerror="window.pwned=1"&gt;' in html
    assert "<strong>&lt;script&gt;window.pwned=2&lt;/script&gt;</strong>" in html
    assert "<h4>&lt;b&gt;heading&lt;/b&gt;</h4>" in html
    assert "<code>&lt;i&gt;</code>" in html
    assert page.evaluate("window.pwned") is None
    # Emphasis needs its markers on words: arithmetic and snake_case stay as they are.
    assert markdown(page, "2 * 3 * 4 and snake_case_name") == "<p>2 * 3 * 4 and snake_case_name</p>"


def snippet(page: Page, text: str) -> str:
    """The HTML the search view builds for a snippet."""
    html: str = page.evaluate(RENDER, ["/console/search.js", "highlighted", text])
    return html


def test_snippets_keep_only_their_marks(page: Page) -> None:
    assert snippet(page, "Fish &amp; &lt;chips&gt; <mark>buy</mark> <mark>milk</mark>&#39;s") == (
        "Fish &amp; &lt;chips&gt; <mark>buy</mark> <mark>milk</mark>'s"
    )
    # Were the API's escaping ever wrong, a tag would still be text, not markup.
    hostile = "<img src=x onerror=alert(1)><mark><b>x</b></mark></mark>&#x3c;script&#x3e;"
    assert snippet(page, hostile) == (
        "&lt;img src=x onerror=alert(1)&gt;<mark>&lt;b&gt;x&lt;/b&gt;</mark>&lt;script&gt;"
    )
