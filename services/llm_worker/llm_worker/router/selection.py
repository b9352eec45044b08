"""Which deployments to try, in which order: strategy, context check, budget and rate limits."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

import redis

from llm_worker.router.base import CompletionRequest
from llm_worker.router.config import Deployment, Strategy

LATENCY_PREFIX = "voxflow:llm:latency:"
RPM_PREFIX = "voxflow:llm:rpm:"
# Weight of the newest observation in the latency moving average.
LATENCY_ALPHA = 0.2
CHARS_PER_TOKEN = 3.5  # conservative for English (real tokenisers give about 4)


def estimate_tokens(text: str) -> int:
    """A tokeniser-free upper-ish estimate of a text's token count."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(request: CompletionRequest) -> int:
    """Estimated tokens of a request's messages plus the answer it may produce."""
    return sum(estimate_tokens(m.content) + 4 for m in request.messages) + request.max_tokens


class LatencyStats:
    """An exponential moving average of each deployment's latency, shared in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def observe(self, name: str, latency_ms: float) -> None:
        """Fold one successful call's latency into the average."""
        key = LATENCY_PREFIX + name
        old = self.redis.get(key)
        new = (
            latency_ms
            if old is None
            else (1 - LATENCY_ALPHA) * float(old) + (LATENCY_ALPHA * latency_ms)
        )
        self.redis.set(key, f"{new:.3f}", ex=24 * 3600)

    def get(self, names: Sequence[str]) -> dict[str, float | None]:
        """The averages (None for a deployment never measured)."""
        values = self.redis.mget([LATENCY_PREFIX + n for n in names]) if names else []
        return {n: float(v) if v is not None else None for n, v in zip(names, values, strict=True)}


def order(
    deployments: Sequence[Deployment],
    strategy: Strategy,
    latency: dict[str, float | None],
    rng: random.Random | None = None,
) -> list[Deployment]:
    """The deployments in the order the strategy prefers; weight breaks ties at random."""
    rng = rng or random.Random()  # noqa: S311 (load spreading, not secrets)
    # Weighted random tie-break: a larger weight means a smaller random key on average.
    tiebreak = {d.name: rng.random() ** (1.0 / d.weight) for d in deployments}
    position = {d.name: i for i, d in enumerate(deployments)}

    def key(d: Deployment) -> tuple[float, ...]:
        if strategy == "lowest_cost":
            price = float(d.input_price_per_million + d.output_price_per_million)
            return (d.provider == "local", price, -tiebreak[d.name])
        if strategy == "lowest_latency":
            measured = latency.get(d.name)
            # Unmeasured deployments go first so each gets measured once.
            return (d.provider == "local", measured if measured is not None else -1.0,
                    -tiebreak[d.name])  # fmt: skip
        return (float(position[d.name]),)

    return sorted(deployments, key=key)


def fits(deployment: Deployment, request: CompletionRequest) -> bool:
    """Pre-call check: the prompt plus the answer fit the deployment's context window."""
    return prompt_tokens(request) <= deployment.context_window


def take_rate_slot(client: redis.Redis, deployment: Deployment) -> bool:
    """Count a call against the deployment's requests-per-minute limit; False if over it."""
    if deployment.rpm is None:
        return True
    minute = int(time.time() // 60)
    key = f"{RPM_PREFIX}{deployment.name}:{minute}"
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count, _ = pipe.execute()
    return int(count) <= deployment.rpm
