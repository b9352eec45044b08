"""The ingestion API application (`uvicorn ingest_api.app:app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest_api import openai_compat
from ingest_api.audio_probe import shutdown_probe_pool
from ingest_api.limits import UploadLimits
from ingest_api.routes import router
from ingest_api.settings import IngestSettings
from voxflow.embedded import redis_client_url
from voxflow.logs import configure_logging
from voxflow.observability.tracing import fastapi_telemetry, flush_tracing, setup_tracing
from voxflow.storage import make_storage
from voxflow.web.api_runtime import ApiRuntime, settle_heap
from voxflow.web.errors import install_error_handlers
from voxflow.web.health import router as health_router
from voxflow.web.observability import install_observability


class ConsoleCors:
    """CORS for the web console's origins (`IngestSettings.cors_origins`): the console is
    served by the status API, another origin, and uploads here with a bearer key. The origins
    are read from the settings the lifespan loaded, so the app is still built without them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer preflights and mark answers for allowed origins; pass anything else on."""
        settings = getattr(scope["app"].state, "settings", None) if "app" in scope else None
        if scope["type"] != "http" or settings is None:
            await self.app(scope, receive, send)
            return
        if self.cors is None:
            self.cors = CORSMiddleware(
                self.app,
                allow_origins=settings.cors_origins(),
                allow_methods=["GET", "POST"],
                # No cookies: the key travels in Authorization, which a page must ask to send.
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
                max_age=600,
            )
        await self.cors(scope, receive, send)


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """Build the app; connections are opened by the lifespan, not at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configured = settings or IngestSettings()
        configure_logging("ingest_api")
        setup_tracing("ingest_api")  # before the engine exists, so that its SQL is traced
        app.state.settings = configured
        if configured.spool_dir is not None:  # a fresh volume: an upload must not be a 500
            configured.spool_dir.mkdir(parents=True, exist_ok=True)
        app.state.runtime = ApiRuntime.build(
            configured, configured, make_storage(configured), service="voxflow-ingest-api"
        )
        broker = (
            redis.Redis.from_url(redis_client_url(configured.redis_url), socket_timeout=2)
            if configured.redis_url
            else None
        )
        app.state.limits = UploadLimits(
            broker, configured.uploads_per_minute, configured.max_active_jobs
        )
        settle_heap()  # last: what startup made is never scanned again
        try:
            yield
        finally:
            if broker is not None:
                broker.close()
            await app.state.runtime.close()
            shutdown_probe_pool()
            flush_tracing()

    app = FastAPI(
        title="Voxflow ingestion API",
        version="0.1.0",
        description="Upload recordings; each becomes a job that the status API reports on.",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
    )
    install_error_handlers(app)
    install_observability(app, "ingest_api")
    app.add_middleware(ConsoleCors)
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(openai_compat.router)
    return app


app = create_app()
