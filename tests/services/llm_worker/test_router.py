"""The router end to end: real vendor SDKs, a local server speaking their protocols, real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis

from llm_worker.notes import write_note
from llm_worker.prompts import render
from llm_worker.router.config import RouterConfig
from llm_worker.router.router import Router, RoutingError
from tests.services.llm_worker.conftest import VENDOR_API_KEY
from tests.support.llm_vendors import (
    VendorServer,
    context_too_long,
    malformed,
    ok,
    rate_limited,
    server_error,
    slow,
)
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url

KEY_ENV = "VOXFLOW_TEST_VENDOR_KEY"
TRANSCRIPT = "We agreed to ship the release on Friday. Anna will write the notes."

Build = Callable[..., Router]


@pytest.fixture
def client(servers: Servers) -> Iterator[redis.Redis]:
    """A client of the suite's Redis (breakers, cache and latency live there)."""
    connection = redis.Redis.from_url(redis_client_url(servers.redis_url))
    yield connection
    connection.close()


@pytest.fixture
def build(
    vendor_server: VendorServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Build:
    """Make a router over deployments given as (name suffix, vendor, extra fields)."""
    monkeypatch.setenv(KEY_ENV, VENDOR_API_KEY)
    monkeypatch.setenv("VOXFLOW_TEST_WRONG_KEY", "sk-wrong")
    run = uuid.uuid4().hex[:8]  # fresh breaker, cache and latency keys for every test
    sleeps: list[float] = []

    def make(*deployments: tuple[str, str, dict[str, Any]], **config: Any) -> Router:
        data = {
            "deployments": [
                deployment(vendor_server, f"{name}-{run}", vendor, model_class=run, **extra)
                for name, vendor, extra in deployments
            ],
            "local_fallback": False,
            "retry": {"max_retries": 2, "backoff_base_seconds": 0.01},
            **config,
        }
        router = Router(RouterConfig.model_validate(data), client, sleep=sleeps.append)
        router.sleeps = sleeps  # type: ignore[attr-defined]
        return router

    return make


@pytest.fixture
def vendor_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vendor server's key, where deployments' `api_key_env` points."""
    monkeypatch.setenv(KEY_ENV, VENDOR_API_KEY)


def deployment(server: VendorServer, name: str, vendor: str, **extra: Any) -> dict[str, Any]:
    """A deployment of `vendor` on the local server, priced at 1 and 2 USD per million."""
    return {
        "name": name, "provider": vendor, "model": f"{vendor}-model", "api_key_env": KEY_ENV,
        "base_url": server.url(vendor), "timeout_seconds": 5,
        "input_price_per_million": 1, "output_price_per_million": 2, **extra,
    }  # fmt: skip


def summary() -> Any:
    """The summary request for the test transcript."""
    return render("summary", TRANSCRIPT)


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "mistral", "openai_compatible"])
def test_success_on_each_provider_is_priced(
    build: Build, vendor_server: VendorServer, vendor: str
) -> None:
    vendor_server.enqueue(vendor, ok("Ship on Friday.", tokens_in=1000, tokens_out=500))
    router = build(("only", vendor, {}))
    routed = router.complete(summary(), template="summary.v1")
    assert routed.completion.text == "Ship on Friday."
    assert routed.completion.provider == vendor
    assert (routed.completion.tokens_in, routed.completion.tokens_out) == (1000, 500)
    assert routed.cost_usd == Decimal("0.002")  # 1000 * 1/M + 500 * 2/M
    assert [a.outcome for a in routed.attempts] == ["ok"]
    assert not routed.cached
    assert len(vendor_server.requests_for(vendor)) == 1


def test_rate_limit_waits_for_retry_after_then_succeeds(
    build: Build, vendor_server: VendorServer
) -> None:
    vendor_server.enqueue("openai", rate_limited(retry_after=3), ok("fine"))
    router = build(("a", "openai", {}))
    routed = router.complete(summary(), template="summary.v1")
    assert routed.completion.text == "fine"
    assert [a.outcome for a in routed.attempts] == ["rate_limited", "ok"]
    assert router.sleeps == [pytest.approx(3.0, abs=0.02)]  # type: ignore[attr-defined]
    assert len(vendor_server.requests_for("openai")) == 2  # the SDK did not retry on its own


def test_a_retry_after_beyond_the_limit_falls_back_at_once(
    build: Build, vendor_server: VendorServer
) -> None:
    vendor_server.enqueue("openai", rate_limited(retry_after=600))
    router = build(("a", "openai", {}), ("b", "anthropic", {}))
    routed = router.complete(summary(), template="summary.v1")
    assert routed.completion.provider == "anthropic"
    assert router.sleeps == []  # type: ignore[attr-defined]


def test_persistent_server_errors_fall_back_to_the_next_deployment(
    build: Build, vendor_server: VendorServer
) -> None:
    vendor_server.set_sticky("openai", server_error(500))
    router = build(("first", "openai", {}), ("second", "anthropic", {}))
    routed = router.complete(summary(), template="summary.v1")
    assert routed.completion.provider == "anthropic"
    assert [a.outcome for a in routed.attempts] == ["overloaded"] * 3 + ["ok"]
    assert len(vendor_server.requests_for("openai")) == 3  # one call and two retries
    assert routed.cost_usd == routed.attempts[-1].cost_usd  # failed calls cost nothing


def test_timeouts_are_retried_then_fall_back(build: Build, vendor_server: VendorServer) -> None:
    vendor_server.set_sticky("mistral", slow(3.0))
    router = build(("slow", "mistral", {"timeout_seconds": 0.3}), ("b", "openai", {}),
                   retry={"max_retries": 1, "backoff_base_seconds": 0.01})  # fmt: skip
    started = time.monotonic()
    routed = router.complete(summary(), template="summary.v1")
    assert routed.completion.provider == "openai"
    assert [a.outcome for a in routed.attempts] == ["timeout", "timeout", "ok"]
    assert time.monotonic() - started < 2.5  # the slow replies were not waited for


def test_context_too_long_skips_to_a_larger_window(
    build: Build, vendor_server: VendorServer
) -> None:
    vendor_server.enqueue("openai", context_too_long())
    router = build(
        ("mid", "openai", {"context_window": 16_000}),
        ("small", "mistral", {"context_window": 8_000}),  # no larger: skipped
        ("large", "anthropic", {"context_window": 200_000}),
    )
    routed = router.complete(summary(), template="summary.v1")
    assert routed.completion.provider == "anthropic"
    assert [a.outcome for a in routed.attempts] == ["context_too_long", "ok"]
    assert vendor_server.requests_for("mistral") == []


def test_the_pre_call_check_skips_windows_too_small(
    build: Build, vendor_server: VendorServer
) -> None:
    router = build(("tiny", "openai", {"context_window": 500}), ("big", "anthropic", {}))
    routed = router.complete(summary(), template="summary.v1")  # ~1024 tokens of answer
    assert routed.completion.provider == "anthropic"
    assert vendor_server.requests_for("openai") == []


def test_auth_errors_are_not_retried(build: Build, vendor_server: VendorServer) -> None:
    router = build(("bad-key", "openai", {"api_key_env": "VOXFLOW_TEST_WRONG_KEY"}),
                   ("good", "mistral", {}))  # fmt: skip
    routed = router.complete(summary(), template="summary.v1")
    assert [a.outcome for a in routed.attempts] == ["auth", "ok"]
    assert len(vendor_server.requests_for("openai")) == 1
    assert "sk-wrong" not in (routed.attempts[0].error or "")


def test_a_missing_key_skips_the_deployment(
    build: Build, vendor_server: VendorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOXFLOW_TEST_UNSET_KEY", raising=False)
    router = build(("no-key", "anthropic", {"api_key_env": "VOXFLOW_TEST_UNSET_KEY"}),
                   ("good", "openai", {}))  # fmt: skip
    routed = router.complete(summary(), template="summary.v1")
    assert [a.outcome for a in routed.attempts] == ["auth", "ok"]
    assert vendor_server.requests_for("anthropic") == []


def test_malformed_bodies_fail_cleanly(build: Build, vendor_server: VendorServer) -> None:
    vendor_server.set_sticky("anthropic", malformed())
    router = build(("junk", "anthropic", {}))
    with pytest.raises(RoutingError) as caught:
        router.complete(summary(), template="summary.v1")
    assert caught.value.code == "bad_response"
    assert [a.outcome for a in caught.value.attempts] == ["bad_response"] * 3
    assert "junk" in caught.value.message


def test_the_cache_answers_the_same_transcript_for_free(
    build: Build, vendor_server: VendorServer
) -> None:
    router = build(("a", "openai", {}))
    first = router.complete(summary(), template="summary.v1")
    again = router.complete(summary(), template="summary.v1")
    assert (first.cached, again.cached) == (False, True)
    assert again.completion.text == first.completion.text
    assert again.cost_usd == 0
    assert first.cost_usd > 0
    assert [a.outcome for a in again.attempts] == ["cached"]
    assert len(vendor_server.requests_for("openai")) == 1
    other = router.complete(summary(), template="summary.v2")  # a new template version
    assert not other.cached


def test_budget_exhaustion_routes_only_to_free_deployments(
    build: Build, vendor_server: VendorServer
) -> None:
    router = build(("paid", "openai", {}), ("self-hosted", "openai_compatible",
                   {"input_price_per_million": 0, "output_price_per_million": 0}))  # fmt: skip
    routed = router.complete(summary(), template="summary.v1", free_only=True)
    assert routed.completion.provider == "openai_compatible"
    assert routed.cost_usd == 0
    assert vendor_server.requests_for("openai") == []


def _breaker_config(server: VendorServer, cooldown: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    return {
        "deployments": [
            deployment(server, f"down-{run}", "openai"),
            deployment(server, f"up-{run}", "anthropic"),
        ],
        "local_fallback": False,
        "retry": {"max_retries": 0},
        "breaker": {"failures": 3, "cooldown_seconds": cooldown},
        "cache": {"enabled": False},
    }


def _open_the_first(router: Router, server: VendorServer) -> str:
    """Three calls while the first vendor answers 500: its circuit opens."""
    server.set_sticky("openai", server_error(500))
    for _ in range(3):
        routed = router.complete(summary(), template="summary.v1")
        assert routed.completion.provider == "anthropic"
    assert len(server.requests_for("openai")) == 3
    name = router.config.deployments[0].name
    assert router.breakers.state(name) == "open"
    return name


@pytest.mark.usefixtures("vendor_key")
def test_the_breaker_opens_and_another_process_routes_past_it(
    vendor_server: VendorServer, client: redis.Redis, servers: Servers
) -> None:
    config = _breaker_config(vendor_server, cooldown=300)
    _open_the_first(Router(RouterConfig.model_validate(config), client), vendor_server)
    script = (
        "import json, sys, redis\n"
        "from llm_worker.prompts import render\n"
        "from llm_worker.router.config import RouterConfig\n"
        "from llm_worker.router.router import Router\n"
        "from voxflow.embedded import redis_client_url\n"
        "router = Router(RouterConfig.model_validate(json.loads(sys.argv[1])),\n"
        "                redis.Redis.from_url(redis_client_url(sys.argv[2])))\n"
        "routed = router.complete(render('summary', sys.argv[3]), template='summary.v1')\n"
        "print(routed.completion.provider)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, json.dumps(config), servers.redis_url, TRANSCRIPT],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert other.stdout.strip() == "anthropic"
    assert len(vendor_server.requests_for("openai")) == 3  # nobody called the open circuit


@pytest.mark.usefixtures("vendor_key")
def test_after_the_cooldown_one_probe_closes_a_recovered_circuit(
    vendor_server: VendorServer, client: redis.Redis
) -> None:
    router = Router(RouterConfig.model_validate(_breaker_config(vendor_server, 0.5)), client)
    name = _open_the_first(router, vendor_server)
    vendor_server.set_sticky("openai", None)  # the vendor is back
    time.sleep(0.6)
    assert router.breakers.state(name) == "half_open"
    probe = router.complete(summary(), template="summary.v1")
    assert probe.completion.provider == "openai"
    assert router.breakers.state(name) == "closed"
    assert len(vendor_server.requests_for("openai")) == 4


def test_long_transcripts_are_map_reduced_not_truncated(
    build: Build, vendor_server: VendorServer
) -> None:
    segments = [{"text": f"Sentence number {i} says something about topic {i % 7}."}
                for i in range(400)]  # fmt: skip
    router = build(("small", "openai", {"context_window": 3_000, "max_output_tokens": 300}))
    note = write_note(router, "summary", "", segments, None)
    calls = vendor_server.requests_for("openai")
    assert note.parts >= 4
    assert len(calls) == note.parts + 1  # the parts, then the reduce step
    sent = " ".join(str(c.body) for c in calls[:-1])
    assert all(f"Sentence number {i} says" in sent for i in range(400))  # nothing dropped
    assert "Part 1:" in str(calls[-1].body)
    assert note.cost_usd == sum(a.cost_usd for a in note.attempts) > 0


def test_requests_per_minute_limits_move_calls_on(
    build: Build, vendor_server: VendorServer
) -> None:
    router = build(("limited", "openai", {"rpm": 2}), ("spare", "anthropic", {}),
                   cache={"enabled": False})  # fmt: skip
    providers = [router.complete(summary(), template="summary.v1").completion.provider
                 for _ in range(3)]  # fmt: skip
    assert providers == ["openai", "openai", "anthropic"]


def test_lowest_latency_learns_which_deployment_is_faster(
    build: Build, vendor_server: VendorServer
) -> None:
    vendor_server.set_sticky("openai", slow(0.3))
    router = build(("slow", "openai", {}), ("fast", "anthropic", {}),
                   strategy="lowest_latency", cache={"enabled": False})  # fmt: skip
    providers = [router.complete(summary(), template="summary.v1").completion.provider
                 for _ in range(4)]  # fmt: skip
    assert sorted(providers[:2]) == ["anthropic", "openai"]  # each measured once first
    assert providers[2:] == ["anthropic", "anthropic"]
    names = [d.name for d in router.config.deployments]
    averages = router.latency.get(names)
    assert (averages[names[0]] or 0) > (averages[names[1]] or 0) + 200
