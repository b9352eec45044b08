"""Router configuration, retry policy and deployment ordering (no network needed)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_worker.prompts import render
from llm_worker.router.base import (
    AuthError,
    BadRequestError,
    ContextTooLongError,
    MalformedResponseError,
    OverloadedError,
    RateLimitedError,
    RefusedError,
)
from llm_worker.router.config import Deployment, RetryPolicy, RouterConfig, load_config
from llm_worker.router.policy import Action, action_for, backoff_seconds, counts_against_breaker
from llm_worker.router.selection import fits, order

YAML = """
strategy: lowest_cost
deployments:
  - {name: big, provider: anthropic, model: claude, api_key_env: ANTHROPIC_KEY,
     input_price_per_million: 3, output_price_per_million: 15, context_window: 200000}
  - {name: cheap, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_KEY,
     input_price_per_million: 0.15, output_price_per_million: 0.6, context_window: 128000}
budget: {daily_usd: 2.5, tenants: {acme: 10}, when_exhausted: fail}
"""


def test_yaml_file_with_keys_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(YAML)
    monkeypatch.setenv("OPENAI_KEY", "sk-test")
    config = load_config(path)
    assert config.strategy == "lowest_cost"
    assert [d.name for d in config.deployments] == ["big", "cheap", "local"]
    cheap = config.deployment("cheap")
    assert cheap.input_price_per_million == Decimal("0.15")
    assert cheap.cost(1_000_000, 1_000_000) == Decimal("0.75")
    assert cheap.provider_config().api_key == "sk-test"
    assert config.deployment("big").provider_config().api_key is None  # variable unset
    assert config.budget.limit("acme") == Decimal(10)
    assert config.budget.limit("other") == Decimal("2.5")
    assert config.deployment("local").free


def test_env_deployments_replace_the_files_list(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(YAML)
    config = load_config(path, '[{"name": "vllm", "provider": "openai_compatible", '
                               '"model": "m", "base_url": "http://127.0.0.1:9/v1"}]')  # fmt: skip
    assert [d.name for d in config.deployments] == ["vllm", "local"]
    assert config.strategy == "lowest_cost"  # the rest of the file still applies


def test_no_configuration_means_the_local_provider_only() -> None:
    config = load_config(None)
    assert [(d.name, d.provider) for d in config.deployments] == [("local", "local")]


@pytest.mark.parametrize(
    "bad",
    [
        {"deployments": [{"name": "a", "provider": "openai"}] * 2},  # duplicate names
        {"deployments": [{"name": "a", "provider": "cohere"}]},  # unknown provider
        {"deployments": [{"name": "a", "provider": "openai", "apikey": "x"}]},  # typo
        {"deployments": [], "local_fallback": False},  # nothing to route to
        {"strategy": "cheapest"},
    ],
)
def test_invalid_configurations_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RouterConfig.model_validate(bad)


@pytest.mark.parametrize(
    ("error", "action", "breaker"),
    [
        (RateLimitedError("slow down", retry_after=1), Action.RETRY, True),
        (OverloadedError("busy"), Action.RETRY, True),
        (MalformedResponseError("junk"), Action.RETRY, True),
        (AuthError("bad key"), Action.FALLBACK, True),
        (BadRequestError("no"), Action.FALLBACK, False),
        (RefusedError("won't"), Action.FALLBACK, False),
        (ContextTooLongError("too long"), Action.LARGER_CONTEXT, False),
    ],
)
def test_each_error_class_has_its_action(error: Exception, action: Action, breaker: bool) -> None:
    assert action_for(error) is action  # type: ignore[arg-type]
    assert counts_against_breaker(error) is breaker  # type: ignore[arg-type]


def test_backoff_is_bounded_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=3, backoff_base_seconds=1, backoff_max_seconds=3,
                         max_retry_after_seconds=10)  # fmt: skip
    rng = random.Random(0)
    waits = [backoff_seconds(policy, n, None, rng) for n in (1, 2, 3) for _ in range(50)]
    assert all(w is not None and 0 <= w <= 3 for w in waits)
    assert len({round(w or 0, 3) for w in waits}) > 50  # jitter, not a fixed schedule
    assert backoff_seconds(policy, 1, 7.0, rng) == pytest.approx(7.0, abs=1.0)
    assert (backoff_seconds(policy, 1, 7.0, rng) or 0) >= 7.0
    assert backoff_seconds(policy, 1, 11.0, rng) is None  # too long to wait: fall back
    assert backoff_seconds(policy, 4, None, rng) is None  # out of retries


def _deployment(name: str, price: float, **extra: object) -> Deployment:
    return Deployment.model_validate({"name": name, "provider": "openai", "model": name,
        "input_price_per_million": price, "output_price_per_million": price, **extra})  # fmt: skip


def test_strategies_order_deployments() -> None:
    a, b, c = _deployment("a", 5), _deployment("b", 1), _deployment("c", 3)
    local = Deployment(name="local", provider="local")
    both = [a, b, c, local]
    assert [d.name for d in order(both, "priority", {})] == ["a", "b", "c", "local"]
    assert [d.name for d in order(both, "lowest_cost", {})] == ["b", "c", "a", "local"]
    latency: dict[str, float | None] = {"a": 120.0, "b": 900.0, "c": None, "local": 1.0}
    # c was never measured, so it goes first; local stays last however fast it is.
    assert [d.name for d in order(both, "lowest_latency", latency)] == ["c", "a", "b", "local"]


def test_weights_share_ties() -> None:
    heavy, light = _deployment("heavy", 1, weight=9), _deployment("light", 1, weight=1)
    rng = random.Random(1)
    firsts = [order([heavy, light], "lowest_cost", {}, rng)[0].name for _ in range(1000)]
    assert 850 < firsts.count("heavy") < 950


def test_the_context_window_check_counts_the_answer_too() -> None:
    request = render("summary", "word " * 2000)  # about 10000 characters
    assert fits(_deployment("big", 1, context_window=8000), request)
    assert not fits(_deployment("small", 1, context_window=3000), request)
    tight = _deployment("tight", 1, context_window=3600)
    assert fits(tight, render("summary", "word " * 1500)) != fits(tight, request)
