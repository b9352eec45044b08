"""The web console in a real browser, on `voxflow run`: upload, watch, play, read, search.

The stack is `voxflow run` as a user starts it (both APIs, both workers, the sweeper) on a
database of its own, with its notes written by the offline local provider. The console is
opened at the status API's address and uploads to the ingestion API, another origin, as the
stack's default CORS setting allows. Screenshots go to a temporary directory, or to
docs/screenshots/ with VOXFLOW_UPDATE_SCREENSHOTS=1 (the README shows them).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from faster_whisper import decode_audio
from playwright.sync_api import Locator, Page, expect

from tests.conftest import ROOT, SAMPLES
from tests.console.conftest import DESKTOP, PHONE, Watched
from tests.support.servers import Servers, scratch_database
from tests.support.stackrun import RunningStack
from voxflow.apikeys import issue_key
from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.embedded import redis_client_url

pytestmark = pytest.mark.e2e

JOB_TIMEOUT = 180_000  # ms: a job through both workers, with the machine busy
SCREENSHOTS = ROOT / "docs" / "screenshots"


@dataclass
class Console:
    """The running stack and two tenants' keys: A (the stack's own) and B."""

    stack: RunningStack
    key_a: str
    key_b: str
    b_jobs: dict[str, str]  # B's finished jobs by file name, uploaded over HTTP

    @property
    def url(self) -> str:
        """Where the console is: the status API's root."""
        return self.stack.stack.status_url + "/"


def _upload(stack: RunningStack, key: str, name: str, tasks: list[str]) -> str:
    response = httpx.post(
        f"{stack.stack.ingest_url}/v1/jobs", headers={"Authorization": f"Bearer {key}"},
        files={"file": (name, (SAMPLES / name).read_bytes(), "audio/ogg")},
        data={"options": json.dumps({"tasks": tasks})}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


@pytest.fixture(scope="module")
def console(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`voxflow run` on a fresh database; tenant B has two finished jobs."""
    workdir = tmp_path_factory.mktemp("console")
    broker = redis.Redis.from_url(redis_client_url(servers.redis_url))
    # The default router: notes come from the offline local provider.
    env = {k: v for k, v in os.environ.items()
           if k not in ("VOXFLOW_LLM_DEPLOYMENTS", "VOXFLOW_LLM_CONFIG_FILE")}  # fmt: skip
    with scratch_database(servers.postgres_admin_url) as database_url:
        stack = RunningStack(workdir, env | {"VOXFLOW_DATABASE_URL": database_url}, broker)
        with stack:
            key_a = stack.auth["Authorization"].removeprefix("Bearer ")
            engine = make_engine(database_url, pool_size=1)
            with session_scope(make_sessionmaker(engine)) as session:
                key_b = issue_key(session, "console-b", "console-test").secret
            engine.dispose()
            b_jobs = {
                "voice_note.ogg": _upload(stack, key_b, "voice_note.ogg", ["summary"]),
                "meeting.ogg": _upload(stack, key_b, "meeting.ogg", ["summary", "action_items"]),
            }
            stack.auth = {"Authorization": f"Bearer {key_b}"}  # stack.wait() reads as B
            for job_id in b_jobs.values():
                assert stack.wait(job_id)["status"] == "completed", stack.tail()
            yield Console(stack, key_a, key_b, b_jobs)
    broker.close()


def sign_in(watched: Watched, console: Console, key: str, route: str = "") -> Page:
    """Open the console and save `key` for the tab."""
    page = watched.page
    page.goto(console.url + route)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Save key").click()
    expect(page.locator("#announce")).to_have_text("Key saved for this tab.")
    return page


def row(page: Page, name: str) -> Locator:
    """The jobs table's row of the file `name` (the newest, if several)."""
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True)).first


def segments(page: Page) -> Locator:
    """The transcript's segment buttons."""
    return (
        page.get_by_role("region", name="Transcript").get_by_role("listitem").get_by_role("button")
    )


def player_time(page: Page) -> float:
    """Where the player is, once the recording is loaded."""
    page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    seconds: float = page.evaluate("document.querySelector('audio').currentTime")
    return seconds


def drop_file(page: Page, path: Path) -> None:
    """Drop a file on the page, as from a file manager."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([name, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "audio/ogg" }));
            return transfer;
        }""",
        [path.name, data],
    )
    page.dispatch_event("main", "drop", {"dataTransfer": transfer})


def test_the_key_is_kept_for_the_tab_unless_remembered(
    console: Console, open_page: Callable[..., Watched]
) -> None:
    page = sign_in(open_page(), console, console.key_a)
    stored = (
        "() => [sessionStorage.getItem('voxflow.api_key'), localStorage.getItem('voxflow.api_key')]"
    )
    assert page.evaluate(stored) == [console.key_a, None]
    page.reload()  # a tab keeps its session storage
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    page.get_by_text("API key saved for this tab").click()  # unfold the form
    page.get_by_label("Remember on this device").check()
    page.get_by_role("button", name="Save key").click()
    assert page.evaluate(stored) == [None, console.key_a]
    page.get_by_text("API key saved on this device").click()
    page.get_by_role("button", name="Forget key").click()
    assert page.evaluate(stored) == [None, None]
    expect(page.get_by_role("heading", name="Welcome to Voxflow")).to_be_visible()


