"""One error shape for every 4xx/5xx: `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ErrorDetail(BaseModel):
    """A machine-readable code and a sentence for humans."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """Raise to answer with an error status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Build an error response in the shared shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` entries documenting error statuses with the shared shape."""
    return {s: {"model": ErrorBody, "description": HTTPStatus(s).phrase} for s in statuses}


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, including framework ones, use the shared shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return error_response(422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            # Starlette's Allow names only the first route matching the path (GET for
            # /v1/jobs/{id}, which also has DELETE); a 405 must list every method (RFC 9110).
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        refused = database_error(exc)
        return error_response(refused.status, refused.code, refused.message, refused.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "An unexpected error occurred.")


def database_error(exc: DBAPIError) -> ApiError:
    """What a database failure answers: 503 (retry) for a lost or refused connection, else
    500 (a bug), logged either way."""
    if not exc.connection_invalidated and not _is_connection_error(exc):
        log.exception("database error", exc_info=exc)
        return ApiError(500, "internal_error", "An unexpected error occurred.")
    log.warning("database unavailable: %s", exc.orig)
    return ApiError(503, "database_unavailable", "The job database is unavailable; retry shortly.",
                    {"Retry-After": "5"})  # fmt: skip


def _allowed_methods(request: Request) -> str:
    """Every method some route of the app serves at the request's path."""
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _is_connection_error(exc: DBAPIError) -> bool:
    """Tell a lost or refused connection from a bug in a query.

    psycopg (the workers) raises OperationalError. Under SQLAlchemy's asyncpg adapter (the
    APIs' ORM) the driver's own exception is the cause of the adapted one; on the driver
    connection (`Runtime.driver`) it is the original itself.
    """
    import asyncpg
    import psycopg

    # a lost connection, a refused one, a server shutting down or a canceled statement
    lost = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            asyncpg.InternalClientError, asyncpg.exceptions.OperatorInterventionError,
            psycopg.OperationalError)  # fmt: skip
    orig = exc.orig
    return isinstance(orig, lost) or isinstance(getattr(orig, "__cause__", None), lost)
