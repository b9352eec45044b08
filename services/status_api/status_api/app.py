"""The status API application: `uvicorn status_api.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from status_api import console, routes, search_routes
from status_api.renders import RenderedTranscripts
from status_api.settings import StatusSettings
from voxflow.logs import configure_logging
from voxflow.observability.tracing import fastapi_telemetry, flush_tracing, setup_tracing
from voxflow.storage import make_storage
from voxflow.web.api_runtime import ApiRuntime, settle_heap
from voxflow.web.errors import install_error_handlers
from voxflow.web.health import router as health_router
from voxflow.web.observability import install_observability


def create_app(settings: StatusSettings | None = None) -> FastAPI:
    """Build the app; settings are read and the database is reached only at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or StatusSettings()
        configure_logging("status_api")
        setup_tracing("status_api")  # before the engine exists, so that its SQL is traced
        runtime = ApiRuntime.build(
            resolved, resolved, make_storage(resolved), service="voxflow-status-api"
        )
        app.state.settings = resolved
        app.state.runtime = runtime
        app.state.renders = RenderedTranscripts()
        settle_heap()  # last: what startup made is never scanned again
        try:
            yield
        finally:
            await runtime.close()
            flush_tracing()

    app = FastAPI(
        title="Voxflow status API",
        summary="Job state, timeline, transcripts and LLM-written notes.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
    )
    install_error_handlers(app)
    install_observability(app, "status_api")
    app.include_router(health_router)
    app.include_router(routes.router)
    app.include_router(search_routes.router)
    app.include_router(console.router)  # the web console at /, and the queue view it shows
    return app


app = create_app()
