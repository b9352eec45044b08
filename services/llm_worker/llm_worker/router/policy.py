"""What the router does about each kind of failure, and how long it waits before a retry."""

from __future__ import annotations

import enum
import random

from llm_worker.router.base import (
    AuthError,
    ContextTooLongError,
    MalformedResponseError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
)
from llm_worker.router.config import RetryPolicy


class Action(enum.Enum):
    """The router's answer to a failed call."""

    RETRY = "retry"  # the same deployment again, after a backoff
    FALLBACK = "fallback"  # the next deployment at once
    LARGER_CONTEXT = "larger_context"  # the next deployment with a larger context window


# Transient: worth another try at the same place.
_TRANSIENT = (RateLimitedError, OverloadedError, ProviderTimeoutError, ProviderConnectionError,
              MalformedResponseError)  # fmt: skip
# Says something about the deployment's health (counted by its breaker). A refusal, a bad
# request or a prompt that is too long say something about the request instead.
_HEALTH = (*_TRANSIENT, AuthError)


def action_for(error: ProviderError) -> Action:
    """Retry transient failures; never retry auth, bad requests or refusals."""
    if isinstance(error, ContextTooLongError):
        return Action.LARGER_CONTEXT
    if isinstance(error, _TRANSIENT):
        return Action.RETRY
    # AuthError (another deployment has its own key), BadRequestError (another vendor may
    # accept what this one rejects), RefusedError (another model may answer): no retry here.
    return Action.FALLBACK


def counts_against_breaker(error: ProviderError) -> bool:
    """Whether a failure is the deployment's fault rather than the request's."""
    return isinstance(error, _HEALTH)


def backoff_seconds(
    policy: RetryPolicy, retry: int, retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before retry number `retry` (1-based); None: fall back instead.

    Exponential with full jitter, but never less than a Retry-After the vendor sent; a
    Retry-After longer than the policy allows means fall back now rather than block.
    """
    if retry > policy.max_retries:
        return None
    if retry_after is not None and retry_after > policy.max_retry_after_seconds:
        return None
    ceiling = min(policy.backoff_max_seconds, policy.backoff_base_seconds * 2 ** (retry - 1))
    wait = (rng or random).uniform(0, ceiling)
    return max(wait, retry_after or 0.0)
