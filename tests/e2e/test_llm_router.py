"""Notes through a real LLM worker process whose router calls vendor APIs on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from llm_worker.router.cache import PREFIX as CACHE_PREFIX
from tests.e2e.conftest import Worker, start_all, stop_all
from tests.e2e.helpers import submit, wait_done
from tests.support.llm_vendors import VendorServer, ok, server_error
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-0123456789abcdef"


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    """OpenAI's, Anthropic's and Mistral's APIs on loopback."""
    with VendorServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def routed_workers(
    purged_queues: None,
    vendors: VendorServer,
    tmp_path_factory: pytest.TempPathFactory,
    servers: Servers,
) -> Iterator[dict[str, Worker]]:
    """A transcription worker, and an LLM worker configured with two paid deployments.

    The router also falls back to the local provider, whose answers other tests' stacks may
    have cached in the suite's Redis for the same note and template: those are dropped, so
    that every note here is routed to a vendor."""
    client = redis.Redis.from_url(redis_client_url(servers.redis_url))
    for key in client.scan_iter(f"{CACHE_PREFIX}*"):
        client.delete(key)
    client.close()
    logs = tmp_path_factory.mktemp("router-logs")
    run = uuid.uuid4().hex[:8]
    deployments = [
        {"name": f"gpt-{run}", "provider": "openai", "model": "gpt-e2e",
         "api_key_env": "VOXFLOW_E2E_VENDOR_KEY", "base_url": vendors.url("openai"),
         "input_price_per_million": 1, "output_price_per_million": 4, "model_class": run},
        {"name": f"claude-{run}", "provider": "anthropic", "model": "claude-e2e",
         "api_key_env": "VOXFLOW_E2E_VENDOR_KEY", "base_url": vendors.url("anthropic"),
         "input_price_per_million": 3, "output_price_per_million": 15, "model_class": run},
    ]  # fmt: skip
    config = tmp_path_factory.mktemp("router") / "router.yaml"
    config.write_text("retry: {max_retries: 1, backoff_base_seconds: 0.05}\n")
    env = {
        "VOXFLOW_LLM_CONFIG_FILE": str(config),
        "VOXFLOW_LLM_DEPLOYMENTS": json.dumps(deployments),
        "VOXFLOW_E2E_VENDOR_KEY": KEY,
    }
    started = {
        "transcription": Worker("transcription_worker.tasks", TRANSCRIPTION_QUEUE, 1,
                                logs / "transcription.log"),
        "llm": Worker("llm_worker.tasks", LLM_QUEUE, 1, logs / "llm.log", env=env),
    }  # fmt: skip
    try:
        start_all(started.values())
        yield started
    finally:
        stop_all(started.values())


def test_an_outage_at_the_first_vendor_falls_back_and_every_call_is_costed(
    ingest: TestClient, status: TestClient, auth: dict[str, str],
    routed_workers: dict[str, Worker], vendors: VendorServer,
) -> None:  # fmt: skip
    vendors.set_sticky("openai", server_error(503))
    items = json.dumps({"action_items": [{"text": "Call the dentist", "owner": "I"}]})
    vendors.enqueue("anthropic", ok("A short week plan.", tokens_in=900, tokens_out=60),
                    ok(items, tokens_in=950, tokens_out=40))  # fmt: skip
    job_id = submit(ingest, auth, "voice_note.ogg", {"tasks": ["summary", "action_items"]})
    job = wait_done(status, auth, job_id, routed_workers)
    assert job["status"] == "completed", (job, routed_workers["llm"].tail())

    body = status.get(f"/v1/jobs/{job_id}/results", headers=auth).json()
    results = {r["task"]: r for r in body["results"]}
    assert results["summary"]["provider"] == "anthropic"
    assert results["summary"]["output"] == "A short week plan."
    assert results["action_items"]["output_json"] == [{"text": "Call the dentist", "owner": "I"}]
    # Each task: two failed calls to the first vendor (one retry), then the fallback.
    assert [(c["task"], c["outcome"]) for c in body["calls"]] == [
        ("summary", "overloaded"), ("summary", "overloaded"), ("summary", "ok"),
        ("action_items", "overloaded"), ("action_items", "overloaded"), ("action_items", "ok"),
    ]  # fmt: skip
    # 900 * 3/M + 60 * 15/M, and 950 * 3/M + 40 * 15/M
    assert body["totals"]["cost_usd"] == pytest.approx(0.0036 + 0.00345)
    assert body["totals"]["failed_calls"] == 4
    sent = vendors.requests_for("anthropic")[0]
    assert "dentist" in json.dumps(sent.body).lower()  # the real transcript went out
    assert Path(routed_workers["llm"].log).exists()
