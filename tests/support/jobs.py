"""Helpers the job lifecycle tests share: make jobs, reload them, read queued messages."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import redis
from sqlalchemy.orm import Session

from tests.support.servers import Servers
from voxflow.embedded import redis_client_url
from voxflow.jobs import repository, service
from voxflow.jobs.models import Job, Transcript
from voxflow.storage import source_key

WORKER = "worker-a"
LEASE = timedelta(minutes=5)


def new_job(
    session: Session,
    tenant: str,
    *,
    tasks: Sequence[str] = (),
    max_attempts: int = 3,
    webhook_url: str | None = None,
) -> uuid.UUID:
    """Create a queued job (not committed) and return its id."""
    job_id = uuid.uuid4()
    service.create_job(
        session,
        job_id=job_id,
        tenant=tenant,
        options={"tasks": list(tasks)} if tasks else {},
        source_key=source_key(tenant, job_id),
        source_filename="meeting.wav",
        size_bytes=1234,
        duration_seconds=12.5,
        content_sha256="ab" * 32,
        max_attempts=max_attempts,
        webhook_url=webhook_url,
    )
    return job_id


def reload(session: Session, job_id: uuid.UUID) -> Job:
    """Read the job row again from the database (not the identity map)."""
    session.expire_all()
    job = repository.get_job(session, job_id)
    assert job is not None
    return job


def transcript_for(job_id: uuid.UUID, text: str = "Hello there.") -> Transcript:
    """A small transcript for `job_id`."""
    return Transcript(
        job_id=job_id,
        language="en",
        language_probability=0.9,
        duration_seconds=12.5,
        text=text,
        segments=[{"id": 0, "start": 0.0, "end": 1.5, "text": f" {text}"}],
        model="tiny.en",
        processing_seconds=0.5,
    )


def published(servers: Servers, queue: str) -> list[uuid.UUID]:
    """Job ids of the messages waiting in a queue (kombu keeps each queue as a Redis list)."""
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    try:
        raw = cast(list[bytes], client.lrange(queue, 0, -1))
    finally:
        client.close()
    ids = []
    for item in raw:
        message = json.loads(item)
        assert message["properties"]["body_encoding"] == "base64"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.append(uuid.UUID(args[0]))
    return ids
