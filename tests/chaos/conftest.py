"""Chaos fixtures: a Redis server of the test's own and the platform as restartable processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import FAST_RECOVERY, Platform, RedisServer

PlatformFactory = Callable[..., Platform]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/chaos `chaos` (deselect them with `-m "not chaos"`)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server only this test uses (so it may be killed and restarted empty)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def make_platform(broker: RedisServer, tmp_path: Path) -> Iterator[PlatformFactory]:
    """Build the platform's processes on this test's broker (and the suite's database)."""
    built: list[Platform] = []

    def build(**env: str) -> Platform:
        platform = Platform(
            tmp_path / f"logs-{len(built)}",
            {**os.environ, **FAST_RECOVERY, "VOXFLOW_REDIS_URL": broker.url, **env},
        )
        platform.workdir.mkdir(parents=True)
        built.append(platform)
        return platform

    yield build
    for platform in built:
        platform.stop()
