"""Circuit breakers in the real Redis: opening, half-open probes, sharing across processes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from llm_worker.router.breaker import Breakers
from llm_worker.router.config import BreakerPolicy
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url


@pytest.fixture
def client(servers: Servers) -> Iterator[redis.Redis]:
    """A client of the suite's Redis."""
    connection = redis.Redis.from_url(redis_client_url(servers.redis_url))
    yield connection
    connection.close()


@pytest.fixture
def name() -> str:
    """A deployment name no other test uses."""
    return f"dep-{uuid.uuid4().hex[:8]}"


def test_consecutive_failures_open_the_circuit(client: redis.Redis, name: str) -> None:
    breakers = Breakers(client, BreakerPolicy(failures=3, min_calls=100, cooldown_seconds=60))
    assert breakers.record(name, ok=False) == "closed"
    assert breakers.record(name, ok=False) == "closed"
    assert breakers.allow(name) == "closed"
    assert breakers.record(name, ok=False) == "open"
    assert breakers.allow(name) is None
    assert breakers.state(name) == "open"


def test_a_success_resets_the_consecutive_count(client: redis.Redis, name: str) -> None:
    breakers = Breakers(client, BreakerPolicy(failures=2, min_calls=100))
    for _ in range(5):
        assert breakers.record(name, ok=False) == "closed"
        assert breakers.record(name, ok=True) == "closed"
    assert breakers.allow(name) == "closed"


def test_failure_rate_over_the_window_opens_it(client: redis.Redis, name: str) -> None:
    policy = BreakerPolicy(failures=100, failure_rate=0.5, min_calls=6, window_seconds=30)
    breakers = Breakers(client, policy)
    outcomes = [True, False, True, False, True]
    assert [breakers.record(name, ok=ok) for ok in outcomes] == ["closed"] * 5
    assert breakers.record(name, ok=False) == "open"  # 3 of 6 failed


def test_half_open_allows_one_probe_and_its_success_closes(client: redis.Redis, name: str) -> None:
    breakers = Breakers(client, BreakerPolicy(failures=1, cooldown_seconds=1.0))
    breakers.record(name, ok=False)
    assert breakers.allow(name) is None
    time.sleep(1.05)
    assert breakers.state(name) == "half_open"
    assert breakers.allow(name) == "probe"
    assert breakers.allow(name) is None  # a second caller waits for the probe's outcome
    assert breakers.record(name, ok=True, probe=True) == "closed"
    assert breakers.allow(name) == "closed"
    assert breakers.state(name) == "closed"


def test_a_failed_probe_opens_it_for_another_cooldown(client: redis.Redis, name: str) -> None:
    breakers = Breakers(client, BreakerPolicy(failures=1, cooldown_seconds=1.0))
    breakers.record(name, ok=False)
    time.sleep(1.05)
    assert breakers.allow(name) == "probe"
    assert breakers.record(name, ok=False, probe=True) == "open"
    assert breakers.allow(name) is None
    time.sleep(1.05)
    assert breakers.allow(name) == "probe"


def test_another_process_sees_the_open_circuit(
    client: redis.Redis, name: str, servers: Servers
) -> None:
    breakers = Breakers(client, BreakerPolicy(failures=2, cooldown_seconds=60))
    breakers.record(name, ok=False)
    breakers.record(name, ok=False)
    script = (
        "import sys, redis\n"
        "from llm_worker.router.breaker import Breakers\n"
        "from llm_worker.router.config import BreakerPolicy\n"
        "from voxflow.embedded import redis_client_url\n"
        "b = Breakers(redis.Redis.from_url(redis_client_url(sys.argv[1])), BreakerPolicy())\n"
        "print(b.state(sys.argv[2]), b.allow(sys.argv[2]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, servers.redis_url, name],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.split() == ["open", "None"]
