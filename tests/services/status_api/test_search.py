"""GET /v1/search: matching, ranking, snippets, paging, tenant isolation, hostile queries and
the index that finds a tenant's transcripts."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.orm import Session, sessionmaker

from status_api import search_repository as search
from tests.services.status_api.conftest import WORKER, JobMaker
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Transcript


def recording(jobs: JobMaker, *texts: str, speakers: str = "") -> uuid.UUID:
    """A transcribed job of `jobs`' tenant whose segments say `texts` (2 s apart, labelled
    with the letters of `speakers` when given)."""
    (job_id,) = jobs.queued()
    jobs.claim(job_id)
    segments: list[dict[str, Any]] = [
        {"id": i, "start": 2.0 * i, "end": 2.0 * i + 1.5, "text": f" {line}"}
        for i, line in enumerate(texts)
    ]
    for segment, label in zip(segments, speakers, strict=False):
        segment["speaker"] = label
    named = [{"label": label, "name": None, "talk_seconds": 1.5} for label in sorted(set(speakers))]
    transcript = Transcript(
        job_id=job_id, language="en", language_probability=0.9,
        duration_seconds=2.0 * len(texts), text=" ".join(texts), segments=segments,
        speakers=named or None, model="tiny.en", processing_seconds=0.5,
    )  # fmt: skip
    with session_scope(jobs.sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript)
    return job_id


def find(client: TestClient, auth: dict[str, str], q: str, **params: Any) -> dict[str, Any]:
    """The page of hits for `q` (asserting a 200)."""
    answer = client.get("/v1/search", headers=auth, params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def every_hit(client: TestClient, auth: dict[str, str], q: str, limit: int) -> list[Any]:
    """(job, segment) of every hit, following the cursors to the end."""
    seen, cursor = [], None
    for _ in range(100):
        page = find(client, auth, q, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= limit
        seen += [(hit["job_id"], hit["segment_id"]) for hit in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursors never ended")


def test_a_hit_says_where_the_words_are(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    job_id = recording(jobs, "Good morning.", "The quarterly budget is late.", "Bye.")
    page = find(client, auth, "Budget")
    assert page == {
        "items": [
            {
                "job_id": str(job_id), "filename": "meeting.wav", "segment_id": 1,
                "start": 2.0, "end": 3.5, "text": " The quarterly budget is late.",
                "snippet": " The quarterly <mark>budget</mark> is late.",
                "rank": page["items"][0]["rank"], "speaker": None, "speaker_name": None,
            }
        ],
        "next_cursor": None,
    }  # fmt: skip
    assert page["items"][0]["rank"] > 0
    assert find(client, auth, "budgets")["items"] == []  # whole words: no stemming
    assert find(client, auth, "nothing-like-it")["items"] == []


def test_words_of_any_language_match_in_any_case(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    greek = "Η οδός είναι μακριά."  # noqa: RUF001 (Greek on purpose)
    recording(jobs, "Éric a dit bonjour.", greek, "Die Straße ist lang.", "会议开始了")
    for query, segment in [("éric", 0), ("ÉRIC", 0), ("μακριά", 1), ("ΜΑΚΡΙΆ", 1),
                           ("STRAßE", 2), ("会议开始了", 3)]:  # fmt: skip
        assert [h["segment_id"] for h in find(client, auth, query)["items"]] == [segment], query
    assert find(client, auth, "eric")["items"] == []  # accents count: no folding


def test_the_snippet_is_html_with_only_the_marks_as_tags(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    hostile = """He typed <script>alert("budget")</script> & said 'budget' <b>twice</b>."""
    recording(jobs, hostile, "Fish & <chips> for the budget\x02 meeting\x03.")
    first, second = find(client, auth, "budget")["items"]
    assert first["text"] == f" {hostile}"  # the text as transcribed
    snippet = first["snippet"]
    assert "<script" not in snippet
    assert "&lt;script&gt;alert(&quot;<mark>budget</mark>&quot;)&lt;/script&gt;" in snippet
    assert "&#39;<mark>budget</mark>&#39; &lt;b&gt;twice&lt;/b&gt;" in snippet
    for hit in (first, second):
        bare = hit["snippet"].replace("<mark>", "").replace("</mark>", "")
        assert not re.search(r"[<>\"']", bare), hit["snippet"]
        assert html.unescape(bare) == hit["text"].replace("\x02", "").replace("\x03", "")
    assert second["snippet"] == " Fish &amp; &lt;chips&gt; for the <mark>budget</mark> meeting."


def test_closer_and_more_words_rank_first(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    recording(
        jobs,
        "We review many things, and one of them is the budget.",  # 0: both words, far apart
        "The budget review is on Friday.",  # 1: both words, side by side; and Friday
        "Nothing to see here.",  # 2: neither
        "Only the budget this time.",  # 3: one word
    )
    both = find(client, auth, "budget review")["items"]
    assert [hit["segment_id"] for hit in both] == [1, 0]
    assert both[0]["rank"] > both[1]["rank"]
    any_of = find(client, auth, "friday or budget or review")["items"]
    assert [hit["segment_id"] for hit in any_of] == [1, 0, 3]
    assert any_of[0]["rank"] > any_of[1]["rank"] > any_of[2]["rank"]
    phrase = find(client, auth, '"review budget" or "budget review"')["items"]
    assert [hit["segment_id"] for hit in phrase] == [1]
    without = find(client, auth, "budget -friday")["items"]
    assert [hit["segment_id"] for hit in without] == [0, 3]


def test_newest_recordings_come_first(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    old = recording(jobs, "The budget review, the budget review, the budget review.")
    new = recording(jobs, "A word on the budget, and later a review.")
    items = find(client, auth, "budget review")["items"]
    assert [hit["job_id"] for hit in items] == [str(new), str(old)]
    assert items[0]["rank"] < items[1]["rank"]  # recency first, rank within a recording


def test_pages_follow_each_other_without_gaps_or_repeats(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    older = recording(jobs, *(f"Budget item {n}." for n in range(5)))
    newer = recording(jobs, "The budget.", "No.", "More budget, budget.")
    expected = [(str(newer), 2), (str(newer), 0)] + [(str(older), n) for n in range(5)]
    for limit in (1, 2, 3, 7, 100):
        assert every_hit(client, auth, "budget", limit) == expected, limit


def test_a_page_looks_into_a_bounded_number_of_recordings(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    """Recordings whose words match but no segment does still cost a page its time: a page
    stops after SCAN_RECORDINGS of them, empty but with a cursor."""
    found = recording(jobs, "Alpha and omega.")
    for _ in range(search.SCAN_RECORDINGS):
        recording(jobs, "Alpha.", "Omega.")
    first = find(client, auth, "alpha omega")
    assert first["items"] == []
    assert first["next_cursor"] is not None
    second = find(client, auth, "alpha omega", cursor=first["next_cursor"])
    assert [hit["job_id"] for hit in second["items"]] == [str(found)]
    assert second["next_cursor"] is None


def test_speakers_and_their_names_come_with_hits(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    job_id = recording(jobs, "Budget first.", "Then the budget again.", speakers="AB")
    assert [(h["speaker"], h["speaker_name"]) for h in find(client, auth, "budget")["items"]] == [
        ("A", None),
        ("B", None),
    ]
    renamed = client.patch(
        f"/v1/jobs/{job_id}/speakers", headers=auth, json={"names": {"B": "Ada"}}
    )
    assert renamed.status_code == 200, renamed.text
    assert [h["speaker_name"] for h in find(client, auth, "budget")["items"]] == [None, "Ada"]


def test_another_tenants_transcripts_never_appear(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    mine = recording(jobs, "The budget review.", "Budget, again.")
    other_tenant = f"other{uuid.uuid4().hex[:8]}"
    theirs = recording(JobMaker(sessions, other_tenant), "Their budget review.")
    with session_scope(sessions) as session:
        key = issue_key(session, other_tenant, "other")
    other = {"Authorization": f"Bearer {key.secret}"}
    assert {h["job_id"] for h in find(client, auth, "budget")["items"]} == {str(mine)}
    page = find(client, other, "budget", limit=1)
    assert [h["job_id"] for h in page["items"]] == [str(theirs)]
    # My cursor (pointing into my recording) shows the other tenant nothing of mine.
    cursor = find(client, auth, "budget", limit=1)["next_cursor"]
    assert cursor is not None
    assert str(mine) not in str(find(client, other, "budget", cursor=cursor))


# Queries that must never be a server error: websearch_to_tsquery parses anything.
HOSTILE = [
    '"', '"unbalanced budget', 'budget "', "'", "''", "'budget'", "budget OR review", "or",
    "OR OR or", "budget or", "-", "--budget review", "budget -", "&", "|", "!", "!!!",
    "budget & review | !x", "budget:*", ":*", "bud:*get", "\\", "\\\\budget\\", "budget\\",
    "'; DROP TABLE jobs; --", "budget'); DELETE FROM transcripts; --", "<->", "budget <-> review",
    "budget <2> review", "(", ")", "((budget", "budget))", "%", "_", "*", "budget%_*",
    "\t\nbudget\r\n", "ünïcødé bùdget", "预算", "\U0001d538" * 500, "b" * 500, "budget " * 70,
    "\x01\x02budget\x03", "\u200b\ufeffbudget", "&amp; &lt;budget&gt;", "<b>budget</b>",
    "http://example.com/budget?x=1", "user@example.com", "1.5e10 -3 4/5",
]  # fmt: skip


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_get_an_answer(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], query: str
) -> None:
    job_id = recording(jobs, "The budget review.")
    answer = client.get("/v1/search", headers=auth, params={"q": query})
    assert answer.status_code == 200, answer.text
    assert all(hit["job_id"] == str(job_id) for hit in answer.json()["items"])
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 200  # still there


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"q": ""}, 422, "empty_query"),
        ({"q": " \t\n "}, 422, "empty_query"),
        ({"q": "\x00"}, 422, "invalid_query"),
        ({"q": "budget\x00review"}, 422, "invalid_query"),
        ({"q": "x" * 10_000}, 422, "invalid_request"),
        ({"q": "b" * 501}, 422, "invalid_request"),
        ({"q": "-budget"}, 422, "query_without_terms"),
        ({"q": "-budget -review"}, 422, "query_without_terms"),
        ({"q": "budget or -review"}, 422, "query_without_terms"),
        ({}, 422, "invalid_request"),
        ({"q": "budget", "limit": 0}, 422, "invalid_request"),
        ({"q": "budget", "limit": 101}, 422, "invalid_request"),
        ({"q": "budget", "cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"q": "budget", "cursor": "WzEsMiwzXQ"}, 400, "invalid_cursor"),  # [1,2,3]
    ],
)
def test_bad_queries_are_refused_with_a_code(
    client: TestClient, auth: dict[str, str], params: dict[str, Any], status: int, code: str
) -> None:
    answer = client.get("/v1/search", headers=auth, params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_punctuation_alone_finds_nothing(client: TestClient, auth: dict[str, str]) -> None:
    assert find(client, auth, "?! ...") == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("generic", [False, True])
def test_the_tenant_query_finds_transcripts_through_the_gin_index(
    db_session: Session, generic: bool
) -> None:
    """The statement the API prepares, for a word in none of a tenant's 2,000 transcripts
    (and planned generically, as a prepared statement is after a few runs), reads the GIN
    index rather than checking the tenant's transcripts one by one. The rows are rolled back
    (ANALYZE's column statistics with them)."""
    db_session.execute(
        text("""
        INSERT INTO jobs (id, tenant, status, progress, options, trace_context, source_key,
                          size_bytes, duration_seconds, content_sha256, attempts, max_attempts)
        SELECT gen_random_uuid(), 'gin-plan', 'completed', 100, '{}', '{}', 'k' || i, 1, 1.0,
               'x', 0, 3
        FROM generate_series(1, 2000) AS i""")
    )
    db_session.execute(
        text("""
        INSERT INTO transcripts (job_id, language, duration_seconds, text, segments, model,
                                 decode_options, processing_seconds)
        SELECT id, 'en', 1.0, 'the budget review of ' || source_key, '[]', 'tiny.en', '{}', 1
        FROM jobs WHERE tenant = 'gin-plan'""")
    )
    db_session.execute(text("ANALYZE jobs"))
    db_session.execute(text("ANALYZE transcripts"))
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    if generic:
        db_session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    compiled = search.CANDIDATES.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    connection = db_session.connection()
    connection.exec_driver_sql(f"PREPARE candidates(text, text) AS {compiled}")
    try:  # a prepared statement outlives the transaction: always deallocated
        explained = connection.exec_driver_sql("EXPLAIN EXECUTE candidates('gin-plan', 'zebra')")
        plan = "\n".join(explained.scalars())
    finally:
        connection.exec_driver_sql("DEALLOCATE candidates")
    assert "Bitmap Index Scan on ix_transcripts_search" in plan, plan
