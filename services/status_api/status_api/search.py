"""Search over a tenant's transcripts: check the query, page through the hits, shape them.

Hits come recording by recording, the newest first, and in each recording the best ranked
segment first. A cursor says where the next page resumes: at a recording, past the hits of
it already shown. The SQL is in `search_repository`; docs/search.md tells the whole story.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from status_api import search_repository as search
from status_api.schemas import SearchHit, SearchPage
from voxflow.web.errors import ApiError

MAX_QUERY_CHARS = 500
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class Cursor:
    """Where a page resumes: at this recording, past its first `skip` hits."""

    created_at: datetime
    job_id: uuid.UUID
    skip: int

    def encode(self) -> str:
        """The opaque form given to clients."""
        raw = json.dumps([self.created_at.isoformat(), str(self.job_id), self.skip]).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, cursor: str) -> Cursor:
        """Read a cursor made by `encode`, or raise a 400."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            created_raw, id_raw, skip = json.loads(raw)
            found = cls(datetime.fromisoformat(created_raw), uuid.UUID(id_raw), skip)
        except (ValueError, TypeError, AttributeError):  # binascii and JSON errors are ValueErrors
            found = None
        if found is None or found.created_at.tzinfo is None or not _count(found.skip):
            raise ApiError(400, "invalid_cursor", "The cursor is not one this API returned.")
        return found


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _checked(query: str) -> str:
    if not query.strip():
        raise ApiError(422, "empty_query", "The query `q` is empty: give at least one word.")
    if "\x00" in query:
        raise ApiError(422, "invalid_query", "The query `q` contains a NUL character.")
    return query


def _snippet(headline: str) -> str:
    # The headline is HTML-escaped by the query; only the marks become tags.
    return headline.replace(search.MARK_START, "<mark>").replace(search.MARK_END, "</mark>")


def search_transcripts(
    session: Session, tenant: str, query: str, *, limit: int, cursor: str | None
) -> SearchPage:
    """One page of the segments of the tenant's transcripts that match `query`."""
    resume = Cursor.decode(cursor) if cursor else None
    parsed = search.parse(session, _checked(query))
    if not parsed.exact:  # punctuation only: no word to look for, nothing matches
        return SearchPage(items=[], next_cursor=None)
    if parsed.indexable is None:
        raise ApiError(
            422, "query_without_terms",
            "The query only excludes words (`-word`); add a word to look for.",
        )  # fmt: skip
    start = (resume.created_at, resume.job_id) if resume else None
    found = search.candidates(session, tenant, parsed.indexable, start)
    scanned = {c.job_id: c for c in found[: search.SCAN_RECORDINGS]}
    skip = (resume.job_id, resume.skip) if resume and resume.skip else None
    hits = search.hits(session, list(scanned), parsed, limit=limit + 1, skip=skip)
    page = hits[:limit]
    next_cursor = None
    if len(hits) > limit:  # the next page resumes inside the recording of the first hit left
        nxt = scanned[hits[limit].job_id]
        shown = sum(1 for hit in page if hit.job_id == nxt.job_id)
        if skip is not None and skip[0] == nxt.job_id:
            shown += skip[1]
        next_cursor = Cursor(nxt.created_at, nxt.job_id, shown).encode()
    elif len(found) > search.SCAN_RECORDINGS:  # recordings this page did not look into
        nxt = found[search.SCAN_RECORDINGS]
        next_cursor = Cursor(nxt.created_at, nxt.job_id, 0).encode()
    items = [
        SearchHit(
            job_id=hit.job_id,
            filename=scanned[hit.job_id].filename,
            segment_id=hit.segment_id,
            start=hit.start,
            end=hit.end,
            text=hit.text,
            snippet=_snippet(hit.headline),
            rank=hit.rank,
            speaker=hit.speaker,
            speaker_name=hit.speaker_name,
        )
        for hit in page
    ]
    return SearchPage(items=items, next_cursor=next_cursor)
