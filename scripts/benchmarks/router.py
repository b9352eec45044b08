"""What the LLM router adds to a call: routed vs direct SDK calls against one local server.

    uv run python -m scripts.benchmarks.router [--calls 300] [--redis-url redis://...]

Starts the local server that speaks OpenAI's protocol (the one the tests use), then, in one
run and interleaved so drift hits both alike, makes the same chat completion
(1) directly with the `openai` SDK, (2) through the router with the cache off (breaker check,
rate-limit slot, provider call, breaker and latency updates in Redis) and (3) through the
router as a cache hit. Reports median and 95th-percentile latency and the router's added
median (target: under 2 ms). Redis is `--redis-url`, else VOXFLOW_REDIS_URL, else an
embedded one. Writes `.voxflow/bench/router.json`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import openai
import redis
import typer

from llm_worker.prompts import render
from llm_worker.router.config import RouterConfig
from llm_worker.router.router import Router
from scripts.benchmarks.harness import RESULTS, percentile, write_json
from tests.support.llm_vendors import VendorServer  # the vendor-protocol server of the tests
from voxflow.embedded import EmbeddedRedis, redis_client_url

KEY = "sk-bench-0123456789"
OUT = RESULTS / "router.json"


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(percentile(samples, 0.95) * 1000, 3),
        "calls": len(samples),
    }


def _timed(call: Any) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def measure(server: VendorServer, client: redis.Redis, calls: int) -> dict[str, Any]:
    """Interleaved direct, routed and cached calls; their latency statistics."""
    os.environ["VOXFLOW_BENCH_KEY"] = KEY
    run = uuid.uuid4().hex[:8]
    deployment = {
        "name": f"bench-{run}", "provider": "openai", "model": "gpt-bench",
        "api_key_env": "VOXFLOW_BENCH_KEY", "base_url": server.url("openai"),
        "input_price_per_million": 1, "output_price_per_million": 2, "model_class": run,
    }  # fmt: skip
    uncached = Router(RouterConfig.model_validate(
        {"deployments": [deployment], "cache": {"enabled": False}}), client)  # fmt: skip
    cached = Router(RouterConfig.model_validate({"deployments": [deployment]}), client)
    direct = openai.OpenAI(api_key=KEY, base_url=server.url("openai"), max_retries=0)
    request = render("summary", "We agreed to ship the release on Friday. " * 20)
    messages: Any = [{"role": m.role, "content": m.content} for m in request.messages]

    def direct_call() -> None:
        direct.chat.completions.create(model="gpt-bench", messages=messages,
                                       max_completion_tokens=request.max_tokens,
                                       temperature=request.temperature)  # fmt: skip

    def routed_call() -> None:
        uncached.complete(request, template="summary.v1")

    def cached_call() -> None:
        assert cached.complete(request, template="summary.v1").cached

    cached.complete(request, template="summary.v1")  # fill the cache
    for _ in range(20):  # warm up connections on every path
        direct_call()
        routed_call()
    samples: dict[str, list[float]] = {"direct": [], "routed": [], "cache_hit": []}
    for _ in range(calls):
        samples["direct"].append(_timed(direct_call))
        samples["routed"].append(_timed(routed_call))
        samples["cache_hit"].append(_timed(cached_call))
    result: dict[str, Any] = {name: _stats(values) for name, values in samples.items()}
    added = result["routed"]["median_ms"] - result["direct"]["median_ms"]
    result["router_added_median_ms"] = round(added, 3)
    result["target_ms"] = 2.0
    result["passed"] = added < 2.0
    return result


def main(
    calls: Annotated[int, typer.Option(min=10, help="Calls per path.")] = 300,
    redis_url: Annotated[str | None, typer.Option(help="Redis for the router.")] = None,
) -> None:
    """Measure the router's overhead and the cache-hit latency."""
    url = redis_url or os.environ.get("VOXFLOW_REDIS_URL")
    embedded: EmbeddedRedis | None = None
    with tempfile.TemporaryDirectory(prefix="vf-bench-") as tmp:
        if url is None:
            embedded = EmbeddedRedis(Path(tmp))
            url = embedded.start()
        client = redis.Redis.from_url(redis_client_url(url))
        try:
            with VendorServer(api_key=KEY) as server:
                result = measure(server, client, calls)
        finally:
            client.close()
            if embedded is not None:
                embedded.stop()
    write_json(OUT, result)
    for name in ("direct", "routed", "cache_hit"):
        row = result[name]
        print(f"{name:10} median {row['median_ms']:7.3f} ms   p95 {row['p95_ms']:7.3f} ms")
    verdict = "pass" if result["passed"] else "FAIL"
    print(f"router adds {result['router_added_median_ms']:.3f} ms at the median "
          f"(target < 2 ms): {verdict}; wrote {OUT}")  # fmt: skip


if __name__ == "__main__":
    typer.run(main)
