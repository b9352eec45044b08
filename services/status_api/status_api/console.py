"""The web console: its static files at `/` and `/console/…`, and the config they read.

The files (`status_api/console/`: HTML, ES modules, CSS) ship in the package and are read
once, on first use; they are small, so they are answered from memory with an ETag. Every
answer carries a Content-Security-Policy that lets the page load only its own files and
talk only to this API and the ingestion API (uploads), so no script but the console's own
can run in it. The console's routes include the queue view it shows (`status_api.queue`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from status_api import queue
from status_api.settings import StatusSettings
from voxflow.web.errors import ApiError

PACKAGE_DIR = "console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

router = APIRouter()
router.include_router(queue.router)


@dataclass(frozen=True)
class Asset:
    """One file of the console, as it is sent."""

    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """The console's files by name (a flat directory: no path reaches beyond it)."""
    found = {}
    for entry in resources.files("status_api").joinpath(PACKAGE_DIR).iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return found


def origin(url: str) -> str:
    """`scheme://host:port` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(settings: StatusSettings) -> dict[str, str]:
    """Headers of every console answer: its own files only, no framing, no referrer."""
    policy = "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # The player plays a recording fetched with the key, through an object URL.
        "media-src 'self' blob:",
        f"connect-src 'self' {origin(settings.public_ingest_url)}",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])  # fmt: skip
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _settings(request: Request) -> StatusSettings:
    settings: StatusSettings = request.app.state.settings
    return settings


def _send(request: Request, name: str) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise ApiError(404, "not_found", f"The console has no file {name!r}.")
    # Revalidated on every load (a new version is seen at once), answered 304 when unchanged.
    headers = {**security_headers(_settings(request)), "ETag": asset.etag,
               "Cache-Control": "no-cache"}  # fmt: skip
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    """The console's page."""
    return _send(request, "index.html")


@router.get("/console/config.json", include_in_schema=False)
async def config(request: Request) -> JSONResponse:
    """What the console needs to know: where uploads go (`VOXFLOW_PUBLIC_INGEST_URL`)."""
    settings = _settings(request)
    headers = {**security_headers(settings), "Cache-Control": "no-store"}
    return JSONResponse({"ingest_url": settings.public_ingest_url.rstrip("/")}, headers=headers)


@router.get("/console/{name}", include_in_schema=False)
async def asset(name: str, request: Request) -> Response:
    """One of the console's files (scripts, style sheet, icon)."""
    return _send(request, name)
