"""Errors in OpenAI's shape: its body, its statuses and types, and a route class that uses them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from voxflow.web.errors import ApiError, database_error

# OpenAI's error `type` by status (its SDKs choose the exception class by status alone).
_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}
# Voxflow's job API says 415/422 where OpenAI's says 400 (bad audio, bad options).
_STATUSES = {415: 400, 422: 400}
# The field an error code is about, for OpenAI's `param`.
_PARAMS = {
    "model_not_found": "model",
    "invalid_response_format": "response_format",
    "invalid_language": "language",
    "invalid_temperature": "temperature",
    "invalid_timestamp_granularities": "timestamp_granularities[]",
    "invalid_stream": "stream",
    "invalid_known_speaker_name": "known_speaker_names[]",
    "known_speakers_mismatch": "known_speaker_references[]",
    "too_many_known_speakers": "known_speaker_names[]",
    "invalid_known_speaker_reference": "known_speaker_references[]",
    "known_speakers_need_diarize": "response_format",
    "missing_file": "file",
    "file_too_large": "file",
}
# Failures that are the upload's fault (the SDK raises BadRequestError; no retry helps).
AUDIO_FAILURES = frozenset({"corrupt_audio", "empty_audio", "audio_too_long"})


class OpenAIErrorDetail(BaseModel):
    """What went wrong, as OpenAI's API says it."""

    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(BaseModel):
    """Body of every error of these routes."""

    error: OpenAIErrorDetail


def openai_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for errors in OpenAI's shape."""
    return {s: {"model": OpenAIError, "description": HTTPStatus(s).phrase} for s in statuses}


def error_detail(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    """OpenAI's status and `error` object for one of Voxflow's refusals."""
    status = _STATUSES.get(status, status)
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {"message": message, "type": kind, "param": _PARAMS.get(code), "code": code}


def openai_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in OpenAI's shape."""
    status, detail = error_detail(status, code, message)
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


class OpenAIRoute(APIRoute):
    """A route whose errors, its dependencies' included, take OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The usual handler, with Voxflow's errors reshaped."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return openai_error(exc.status, exc.code, exc.message, exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return openai_error(400, "invalid_request", f"{where}: {first.get('msg')}")
            except DBAPIError as exc:
                refused = database_error(exc)
                return openai_error(refused.status, refused.code, refused.message, refused.headers)

        return answer
