"""The fair pool queue: connections go to waiters in arrival order, and none is lost."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty

from voxflow.fairpool import FairAsyncQueue


async def _get(queue: FairAsyncQueue[str], timeout: float | None = None) -> str:  # noqa: ASYNC109
    return await greenlet_spawn(queue.get, True, timeout)


def test_a_returned_connection_goes_to_the_oldest_waiter_not_to_a_newcomer() -> None:
    async def scenario() -> list[tuple[str, str]]:
        queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=2)
        served: list[tuple[str, str]] = []

        async def request(name: str) -> None:
            served.append((name, await _get(queue)))

        waiters = [asyncio.create_task(request(f"waiter{i}")) for i in range(3)]
        await asyncio.sleep(0)  # all three are waiting now
        queue.put_nowait("conn-a")
        # A newcomer arrives before the woken waiter ran: it must wait its turn.
        newcomer = asyncio.create_task(request("newcomer"))
        queue.put_nowait("conn-b")
        await asyncio.sleep(0)
        queue.put_nowait("conn-c")
        queue.put_nowait("conn-d")
        await asyncio.gather(*waiters, newcomer)
        return served

    served = asyncio.run(scenario())
    assert [name for name, _ in served] == ["waiter0", "waiter1", "waiter2", "newcomer"]
    assert [conn for _, conn in served] == ["conn-a", "conn-b", "conn-c", "conn-d"]


def test_idle_connections_are_taken_at_once_and_kept_up_to_the_size() -> None:
    async def scenario() -> None:
        queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=2)
        queue.put_nowait("a")
        queue.put_nowait("b")
        assert queue.full()
        assert await _get(queue) == "a"
        assert await _get(queue) == "b"
        assert queue.empty()

    asyncio.run(scenario())


def test_a_waiter_that_times_out_leaves_the_line() -> None:
    async def scenario() -> str:
        queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=1)
        with pytest.raises(Empty):
            await _get(queue, timeout=0.05)
        later = asyncio.create_task(_get(queue))
        await asyncio.sleep(0)
        queue.put_nowait("conn")  # goes to the live waiter, not the one that gave up
        return await later

    assert asyncio.run(scenario()) == "conn"


def test_a_connection_handed_to_a_canceled_request_goes_to_the_next() -> None:
    async def scenario() -> tuple[str, int]:
        queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=1)
        first = asyncio.create_task(_get(queue))
        second = asyncio.create_task(_get(queue))
        await asyncio.sleep(0)
        queue.put_nowait("conn")  # handed to the first waiter...
        first.cancel()  # ...whose client goes away before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second, queue.qsize()

    assert asyncio.run(scenario()) == ("conn", 0)
