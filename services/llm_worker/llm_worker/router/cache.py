"""Response cache in Redis: the same task on the same transcript is paid for once.

The key hashes everything that decides the answer: the task, its prompt template version,
the rendered messages (transcript and instruction included), the output settings and the
deployment's model class. Deployments of one class share entries, so a fallback between
equivalent deployments still hits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import redis

from llm_worker.router.base import Completion, CompletionRequest

log = logging.getLogger(__name__)

PREFIX = "voxflow:llm:cache:"


def cache_key(request: CompletionRequest, template: str, model_class: str) -> str:
    """The Redis key for one request to one class of model."""
    material = json.dumps(
        {
            "task": request.task,
            "template": template,
            "model_class": model_class,
            "messages": [[m.role, m.content] for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "json": request.json_output,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return PREFIX + hashlib.sha256(material.encode()).hexdigest()


class ResponseCache:
    """Completions by key, with a TTL; a Redis outage degrades to no caching."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds

    def get(self, key: str) -> Completion | None:
        """The cached completion, or None."""
        try:
            raw = self.redis.get(key)
        except redis.RedisError as exc:
            log.warning("LLM cache unavailable, calling the provider: %s", exc)
            return None
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return Completion(**data)

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion (failures to store are logged, not raised)."""
        data = {
            "text": completion.text,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "model": completion.model,
            "provider": completion.provider,
            "latency_ms": completion.latency_ms,
            "output_json": completion.output_json,
        }
        try:
            self.redis.set(key, json.dumps(data), ex=self.ttl)
        except redis.RedisError as exc:
            log.warning("could not cache an LLM answer: %s", exc)
