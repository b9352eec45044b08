"""The SQL of transcript search (`GET /v1/search`, docs/search.md): parse a query, find a
tenant's transcripts that may hold it, find the segments that do.

A query is parsed by PostgreSQL's `websearch_to_tsquery` (quotes make phrases, `or`, `-`
excludes), so no input is a syntax error. It is then checked at two levels:

* **Transcripts**, through the GIN index on `transcripts.search_vector` (the transcript's
  words, no positions). The index is asked a weaker query that every transcript with a
  matching segment satisfies: the query's positive part (`querytree`: exclusions dropped)
  with phrases turned into ANDs. The index then answers alone, without re-checking every
  transcript holding the words, as a phrase would have it do.
* **Segments**, in the transcripts found, newest recording first: each segment's text is
  parsed and matched against the exact query, and ranked with `ts_rank_cd` (more of the
  query's words, closer together, rank higher); a segment without any of the words is
  passed over by a LIKE first. A page stops parsing once it has its hits, and looks into
  at most `SCAN_RECORDINGS` recordings.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text, bindparam, column, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from voxflow.jobs.models import SEARCH_CONFIG

# Recordings one page of results looks into: parsing a recording's segments costs about
# 1 ms per 125 segments, so this bounds a page's work when transcripts hold all of a query's
# words but few segments do (the page then has fewer hits, and a cursor).
SCAN_RECORDINGS = 25

# ts_headline marks matches with these (stripped from the text first); the caller turns them
# into HTML tags.
MARK_START = "\x02"
MARK_END = "\x03"

_CONFIG = f"'{SEARCH_CONFIG}'::regconfig"
# In a tsquery's text: a quoted lexeme ('' and \\ escaped inside), or a phrase operator.
_TOKEN = re.compile(r"'(?:[^'\\]|''|\\.)*'|<(?:-|\d+)>")
_ESCAPE = re.compile(r"''|\\(.)")

_PARSE = text(
    f"SELECT websearch_to_tsquery({_CONFIG}, :q)::text AS exact,"
    f" querytree(websearch_to_tsquery({_CONFIG}, :q)) AS tree"
).columns(column("exact", Text), column("tree", Text))


@dataclass(frozen=True)
class ParsedQuery:
    """A search query as PostgreSQL reads it."""

    exact: str  # the tsquery that segments must match, as text ('' if it has no words)
    indexable: str | None  # what a transcript must match (None: the query only excludes)
    words: tuple[str, ...] = ()  # the lexemes of `indexable`


def _relaxed(tree: str) -> tuple[str, tuple[str, ...]]:
    """`tree` with its phrase operators turned into ANDs, and its lexemes."""
    words: list[str] = []

    def visit(token: re.Match[str]) -> str:
        if not token.group().startswith("'"):
            return "&"
        words.append(_ESCAPE.sub(lambda e: e.group(1) or "'", token.group()[1:-1]))
        return token.group()

    return _TOKEN.sub(visit, tree), tuple(words)


def parse(session: Session, query: str) -> ParsedQuery:
    """Parse a web-search-style query into the segment query and the transcript query."""
    row = session.execute(_PARSE, {"q": query}).one()
    exact, tree = str(row.exact), str(row.tree)
    # querytree answers T for a query without a positive term (`-word`), the empty string
    # for one without words.
    if tree in ("T", ""):
        return ParsedQuery(exact=exact, indexable=None)
    indexable, words = _relaxed(tree)
    return ParsedQuery(exact=exact, indexable=indexable, words=words)


@dataclass(frozen=True)
class Candidate:
    """A recording of the tenant whose transcript holds the query's words."""

    job_id: uuid.UUID
    created_at: datetime
    filename: str | None


_CANDIDATE_COLUMNS = (
    column("id", UUID(as_uuid=True)),
    column("created_at", DateTime(timezone=True)),
    column("source_filename", Text),
)


def _candidates_statement(*, resume: bool) -> str:
    # The LIMIT is a literal: with a parameter, a prepared statement's generic plan walks
    # the tenant's jobs newest first and checks every transcript, even for a rare word.
    after = "AND (j.created_at, j.id) <= (:created, :job_id)" if resume else ""
    return f"""
SELECT j.id, j.created_at, j.source_filename
FROM transcripts AS t JOIN jobs AS j ON j.id = t.job_id
WHERE j.tenant = :tenant AND t.search_vector @@ CAST(:indexable AS tsquery) {after}
ORDER BY j.created_at DESC, j.id DESC
LIMIT {SCAN_RECORDINGS + 1}"""  # noqa: S608 (constants; values are bound parameters)


CANDIDATES = text(_candidates_statement(resume=False)).columns(*_CANDIDATE_COLUMNS)
_CANDIDATES_FROM = (
    text(_candidates_statement(resume=True))
    .bindparams(
        bindparam("created", type_=DateTime(timezone=True)),
        bindparam("job_id", type_=UUID(as_uuid=True)),
    )
    .columns(*_CANDIDATE_COLUMNS)
)


def candidates(
    session: Session, tenant: str, indexable: str, start: tuple[datetime, uuid.UUID] | None
) -> list[Candidate]:
    """The tenant's recordings whose transcript matches `indexable`, newest first, from the
    recording `start` (included) on: `SCAN_RECORDINGS` of them, and one more if there are."""
    params: dict[str, object] = {"tenant": tenant, "indexable": indexable}
    statement = CANDIDATES
    if start is not None:
        statement = _CANDIDATES_FROM
        params["created"], params["job_id"] = start
    return [Candidate(*row) for row in session.execute(statement, params)]


