"""Router configuration: deployments and policies, from a YAML file and/or the environment.

A deployment is one model at one provider with its price and limits. Keys are never written
in the configuration: `api_key_env` names the environment variable that holds the key.

    strategy: priority            # priority | lowest_cost | lowest_latency
    deployments:
      - name: gpt-4o-mini
        provider: openai
        model: gpt-4o-mini
        api_key_env: OPENAI_API_KEY
        input_price_per_million: 0.15
        output_price_per_million: 0.60
        context_window: 128000
      - name: ollama
        provider: openai_compatible
        base_url: http://ollama:11434/v1
        model: llama3.1:8b
        context_window: 8192
    retry: {max_retries: 2, backoff_base_seconds: 0.5}
    breaker: {failures: 5, cooldown_seconds: 30}
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_worker.router.base import ProviderConfig

ProviderKind = Literal["openai", "anthropic", "mistral", "openai_compatible", "local"]
Strategy = Literal["priority", "lowest_cost", "lowest_latency"]
BudgetAction = Literal["free_only", "fail"]

LOCAL_DEPLOYMENT = "local"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deployment(_Strict):
    """One model at one provider, with what it costs and what it can take."""

    name: str = Field(min_length=1, max_length=64)
    provider: ProviderKind
    model: str = "extractive-v1"
    api_key_env: str | None = None
    base_url: str | None = None
    input_price_per_million: Decimal = Field(default=Decimal(0), ge=0)
    output_price_per_million: Decimal = Field(default=Decimal(0), ge=0)
    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int = Field(default=1024, gt=0)
    weight: float = Field(default=1.0, gt=0, description="Tie-break share among equals.")
    timeout_seconds: float = Field(default=60.0, gt=0)
    model_class: str | None = Field(
        default=None, description="Cache namespace: deployments of one class share answers."
    )
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute allowed.")

    @property
    def free(self) -> bool:
        """True when calls cost nothing (local or self-hosted)."""
        return self.input_price_per_million == 0 and self.output_price_per_million == 0

    @property
    def cache_class(self) -> str:
        """The namespace this deployment's answers are cached under."""
        return self.model_class or f"{self.provider}:{self.model}"

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        """The price of one call in USD."""
        million = Decimal(1_000_000)
        return (
            self.input_price_per_million * tokens_in + self.output_price_per_million * tokens_out
        ) / million

    def provider_config(self) -> ProviderConfig:
        """What the provider module builds its client from (the key read from the env)."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return ProviderConfig(
            kind=self.provider, model=self.model, api_key=key,
            base_url=self.base_url, timeout_seconds=self.timeout_seconds,
        )  # fmt: skip


class RetryPolicy(_Strict):
    """How often and how long to retry one deployment before falling back."""

    max_retries: int = Field(default=2, ge=0)
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)
    max_retry_after_seconds: float = Field(
        default=20.0, ge=0, description="A longer Retry-After falls back at once instead."
    )


class BreakerPolicy(_Strict):
    """When a deployment's circuit opens and when it is probed again."""

    failures: int = Field(default=5, ge=1, description="Consecutive failures that open it.")
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window_seconds: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=10, ge=1, description="Calls in the window before the rate")
    cooldown_seconds: float = Field(default=30.0, gt=0)


class CachePolicy(_Strict):
    """The response cache."""

    enabled: bool = True
    ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)


class BudgetPolicy(_Strict):
    """Per-tenant daily spend limits (UTC days)."""

    daily_usd: Decimal | None = Field(default=None, ge=0, description="Default per tenant.")
    tenants: dict[str, Decimal] = Field(default_factory=dict)
    when_exhausted: BudgetAction = "free_only"

    def limit(self, tenant: str) -> Decimal | None:
        """The tenant's daily limit, if it has one."""
        return self.tenants.get(tenant, self.daily_usd)


class RouterConfig(_Strict):
    """Everything the router is configured with."""

    strategy: Strategy = "priority"
    deployments: list[Deployment] = Field(default_factory=list)
    local_fallback: bool = Field(
        default=True, description="Append the offline local provider as the last resort."
    )
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    cache: CachePolicy = CachePolicy()
    budget: BudgetPolicy = BudgetPolicy()

    @model_validator(mode="after")
    def _complete(self) -> RouterConfig:
        names = [d.name for d in self.deployments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate deployment names: {', '.join(duplicates)}")
        if self.local_fallback and not any(d.provider == "local" for d in self.deployments):
            local = Deployment(name=LOCAL_DEPLOYMENT, provider="local", context_window=10**9)
            object.__setattr__(self, "deployments", [*self.deployments, local])
        if not self.deployments:
            raise ValueError("no deployments configured and the local fallback is off")
        return self

    def deployment(self, name: str) -> Deployment:
        """A deployment by name."""
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        raise KeyError(name)


def load_config(path: Path | None, deployments_json: str | None = None) -> RouterConfig:
    """Read the YAML file (if any); deployments from the env JSON replace the file's list."""
    data: dict[str, object] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the router configuration must be a mapping")
        data = loaded
    if deployments_json:
        data = {**data, "deployments": yaml.safe_load(deployments_json)}
    return RouterConfig.model_validate(data)
