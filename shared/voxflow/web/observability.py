"""HTTP metrics and `/metrics` for both APIs, and the job id their logs carry."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxflow.logs import bind_job_id
from voxflow.observability import exposition, metrics

# Anything else a client sends as a method is counted as `other`: labels stay a small set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route matched (404): the raw path is never a label

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint() -> Response:
    """The Prometheus metrics of every process of this API (all its uvicorn workers)."""
    body, content_type = exposition.render(exposition.group_registry())
    return Response(body, media_type=content_type)


class HttpMetricsMiddleware:
    """Count requests and time them by route template, method and status (pure ASGI).

    Pure ASGI rather than BaseHTTPMiddleware, so streamed responses (the status API's event
    stream) are neither buffered nor cut; their duration runs to the end of the stream.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the status it is answered with."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # The router stores the matched route in the scope; its path is the template.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            metrics.HTTP_REQUESTS.labels(self.service, route, method, str(status)).inc()
            metrics.HTTP_DURATION.labels(self.service, route, method).observe(
                time.perf_counter() - started
            )


async def bind_request_job(request: Request) -> None:
    """Route dependency: logs of a request about one job carry its id (`{job_id}` routes)."""
    raw = request.path_params.get("job_id")
    if raw is None:
        return
    try:
        bind_job_id(uuid.UUID(str(raw)))
    except ValueError:
        return  # not a job id: the route answers 404/422 itself


def install_observability(app: FastAPI, service: str) -> None:
    """Count and time every request of `app`, and serve `/metrics`."""
    app.add_middleware(HttpMetricsMiddleware, service=service)
    app.include_router(router)
