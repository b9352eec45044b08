"""Settings of the LLM worker."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from voxflow.settings import RedisSettings
from voxflow.worker.process import WorkerSettings


class LlmWorkerSettings(WorkerSettings, RedisSettings):
    """Database, storage, job and broker settings plus where the router's config lives."""

    llm_config_file: Path | None = Field(
        default=None,
        description="YAML file with the router's deployments and policies (see "
        "docs/llm.md). Unset: only what LLM_DEPLOYMENTS gives, plus the local provider.",
    )
    llm_deployments: str | None = Field(
        default=None,
        description="Deployments as a JSON list (replaces the file's list), e.g. "
        '[{"name":"gpt","provider":"openai","model":"gpt-4o-mini",'
        '"api_key_env":"OPENAI_API_KEY"}].',
    )
    llm_redis_url: str | None = Field(
        default=None,
        description="Redis for breakers, cache, latency and rate limits (default: REDIS_URL).",
    )
