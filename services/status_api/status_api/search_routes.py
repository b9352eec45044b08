"""HTTP endpoint of transcript search: `GET /v1/search` (docs/search.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from status_api import search
from status_api.schemas import SearchPage
from voxflow.web.api_runtime import DbSession
from voxflow.web.auth import Tenant
from voxflow.web.errors import error_responses

router = APIRouter(prefix="/v1/search", tags=["search"])


@router.get("", summary="Search the transcripts", responses=error_responses(400, 401, 422))
async def search_transcripts(
    tenant: Tenant,
    session: DbSession,
    q: Annotated[
        str,
        Query(
            max_length=search.MAX_QUERY_CHARS,
            description='Words to find, in web-search syntax: `"exact phrase"`, `or`, '
            "`-excluded`. Words are matched whole and without regard to case.",
            examples=["budget review", '"weekly update" -draft'],
        ),
    ],
    limit: Annotated[
        int, Query(ge=1, le=search.MAX_LIMIT, description="Hits per page.")
    ] = search.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> SearchPage:
    """Transcript segments of this tenant's jobs that match `q`, with a highlighted snippet:
    the newest recordings first, in each the best matches first."""
    return await session.run_sync(search.search_transcripts, tenant, q, limit=limit, cursor=cursor)