def test_upload_watch_open_play_and_read_the_notes(
    console: Console, open_page: Callable[..., Watched]
) -> None:
    page = sign_in(open_page(), console, console.key_a)
    page.evaluate("window.stayed = true")  # gone if the page were reloaded
    page.get_by_label("Summary").check()
    page.get_by_label("Audio file").set_input_files(SAMPLES / "voice_note.ogg")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#announce")).to_have_text("Uploaded voice_note.ogg.")
    # The meeting is dropped on the page, with two notes asked for.
    page.get_by_label("Action items").check()
    drop_file(page, SAMPLES / "meeting.ogg")
    expect(page.get_by_text("Ready: meeting.ogg")).to_be_visible()
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#announce")).to_have_text("Uploaded meeting.ogg.")
    for name in ("voice_note.ogg", "meeting.ogg"):
        expect(row(page, name).locator(".badge")).to_have_text("completed", timeout=JOB_TIMEOUT)
        expect(row(page, name).get_by_role("progressbar")).to_have_attribute("value", "100")
    assert page.evaluate("window.stayed") is True  # polled, never reloaded

    page.get_by_role("link", name="meeting.ogg", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("meeting.ogg")
    expect(segments(page)).to_have_count(2)
    second = segments(page).nth(1)
    expect(second).to_contain_text("0:27 Please read the budget")
    start = float(second.get_attribute("data-start") or "nan")
    assert player_time(page) == 0
    second.click()
    page.wait_for_function(
        f"() => Math.abs(document.querySelector('audio').currentTime - {start}) < 0.5"
    )
    expect(second).to_have_attribute("aria-current", "true")
    expect(segments(page).first).not_to_have_attribute("aria-current", "true")

    notes = page.get_by_role("region", name="Notes")
    expect(notes.get_by_role("heading", name="Summary")).to_be_visible()
    expect(notes.get_by_role("heading", name="Action items")).to_be_visible()
    expect(notes.get_by_text("local / extractive-v1").first).to_be_visible()
    expect(notes.locator("[data-task=action_items] ul")).to_contain_text("read the budget")
    expect(notes).to_contain_text("Good morning everyone")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("generating → completed")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download SRT").click()
    assert download.value.suggested_filename == "meeting.srt"
    assert Path(download.value.path()).read_text().startswith("1\n00:00:00,000 --> ")


def long_recording(path: Path, repeats: int) -> Path:
    """The meeting said `repeats` times over, as 16 kHz WAV (36 s each)."""
    samples = np.tile(decode_audio(str(SAMPLES / "meeting.ogg")), repeats)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def test_a_running_job_streams_its_words_and_can_be_canceled(
    console: Console, open_page: Callable[..., Watched], tmp_path: Path
) -> None:
    # 18 minutes: the worker decodes 16 windows (8 minutes) at a time, so the first words
    # come well before the end.
    recording = long_recording(tmp_path / "long meeting.wav", 30)
    page = sign_in(open_page(), console, console.key_a)
    page.get_by_label("Audio file").set_input_files(recording)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(row(page, recording.name).locator(".badge")).to_have_text("transcribing", timeout=60_000)
    row(page, recording.name).get_by_role("link").click()
    badge = page.locator(".job-meta .badge")
    expect(badge).to_have_text("transcribing")
    # Segments arrive on the live stream while the job runs (no transcript is stored yet).
    expect(segments(page).first).to_be_visible(timeout=60_000)
    # Progress follows at the heartbeat's next progress write (the first segment goes at once).
    progress = page.get_by_role("progressbar", name="Progress")
    expect(progress).to_have_attribute("value", re.compile(r"^[1-9][0-9]*$"), timeout=30_000)
    expect(badge).to_have_text("transcribing")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(badge).to_have_text("canceled")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("transcribing → canceled")
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_hidden()

    page.get_by_role("link", name="← Jobs").click()
    expect(row(page, recording.name).locator(".badge")).to_have_text("canceled")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete {recording.name}").click()
    expect(page.get_by_role("link", name=recording.name)).to_have_count(0)
    expect(page.locator("#announce")).to_have_text(f"{recording.name} was deleted.")


def test_record_uploads_the_take(console: Console, open_page: Callable[..., Watched]) -> None:
    page = sign_in(open_page(), console, console.key_a)
    page.get_by_role("button", name="Record", exact=True).click()
    stop = page.get_by_role("button", name="Stop recording")
    expect(stop).to_be_visible()
    time.sleep(2.5)  # Chromium's fake microphone plays a beep every second
    stop.click()
    take = page.get_by_role("row").filter(has=page.get_by_role("link", name="recording-"))
    expect(take).to_have_count(1, timeout=30_000)
    expect(take.get_by_role("link")).to_have_text(re.compile(r"^recording-\d{8}-\d{6}\.webm$"))
    expect(take.locator(".badge")).to_have_text("completed", timeout=JOB_TIMEOUT)
    expect(take.locator("td").nth(3)).to_have_text(re.compile(r"^0:0[1-6]$"))  # its duration


def test_search_opens_the_job_at_the_hit(
    console: Console, open_page: Callable[..., Watched]
) -> None:
    auth = {"Authorization": f"Bearer {console.key_b}"}
    status = console.stack.stack.status_url
    note = httpx.get(f"{status}/v1/jobs/{console.b_jobs['voice_note.ogg']}/results", headers=auth)
    assert "buy milk" in note.json()["results"][0]["output"]  # a phrase from the summary
    page = sign_in(open_page(), console, console.key_b, "#/search")
    page.get_by_label("Search transcripts").fill('"buy milk"')
    page.get_by_label("Search transcripts").press("Enter")
    hits = page.locator(".hit a")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("voice_note.ogg at 0:00")
    expect(hits.first.locator("mark")).to_have_text(["buy", "milk"])
    hits.first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("voice_note.ogg")
    assert console.b_jobs["voice_note.ogg"] in page.url
    assert player_time(page) == 0

    found = httpx.get(f"{status}/v1/search", params={"q": "read the budget"}, headers=auth).json()
    (hit,) = found["items"]
    page.goto(console.url + "#/search")
    page.get_by_label("Search transcripts").fill("read the budget")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(hits.first).to_contain_text("meeting.ogg at 0:27")
    hits.first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("meeting.ogg")
    assert page.url.endswith(f"#/jobs/{hit['job_id']}?t={hit['start']}")
    page.wait_for_function(
        f"() => Math.abs(document.querySelector('audio').currentTime - {hit['start']}) < 0.01"
    )
    expect(segments(page).nth(1)).to_have_attribute("aria-current", "true")


def test_another_tenants_job_is_not_found(
    console: Console, open_page: Callable[..., Watched]
) -> None:
    theirs = console.b_jobs["meeting.ogg"]
    page = sign_in(open_page(), console, console.key_a, f"#/jobs/{theirs}")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    page.goto(console.url + "#/jobs/not-a-job-id")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    # Its owner sees it at the same address.
    owner = sign_in(open_page(), console, console.key_b, f"#/jobs/{theirs}")
    expect(owner.get_by_role("heading", level=1)).to_have_text("meeting.ogg")


def test_queue_view(console: Console, open_page: Callable[..., Watched]) -> None:
    page = sign_in(open_page(), console, console.key_b, "#/queue")
    table = page.get_by_role("table")
    transcription = table.get_by_role("row").filter(has_text="Transcription")
    expect(transcription.get_by_role("cell")).to_have_text(["0", "0", "—", "1"])
    notes = table.get_by_role("row").filter(has_text="Notes")
    expect(notes.get_by_role("cell")).to_have_text(["0", "0", "—", "1"])


def _no_overflow(page: Page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: the page is {width[0]} px wide in {width[1]} px"


def test_phone_width_keyboard_and_screenshots(
    console: Console, open_page: Callable[..., Watched], tmp_path: Path
) -> None:
    folder = SCREENSHOTS if os.environ.get("VOXFLOW_UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    meeting = f"#/jobs/{console.b_jobs['meeting.ogg']}"
    for viewport in (PHONE, DESKTOP):
        page = sign_in(open_page(viewport), console, console.key_b)
        views = {
            "#/search?q=budget": page.locator(".hit"),
            "#/queue": page.get_by_role("row").filter(has_text="Transcription"),
            meeting: segments(page),
            "#/": row(page, "meeting.ogg").locator(".badge"),
        }
        for route, shown in views.items():
            page.goto(console.url + route)
            expect(shown.first).to_be_visible()
            _no_overflow(page)
        page.evaluate("document.getElementById('announce').textContent = ''")
        if viewport is PHONE:
            page.screenshot(path=folder / "console-phone.png", full_page=True)
    page.goto(console.url + meeting)
    expect(segments(page)).to_have_count(2)
    page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    segments(page).nth(1).click()
    page.evaluate("document.querySelector('audio').pause()")
    page.screenshot(path=folder / "console-desktop.png", full_page=True)

    # Every control is reached with Tab, and shows where the focus is.
    page.goto(console.url)
    expect(row(page, "meeting.ogg")).to_be_visible()
    expected = {"Jobs", "Search", "Queue", "Audio file", "Summary", "Upload", "Record", "Status",
                "meeting.ogg", "Delete meeting.ogg"}  # fmt: skip
    reached: set[str] = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        name, visible = page.evaluate(
            """() => {
                const e = document.activeElement;
                if (e === document.body) return [null, true];
                const style = getComputedStyle(e);
                return [e.getAttribute('aria-label') || e.labels?.[0]?.textContent || e.textContent,
                        style.outlineStyle !== 'none' && style.outlineWidth !== '0px'];
            }"""
        )
        assert visible, f"no visible focus on {name!r}"
        reached.add((name or "").strip())
        if expected <= reached:
            break
    assert expected <= reached, expected - reached