@dataclass(frozen=True)
class Hit:
    """A segment matching the query."""

    job_id: uuid.UUID
    segment_id: int
    start: float
    end: float
    text: str
    headline: str  # the text HTML-escaped, matches between MARK_START and MARK_END
    rank: float
    speaker: str | None
    speaker_name: str | None


_QUERY = "CAST(:exact AS tsquery)"
# The text lowercased exactly as the `simple` configuration lowercases words into lexemes
# (its dictionary, applied to the whole text): a segment with a lexeme holds it in there,
# in any locale. (A stemming configuration would need another test.)
_LOWERED = "(ts_lexize('simple', s.segment->>'text'))[1]"
_SEGMENT_VECTOR = f"to_tsvector({_CONFIG}, s.segment->>'text')"
# The text with the marks' characters removed, then HTML-escaped before ts_headline parses
# it: on raw text it drops whatever looks like a tag (`<chips>`), and escaped text comes out
# escaped, with only the marks added.
_ESCAPED = (
    "replace(replace(replace(replace(replace(translate(p.text, :marks, ''),"
    " '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '\"', '&quot;'), '''', '&#39;')"
)
# A segment's text is shown whole up to this many characters (most are: Whisper's segments
# are a sentence or two), beyond it as the 35 words around its best match.
SNIPPET_WHOLE_CHARS = 300
_MARKS = f"StartSel={MARK_START}, StopSel={MARK_END}"
_WHOLE = f"{_MARKS}, HighlightAll=true"
_FRAGMENT = f"{_MARKS}, MaxFragments=1, MaxWords=35, MinWords=15, ShortWord=0"

# The recordings are an array in page order; segments are parsed recording by recording,
# and only until the page is full (an incremental sort over the recording order).
HITS = (
    text(f"""
SELECT p.job_id, p.segment_id, p.start, p."end", p.text,
       ts_headline({_CONFIG}, {_ESCAPED}, {_QUERY},
                   CASE WHEN length(p.text) <= {SNIPPET_WHOLE_CHARS} THEN :whole ELSE :fragment END)
         AS headline,
       p.rank, p.speaker,
       (SELECT known.value->>'name'
          FROM transcripts AS t, jsonb_array_elements(t.speakers) AS known(value)
         WHERE t.job_id = p.job_id AND known.value->>'label' = p.speaker) AS speaker_name
FROM (
  SELECT r.id AS job_id, r.k, h.n, h.rank,
         coalesce((h.segment->>'id')::int, h.n::int - 1) AS segment_id,
         (h.segment->>'start')::float8 AS start, (h.segment->>'end')::float8 AS "end",
         h.segment->>'text' AS text, h.segment->>'speaker' AS speaker
  FROM unnest(CAST(:job_ids AS uuid[])) WITH ORDINALITY AS r(id, k)
  CROSS JOIN LATERAL (
    SELECT s.n, s.segment, ts_rank_cd({_SEGMENT_VECTOR}, {_QUERY}) AS rank
    FROM transcripts AS t
    CROSS JOIN LATERAL jsonb_array_elements(t.segments) WITH ORDINALITY AS s(segment, n)
    WHERE t.job_id = r.id
      AND ({_LOWERED}) LIKE ANY (CAST(:patterns AS text[]))
      AND {_SEGMENT_VECTOR} @@ {_QUERY}
    ORDER BY rank DESC, s.n
    OFFSET CASE WHEN r.id = :skip_job THEN :skip ELSE 0 END
  ) AS h
  ORDER BY r.k, h.rank DESC, h.n
  LIMIT :limit
) AS p
ORDER BY p.k, p.rank DESC, p.n""")  # noqa: S608 (constants; values are bound parameters)
    .bindparams(
        bindparam("job_ids", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("patterns", type_=ARRAY(Text)),
        bindparam("skip_job", type_=UUID(as_uuid=True)),
        bindparam("whole", value=_WHOLE, type_=Text),
        bindparam("fragment", value=_FRAGMENT, type_=Text),
        bindparam("marks", value=MARK_START + MARK_END, type_=Text),
    )
    .columns(
        column("job_id", UUID(as_uuid=True)),
        column("segment_id", Integer),
        column("start", Float),
        column("end", Float),
        column("text", Text),
        column("headline", Text),
        column("rank", Float),
        column("speaker", String),
        column("speaker_name", String),
    )
)


def _pattern(word: str) -> str:
    """A LIKE pattern for text containing `word`."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", word) + "%"


def hits(
    session: Session,
    job_ids: Sequence[uuid.UUID],
    query: ParsedQuery,
    *,
    limit: int,
    skip: tuple[uuid.UUID, int] | None = None,
) -> list[Hit]:
    """Up to `limit` segments of these recordings matching the query: recording by
    recording in the order given, the best ranked first in each; `skip` leaves out the
    first hits of one recording (those a previous page showed)."""
    if not job_ids:
        return []
    skip_job, skipped = skip if skip is not None else (None, 0)
    # Parsing a segment costs about 8 µs; a segment whose lowercased text contains none of
    # the words of the query's positive part cannot match, and is passed over for the price
    # of a LIKE.
    params = {
        "job_ids": list(job_ids), "exact": query.exact, "limit": limit, "skip_job": skip_job,
        "skip": skipped, "patterns": [_pattern(word) for word in query.words],
    }  # fmt: skip
    return [Hit(*row) for row in session.execute(HITS, params)]
