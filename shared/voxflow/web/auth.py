"""Bearer API keys: each key belongs to one tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voxflow.apikeys import authenticate
from voxflow.web.errors import ApiError
from voxflow.web.runtime import get_runtime

_bearer = HTTPBearer(auto_error=False, description="An API key created with `voxflow keys create`.")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """FastAPI dependency: the tenant of a valid API key, or a 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401, "missing_api_key", "Send an API key as `Authorization: Bearer <key>`.", _CHALLENGE
        )
    with get_runtime(request).sessions() as session:
        tenant = authenticate(session, credentials.credentials)
    if tenant is None:
        raise ApiError(401, "invalid_api_key", "The API key is unknown or revoked.", _CHALLENGE)
    return tenant


Tenant = Annotated[str, Depends(require_tenant)]
