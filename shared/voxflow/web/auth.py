"""Bearer API keys: each key belongs to one tenant.

Keys are checked against the database and then remembered per process for
`VOXFLOW_API_KEY_CACHE_SECONDS` (voxflow.web.keycache), so a request with a key seen lately
makes no database round trip to authenticate; revocation takes effect within that bound.
A key not in the cache is read in a session of its own, in autocommit: a read that takes
no part in the request's unit of work, and that a request with a cached key never opens.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voxflow.apikeys import authenticate, hash_key
from voxflow.db import read_only
from voxflow.web.api_runtime import api_runtime
from voxflow.web.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="An API key created with `voxflow keys create`.")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def require_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """FastAPI dependency: the tenant of a valid API key, or a 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401, "missing_api_key", "Send an API key as `Authorization: Bearer <key>`.", _CHALLENGE
        )
    runtime = api_runtime(request)
    presented = hash_key(credentials.credentials)
    tenant = runtime.keys.get(presented)
    if tenant is None:
        async with runtime.reads() as session:
            read_only(session.sync_session)
            tenant = await session.run_sync(authenticate, credentials.credentials)
        if tenant is None:
            raise ApiError(401, "invalid_api_key", "The API key is unknown or revoked.", _CHALLENGE)
        runtime.keys.put(presented, tenant)
    return tenant


Tenant = Annotated[str, Depends(require_tenant)]
