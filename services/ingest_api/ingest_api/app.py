"""The ingestion API application (`uvicorn ingest_api.app:app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from ingest_api import openai_api
from ingest_api.limits import UploadLimits
from ingest_api.routes import router
from ingest_api.settings import IngestSettings
from voxflow.audio import shutdown_probe_pool
from voxflow.embedded import redis_client_url
from voxflow.logs import configure_logging
from voxflow.observability.tracing import fastapi_telemetry, flush_tracing, setup_tracing
from voxflow.storage import make_storage
from voxflow.web.errors import install_error_handlers
from voxflow.web.health import router as health_router
from voxflow.web.observability import install_observability
from voxflow.web.runtime import Runtime, settle_heap


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
        app.state.runtime = Runtime.build(
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
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(openai_api.router)
    return app


app = create_app()
