"""A small HTTP client for the two APIs (what `voxflow submit` uses)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TERMINAL = ("completed", "failed", "canceled")


class ApiCallError(Exception):
    """An error answer from a Voxflow API, with its code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


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
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiCallError(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiCallError(response.status_code, "http_error", response.text) from None
        return response

    def submit(
        self, path: Path, options: dict[str, Any], webhook_url: str | None = None
    ) -> dict[str, Any]:
        """Upload a recording (with a webhook URL to call when it finishes); the accepted job."""
        data = {"options": json.dumps(options)}
        if webhook_url:
            data["webhook_url"] = webhook_url
        with path.open("rb") as handle:
            response = self.http.post(
                f"{self.ingest_url}/v1/jobs",
                headers=self._headers(),
                files={"file": (path.name, handle, "application/octet-stream")},
                data=data,
                timeout=self.timeout,
            )
        body: dict[str, Any] = self._check(response).json()
        return body

    def get(self, path: str, **params: str) -> httpx.Response:
        """GET a status API path."""
        response = self.http.get(
            f"{self.status_url}{path}", headers=self._headers(), params=params,
            timeout=self.timeout,
        )  # fmt: skip
        return self._check(response)

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's current state."""
        body: dict[str, Any] = self.get(f"/v1/jobs/{job_id}").json()
        return body

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

    def transcript(self, job_id: str, fmt: str = "txt") -> str:
        """The transcript rendered as txt, srt, vtt or json."""
        return self.get(f"/v1/jobs/{job_id}/transcript", format=fmt).text

    def results(self, job_id: str) -> dict[str, Any]:
        """The job's notes with usage and cost."""
        body: dict[str, Any] = self.get(f"/v1/jobs/{job_id}/results").json()
        return body
