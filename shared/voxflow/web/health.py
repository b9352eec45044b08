"""Liveness and readiness endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from voxflow.queue.celery_app import publisher_app
from voxflow.web.api_runtime import api_runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Answer while the process is alive."""
    return {"status": "ok"}


async def _database_ok(request: Request) -> str | None:
    try:
        async with api_runtime(request).engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; say which
        return f"{type(exc).__name__}: {exc}"
    return None


def _broker_ok() -> str | None:
    try:
        with publisher_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _storage_ok(request: Request) -> str | None:
    try:
        api_runtime(request).storage.check()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@router.get("/readyz", summary="Readiness: database, broker and storage reachable")
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when the database, the broker and the storage respond, else 503 saying which."""
    checks = {
        "database": await _database_ok(request),
        # Both block (a broker connection, a storage call): in worker threads.
        "broker": await run_in_threadpool(_broker_ok),
        "storage": await run_in_threadpool(_storage_ok, request),
    }
    body = {name: ("ok" if err is None else err) for name, err in checks.items()}
    ready = all(err is None for err in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": body},
        status_code=200 if ready else 503,
    )
