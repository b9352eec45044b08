"""A small HTTP client for the two APIs (what `voxflow submit` uses)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

TERMINAL = ("completed", "failed", "canceled")
RECONNECTS = 5  # cut lines in a row before `watch` gives up
PAGE_SIZE = 100  # the largest page the status API serves


class ApiCallError(Exception):
    """An error answer from a Voxflow API, with its code and message."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, when the API says when to try again


@dataclass
class VoxflowClient:
    """Talks to the ingestion and status APIs with one API key."""

    ingest_url: str
    status_url: str
    api_key: str
    timeout: float = 60.0
    # One connection pool for every call: polling must not open a connection per request.
    http: httpx.Client = field(default_factory=httpx.Client, repr=False)

    def close(self) -> None:
        """Close pooled connections."""
        self.http.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        retry_after: float | None = None
        with contextlib.suppress(ValueError):
            retry_after = float(response.headers.get("Retry-After", ""))
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text.strip() or response.reason_phrase
        raise ApiCallError(response.status_code, code, message, retry_after)

    def submit(
        self,
        path: Path,
        options: dict[str, Any],
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Upload a recording (with a webhook URL to call when it finishes); the accepted job.

        With an `idempotency_key`, sending the same upload again is safe: the API answers
        with the job the first attempt created.
        """
        data = {"options": json.dumps(options)}
        if webhook_url:
            data["webhook_url"] = webhook_url
        headers = self._headers()
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        with path.open("rb") as handle:
            response = self.http.post(
                f"{self.ingest_url}/v1/jobs",
                headers=headers,
                files={"file": (path.name, handle, "application/octet-stream")},
                data=data,
                timeout=self.timeout,
            )
        body: dict[str, Any] = self._check(response).json()
        return body

    def get(self, path: str, **params: str | int | None) -> httpx.Response:
        """GET a status API path (parameters that are None are left out)."""
        given = {name: value for name, value in params.items() if value is not None}
        response = self.http.get(
            f"{self.status_url}{path}", headers=self._headers(), params=given,
            timeout=self.timeout,
        )  # fmt: skip
        return self._check(response)

    def jobs(
        self, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of the tenant's jobs, newest first: `{"items": [...], "next_cursor": ...}`."""
        page: dict[str, Any] = self.get(
            "/v1/jobs", status=status, limit=limit, cursor=cursor
        ).json()
        return page

    def iter_jobs(self, status: str | None = None, page_size: int = PAGE_SIZE) -> Iterator[Any]:
        """Every job of the tenant, newest first, fetching pages as they are consumed."""
        return self._pages(lambda cursor: self.jobs(status, page_size, cursor))

    def search(self, query: str, limit: int | None = None, cursor: str | None = None) -> Any:
        """One page of transcript segments matching `query` (`GET /v1/search`)."""
        return self.get("/v1/search", q=query, limit=limit, cursor=cursor).json()

    def iter_search(self, query: str, page_size: int = PAGE_SIZE) -> Iterator[Any]:
        """Every search hit, best first, fetching pages as they are consumed."""
        return self._pages(lambda cursor: self.search(query, page_size, cursor))

    @staticmethod
    def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
        """The items of a paged list, following `next_cursor` until it is null."""
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's current state."""
        body: dict[str, Any] = self.get(f"/v1/jobs/{job_id}").json()
        return body

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's timeline, oldest first."""
        body: list[dict[str, Any]] = self.get(f"/v1/jobs/{job_id}/events").json()
        return body

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not finished; its new state."""
        response = self.http.post(
            f"{self.status_url}/v1/jobs/{job_id}/cancel", headers=self._headers(),
            timeout=self.timeout,
        )  # fmt: skip
        body: dict[str, Any] = self._check(response).json()
        return body

    def delete(self, job_id: str) -> None:
        """Delete a job with its audio, transcript, notes and timeline."""
        response = self.http.delete(
            f"{self.status_url}/v1/jobs/{job_id}", headers=self._headers(), timeout=self.timeout
        )
        self._check(response)

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        *,
        poll: float = 0.25,
        timeout: float = 3600.0,
    ) -> dict[str, Any]:
        """Poll until the job ends; returns its final state."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f}s")
            time.sleep(poll)

    def watch(self, job_id: str) -> Iterator[ServerSentEvent]:
        """The job's live stream (docs/streaming.md), up to its `end` event.

        A cut line is resumed after the last event received (`Last-Event-ID`), so nothing
        is missed or repeated; after `RECONNECTS` failures in a row the error is raised.
        """
        url = f"{self.status_url}/v1/jobs/{job_id}/stream"
        last: str | None = None
        failures = 0
        while True:
            headers = self._headers() | ({"Last-Event-ID": last} if last else {})
            # The server pings every 15 s: a minute of silence means the line is dead.
            timeout = httpx.Timeout(self.timeout, read=60.0)
            try:
                with connect_sse(self.http, "GET", url, headers=headers, timeout=timeout) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        self._check(source.response)
                    for event in source.iter_sse():
                        failures = 0
                        last = event.id or last
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError:
                failures += 1
                if failures > RECONNECTS:
                    raise
                time.sleep(min(2.0**failures, 10.0))

    def transcript(self, job_id: str, fmt: str = "txt") -> str:
        """The transcript rendered as txt, srt, vtt, json or verbose_json."""
        return self.get(f"/v1/jobs/{job_id}/transcript", format=fmt).text

    def results(self, job_id: str) -> dict[str, Any]:
        """The job's notes with usage and cost."""
        body: dict[str, Any] = self.get(f"/v1/jobs/{job_id}/results").json()
        return body
