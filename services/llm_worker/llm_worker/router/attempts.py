"""Attempt records: what each call (or cache hit) of a routed request cost and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Attempt:
    """One call (or cache hit) as it is recorded for cost accounting."""

    deployment: str
    provider: str
    model: str
    outcome: str  # "ok", "cached", or the error code of a failed call
    latency_ms: int
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    error: str | None = None
