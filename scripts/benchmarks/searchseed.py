"""Data for the search benchmark: finished jobs with transcripts of speech-like text.

Sentences come from the throughput corpus' generator (`corpus.sentence`: plain English from
templates, a few hundred common words that every transcript repeats). Each transcript also
has a subject of its own: a dozen terms drawn from 20,000 made-up words by Zipf's law (rank
r drawn with weight 1/r), which about a third of its segments mention. And each tenant has
a few words of its own (its product, its customers) that half of its transcripts say. So
some words are in nearly every transcript, some in a few percent, most in a handful, and a
tenant's own words are common in its transcripts and absent from the others', as in real
recordings: a few words make up most of the speech, and each team has its names and jargon.

Rows are written with COPY; 10,000 transcripts of 50 to 200 segments take about a minute.
"""

from __future__ import annotations

import bisect
import io
import itertools
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from scripts.benchmarks.corpus import sentence

VOCABULARY = 20_000  # made-up subject words
SUBJECT_TERMS = 12  # subject words per transcript
HOUSE_TERMS = 3  # words of a tenant's own
_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "pl", "r", "s",
           "st", "t", "tr", "v", "z", "sh", "ch", "j")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
_CODAS = ("", "", "n", "r", "l", "s", "m", "x", "nd", "rt")
_MENTIONS = (
    "We also talked about the {a} and the {b}.",
    "{A} is still the main question for the {b} team.",
    "The {a} numbers look better than last time.",
    "Can someone check the {a} before we move on to {b}?",
    "I spoke with the {a} people about {b} yesterday.",
    "Let us put {a} on the list for next time.",
)


def made_up_words(count: int, rng: random.Random) -> list[str]:
    """`count` distinct pronounceable words of two or three syllables."""
    words: dict[str, None] = {}
    while len(words) < count:
        syllables = rng.randint(2, 3)
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                 for _ in range(syllables)]  # fmt: skip
        words.setdefault("".join(parts))
    return list(words)


@dataclass
class Vocabulary:
    """The made-up words, and their Zipf weights as a cumulative table for sampling."""

    words: list[str]
    cumulative: list[float]

    @classmethod
    def build(cls, words: list[str]) -> Vocabulary:
        """The word of rank r has weight 1/r."""
        weights = itertools.accumulate(1 / rank for rank in range(1, len(words) + 1))
        return cls(words, list(weights))

    def draw(self, rng: random.Random, count: int) -> list[str]:
        """`count` distinct words, by Zipf's law."""
        chosen: dict[str, None] = {}
        total = self.cumulative[-1]
        while len(chosen) < count:
            chosen.setdefault(self.words[bisect.bisect(self.cumulative, rng.random() * total)])
        return list(chosen)


def segments(rng: random.Random, subject: list[str], count: int) -> list[dict[str, Any]]:
    """`count` segments of one or two sentences, about a third mentioning the subject."""
    parts: list[dict[str, Any]] = []
    start = 0.0
    for index in range(count):
        sentences = [sentence(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.35:
            a, b = rng.sample(subject, 2)
            mention = rng.choice(_MENTIONS).format(a=a, b=b, A=a.capitalize())
            sentences.insert(rng.randrange(len(sentences) + 1), mention)
        text = " " + " ".join(sentences)
        seconds = round(len(text.split()) / 2.6, 2)  # about 155 words a minute
        segment: dict[str, Any] = {
            "id": index, "seek": int(start * 100), "start": round(start, 2),
            "end": round(start + seconds, 2), "text": text, "avg_logprob": -0.21,
            "compression_ratio": 1.5, "no_speech_prob": 0.01, "temperature": 0.0,
        }  # fmt: skip
        parts.append(segment)
        start = round(start + seconds + rng.uniform(0.1, 0.8), 2)
    return parts


@dataclass
class Seeded:
    """What was written: per tenant, its transcripts, its own words, and in how many of its
    transcripts each subject word is."""

    transcripts: dict[str, int] = field(default_factory=dict)
    house: dict[str, list[str]] = field(default_factory=dict)
    subjects: dict[str, Counter[str]] = field(default_factory=dict)


_JOB_COLUMNS = (
    "id", "tenant", "status", "progress", "options", "trace_context", "source_key",
    "source_filename", "size_bytes", "duration_seconds", "content_sha256", "attempts",
    "max_attempts", "created_at", "updated_at", "transcription_started_at", "transcribed_at",
    "finished_at",
)  # fmt: skip
_TRANSCRIPT_COLUMNS = (
    "job_id", "language", "language_probability", "duration_seconds", "text", "segments",
    "model", "decode_options", "processing_seconds", "created_at",
)  # fmt: skip
_BATCH = 250


def seed(database_url: str, tenants: list[str], transcripts: int, seed_value: int = 0) -> Seeded:
    """Write `transcripts` completed jobs with transcripts, spread over `tenants` (the first
    has the most, the last the fewest), oldest first, a minute apart."""
    rng = random.Random(seed_value)
    words = made_up_words(VOCABULARY + HOUSE_TERMS * len(tenants), rng)
    vocabulary = Vocabulary.build(words[:VOCABULARY])
    weights = [len(tenants) - i for i in range(len(tenants))]
    own = iter(words[VOCABULARY:])
    seeded = Seeded(
        transcripts=dict.fromkeys(tenants, 0),
        house={tenant: list(itertools.islice(own, HOUSE_TERMS)) for tenant in tenants},
        subjects={tenant: Counter() for tenant in tenants},
    )
    now = datetime.now(UTC)
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        for first in range(0, transcripts, _BATCH):
            jobs, texts = io.StringIO(), io.StringIO()
            for index in range(first, min(first + _BATCH, transcripts)):
                tenant = rng.choices(tenants, weights)[0]
                subject = vocabulary.draw(rng, SUBJECT_TERMS)
                if rng.random() < 0.5:
                    subject += seeded.house[tenant]
                seeded.transcripts[tenant] += 1
                seeded.subjects[tenant].update(subject)
                parts = segments(rng, subject, rng.randint(50, 200))
                duration = parts[-1]["end"]
                job_id = uuid.uuid4()
                created = now - timedelta(minutes=transcripts - index)
                job = (
                    job_id, tenant, "completed", 100, "{}", "{}", f"{tenant}/{job_id}/source",
                    f"recording-{index}.m4a", int(duration * 4000), duration, "0" * 64, 1, 3,
                    created, created, created, created, created,
                )  # fmt: skip
                text = "".join(str(p["text"]) for p in parts).strip()
                row = (job_id, "en", 0.99, duration, text, json.dumps(parts), "tiny.en", "{}",
                       duration / 40, created)  # fmt: skip
                jobs.write("\t".join(_copy_value(v) for v in job) + "\n")
                texts.write("\t".join(_copy_value(v) for v in row) + "\n")
            for table, columns, rows in (("jobs", _JOB_COLUMNS, jobs),
                                         ("transcripts", _TRANSCRIPT_COLUMNS, texts)):  # fmt: skip
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write(rows.getvalue())
        conn.commit()
        cursor.execute("ANALYZE jobs")
        cursor.execute("ANALYZE transcripts")
        conn.commit()
    return seeded


def _copy_value(value: object) -> str:
    """One value in COPY's text format."""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
