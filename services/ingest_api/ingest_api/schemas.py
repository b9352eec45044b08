"""Request and response models of the ingestion API."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskName = Literal["summary", "diary", "action_items", "custom"]


class JobOptions(BaseModel):
    """What to do with an upload, sent as the JSON `options` form field."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}$",
        description="Spoken language (ISO 639-1 code); detected when omitted.",
    )
    tasks: list[TaskName] = Field(
        default_factory=list, max_length=4, description="Notes to write from the transcript."
    )
    instruction: str | None = Field(
        default=None, max_length=4000, description="The instruction for the `custom` task."
    )
    model: str | None = Field(
        default=None, max_length=200, description="Whisper model (from the allowed list)."
    )
    mode: Literal["batched", "sequential"] | None = Field(
        default=None, description="Decoding mode (default: chosen by the worker)."
    )
    beam_size: int | None = Field(default=None, ge=1, le=10, description="Beam size.")
    word_timestamps: bool | None = Field(
        default=None, description="Add word-level timestamps to the segments."
    )
    vad_filter: bool | None = Field(
        default=None, description="Skip non-speech before decoding (sequential mode)."
    )
    live: bool | None = Field(
        default=None,
        description="Someone watches the words as they come (the job's live stream): a long "
        "recording's first words are published sooner, at a small cost in throughput.",
    )
    diarize: bool | None = Field(
        default=None,
        description="Find who spoke when: segments and words get speaker labels (A, B, ...).",
    )
    speakers: int | None = Field(
        default=None, ge=1, le=32, description="With `diarize`: the exact number of speakers."
    )
    min_speakers: int | None = Field(
        default=None, ge=1, le=32, description="With `diarize`: at least this many speakers."
    )
    max_speakers: int | None = Field(
        default=None, ge=1, le=32, description="With `diarize`: at most this many speakers."
    )
    initial_prompt: str | None = Field(
        default=None, max_length=1000, description="Context or vocabulary for the decoder."
    )
    hotwords: str | None = Field(
        default=None, max_length=500, description="Words or phrases the decoder should favour."
    )

    @model_validator(mode="after")
    def _check(self) -> JobOptions:
        for name, value in self:
            # PostgreSQL cannot store NUL in text or JSONB: refuse it here, not with a 500.
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{name} must not contain NUL characters")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks must not repeat")
        if "custom" in self.tasks and not (self.instruction and self.instruction.strip()):
            raise ValueError("the custom task needs an instruction")
        counts = (self.speakers, self.min_speakers, self.max_speakers)
        if any(count is not None for count in counts) and not self.diarize:
            raise ValueError("speakers, min_speakers and max_speakers need diarize")
        if self.speakers is not None and (self.min_speakers or self.max_speakers):
            raise ValueError("give either speakers or min_speakers/max_speakers")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers is above max_speakers")
        return self


class JobLinks(BaseModel):
    """Where to follow the job."""

    self: str
    events: str


class JobAccepted(BaseModel):
    """Answer to an accepted upload."""

    id: uuid.UUID
    status: Literal["queued"]
    duration_seconds: float
    size_bytes: int
    sha256: str
    links: JobLinks
