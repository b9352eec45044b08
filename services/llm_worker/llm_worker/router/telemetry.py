"""The router's attempts as Prometheus metrics (voxflow.observability.metrics)."""

from __future__ import annotations

from collections.abc import Sequence

from llm_worker.router.attempts import Attempt
from llm_worker.router.config import RouterConfig
from voxflow.observability.metrics import record_llm_attempt


def record_attempts(config: RouterConfig, attempts: Sequence[Attempt]) -> None:
    """Count each attempt under its deployment's configured provider and model.

    The configured names, not the ones a vendor echoes back (`gpt-4o-mini-2024-07-18`), so
    that a deployment's calls, failures and costs share one label set.
    """
    deployments = {d.name: d for d in config.deployments}
    for attempt in attempts:
        deployment = deployments.get(attempt.deployment)
        record_llm_attempt(
            provider=deployment.provider if deployment else attempt.provider,
            model=deployment.model if deployment else attempt.model,
            outcome=attempt.outcome,
            seconds=attempt.latency_ms / 1000,
            tokens_in=attempt.tokens_in,
            tokens_out=attempt.tokens_out,
            cost_usd=attempt.cost_usd,
        )
