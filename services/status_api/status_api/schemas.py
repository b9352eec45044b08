"""Response models of the status API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voxflow.jobs.states import JobStatus

TranscriptFormat = Literal["txt", "srt", "vtt", "json", "verbose_json"]

# Bounds of the transcript endpoint's `max_line_chars` (SRT/VTT line wrapping).
MIN_LINE_CHARS = 20
MAX_LINE_CHARS = 80


class JobSource(BaseModel):
    """The uploaded recording."""

    filename: str | None = Field(description="Name of the uploaded file, if it had one.")
    size_bytes: int = Field(description="Size of the upload in bytes.")
    duration_seconds: float = Field(description="Length of the recording in seconds.")
    sha256: str = Field(description="SHA-256 of the uploaded bytes (hex).")


class JobErrorView(BaseModel):
    """Why a job failed."""

    code: str = Field(description="Machine-readable reason.")
    message: str = Field(description="A sentence for humans.")


class JobLinks(BaseModel):
    """Absolute URLs of the job's resources."""

    self: str
    events: str
    transcript: str
    results: str
    webhooks: str


class JobView(BaseModel):
    """One job as its owner sees it."""

    id: uuid.UUID
    status: JobStatus
    progress: int = Field(description="Progress of the current stage, 0 to 100.")
    created_at: datetime
    updated_at: datetime
    transcription_started_at: datetime | None
    transcribed_at: datetime | None
    generation_started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="Claims of the current stage so far.")
    options: dict[str, Any] = Field(description="Options given at upload.")
    source: JobSource
    error: JobErrorView | None = Field(description="Set when the job failed.")
    webhook_url: str | None = Field(
        description="Called when the job finishes; its deliveries are under `links.webhooks`."
    )
    links: JobLinks


class JobList(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class EventView(BaseModel):
    """One entry of a job's timeline."""

    at: datetime
    from_status: JobStatus | None
    to_status: JobStatus
    actor: str | None = Field(description="Which component made the change.")
    detail: dict[str, Any]


class Usage(BaseModel):
    """What one LLM call consumed."""

    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: int


class ResultView(BaseModel):
    """The output of one LLM task."""

    task: str
    provider: str
    model: str
    output: str
    output_json: Any | None = Field(description="Structured output, for tasks that have one.")
    usage: Usage
    cached: bool = Field(description="Served from the LLM response cache.")
    created_at: datetime


class Totals(BaseModel):
    """Usage summed over a job's results."""

    tokens_in: int
    tokens_out: int
    cost_usd: float
    calls: int = Field(description="LLM calls made for the job, failed and cached included.")
    failed_calls: int


class CallView(BaseModel):
    """One call to an LLM deployment (or a cache hit), as recorded for cost accounting."""

    task: str
    deployment: str
    provider: str
    model: str
    outcome: str = Field(description="`ok`, `cached`, or the error code of a failed call.")
    error: str | None
    usage: Usage
    created_at: datetime


class ResultsView(BaseModel):
    """A job's LLM outputs and what they cost."""

    job_id: uuid.UUID
    status: JobStatus
    results: list[ResultView]
    totals: Totals
    calls: list[CallView] = Field(description="Every LLM call, in order.")


class WebhookDeliveryView(BaseModel):
    """One webhook event of a job and how its delivery went."""

    id: uuid.UUID = Field(description="The `webhook-id` header: the same on every attempt.")
    event: Literal["job.completed", "job.failed", "job.canceled"]
    url: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`pending` while attempts go on, `delivered` after a 2xx, `failed` after a "
        "410 or when the retry window ended."
    )
    attempts: int
    created_at: datetime = Field(description="When the event happened.")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="HTTP status of the last attempt, if any.")
    last_error: str | None = Field(description="What went wrong in the last attempt.")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")
    delivered_at: datetime | None


# A speaker's name: what formats and notes show in place of its label (no control characters,
# which would break SRT, WebVTT and the notes' turns).
SpeakerName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                      pattern=r"^[^\x00-\x1f\x7f]+$"),
]  # fmt: skip


class SpeakerView(BaseModel):
    """One speaker of a diarized transcript."""

    label: str = Field(description="`A`, `B`, ... in order of first appearance.")
    name: str | None = Field(description="The name it was given (a known voice or a rename).")
    talk_seconds: float = Field(description="How long this speaker talks.")


class SpeakerNames(BaseModel):
    """New names for a diarized transcript's speakers, by label (null clears a name)."""

    model_config = ConfigDict(extra="forbid")

    names: dict[str, SpeakerName | None] = Field(
        min_length=1, max_length=100, examples=[{"A": "Ada Lovelace", "B": "Charles Babbage"}]
    )


class SearchHit(BaseModel):
    """A transcript segment matching a search query."""

    job_id: uuid.UUID
    filename: str | None = Field(description="Name of the job's uploaded file, if it had one.")
    segment_id: int = Field(description="The segment's `id` in the job's transcript.")
    start: float = Field(description="Where the segment starts in the recording, in seconds.")
    end: float = Field(description="Where it ends, in seconds.")
    text: str = Field(description="The segment's text, as transcribed (not escaped).")
    snippet: str = Field(
        description="The text as HTML, safe to insert: escaped, with the query's words "
        "between `<mark>` and `</mark>`: the whole text, or for a long segment the 35 words "
        "around its best match."
    )
    rank: float = Field(
        description="Relevance (`ts_rank_cd`): more of the query's words, closer together, "
        "rank higher."
    )
    speaker: str | None = Field(description="The segment's speaker label, if diarized.")
    speaker_name: str | None = Field(description="The name that speaker was given, if any.")


class SearchPage(BaseModel):
    """One page of search results: the newest recordings first, each one's best hits first."""

    items: list[SearchHit]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end. A page may hold "
        "fewer than `limit` hits, even none, and still have one (docs/search.md)."
    )
