"""Browser tests of the web console: Debian's Chromium driven by Python Playwright.

Playwright never downloads a browser here: it launches `/usr/bin/chromium` (`make test`
installs Debian's package when it is missing). Without it the tests fail under CI and are
skipped elsewhere, as the infra tests do without Prometheus. Every page records what it
asked for and what the browser complained about: a request leaving this machine, or a
Content-Security-Policy violation, fails the test that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    ViewportSize,
    sync_playwright,
)

from tests.support.servers import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--autoplay-policy=no-user-gesture-required",  # the player may play without a click
    "--use-fake-device-for-media-stream",  # a microphone that plays a tone
    "--use-fake-ui-for-media-stream",  # and no permission prompt for it
    # No host name but this machine's resolves: nothing can be fetched from the internet.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=360, height=780)
LOCAL = ("http://127.0.0.1:", "http://localhost:", "blob:", "data:")


def require_chromium() -> Path:
    """Debian's Chromium; a failure under CI (the Makefile installs it), else a skip."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is not installed (`make test` installs Debian's chromium package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for this module's tests (one per module: Playwright's synchronous
    API keeps an event loop of its own, which should not outlive the module)."""
    executable = require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=BROWSER_ARGS)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page, what it requested, and what the browser reported as errors."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Nothing was fetched from beyond this machine, no policy was violated and no
        script failed."""
        remote = [url for url in self.requests if not url.startswith(LOCAL)]
        assert remote == [], f"the console fetched from elsewhere: {remote}"
        violations = [e for e in self.errors if "Content Security Policy" in e]
        assert violations == [], violations
        assert self.exceptions == [], self.exceptions


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Watched]]:
    """Opens pages in fresh browser contexts (no storage shared); checks them afterwards."""
    opened: list[Watched] = []

    def open_one(viewport: ViewportSize | None = None) -> Watched:
        context = browser.new_context(
            viewport=viewport or DESKTOP, locale="en-GB", timezone_id="UTC", accept_downloads=True
        )
        watched = Watched(context.new_page())

        def note(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.errors.append(message.text)

        def requested(request: Request) -> None:
            watched.requests.append(request.url)

        watched.page.on("console", note)
        watched.page.on("pageerror", lambda error: watched.exceptions.append(str(error)))
        watched.page.on("request", requested)
        opened.append(watched)
        return watched

    yield open_one
    for watched in opened:
        watched.page.context.close()
    for watched in opened:
        watched.check()
