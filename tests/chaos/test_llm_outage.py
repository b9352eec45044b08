"""The LLM vendor goes away mid-run: jobs fall back to the local provider, or fail clearly."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from tests.chaos.conftest import PlatformFactory
from tests.chaos.harness import assert_nothing_lost, audit, short_notes
from tests.support.llm_vendors import VendorServer

KEY = "sk-chaos-0123456789abcdef"
SUMMARY = {"tasks": ["summary"]}


def _router(tmp_path: Path, vendors: VendorServer, *, local_fallback: bool) -> dict[str, str]:
    """LLM worker environment: one priced OpenAI deployment, with or without the fallback."""
    run = uuid.uuid4().hex[:8]  # breakers and the cache are per deployment name and class
    deployment = {
        "name": f"gpt-chaos-{run}", "provider": "openai", "model": "gpt-chaos",
        "api_key_env": "VOXFLOW_CHAOS_VENDOR_KEY", "base_url": vendors.url("openai"),
        "input_price_per_million": 1, "output_price_per_million": 4, "model_class": run,
    }  # fmt: skip
    config = tmp_path / f"router-{run}.yaml"
    config.write_text(
        json.dumps(
            {
                "local_fallback": local_fallback,
                "retry": {"max_retries": 1, "backoff_base_seconds": 0.05},
            }
        )
    )
    return {
        "VOXFLOW_LLM_CONFIG_FILE": str(config),
        "VOXFLOW_LLM_DEPLOYMENTS": json.dumps([deployment]),
        "VOXFLOW_CHAOS_VENDOR_KEY": KEY,
    }


def _providers(platform_status: str, auth: dict[str, str], job_id: str) -> list[str]:
    """Which provider wrote each note of a job."""
    body = httpx.get(f"{platform_status}/v1/jobs/{job_id}/results", headers=auth).json()
    return [result["provider"] for result in body["results"]]


def test_a_vendor_outage_mid_run_falls_back_or_fails_with_a_reason(
    make_platform: PlatformFactory,
    sessions: sessionmaker[Session],
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    vendors = VendorServer(api_key=KEY).start()
    platform = make_platform()
    platform.start(
        "ingest_api", "status_api", "transcription_worker", "llm_worker", "sweeper",
        overrides={"llm_worker": _router(tmp_path, vendors, local_fallback=True)},
    )  # fmt: skip
    notes = short_notes(5)
    first = platform.submit(auth, notes[0], SUMMARY).json()["id"]
    platform.wait_terminal(sessions, [first], 120)
    assert _providers(platform.status_url, auth, first) == ["openai"]

    vendors.stop()  # the vendor is gone: connections are refused from now on
    during = [platform.submit(auth, note, SUMMARY).json()["id"] for note in notes[1:3]]
    platform.wait_terminal(sessions, during, 180)
    for job_id in during:
        assert _providers(platform.status_url, auth, job_id) == ["local"]

    # Without the fallback, the same outage fails jobs with the vendor's error, promptly.
    platform.services["llm_worker"].env.update(_router(tmp_path, vendors, local_fallback=False))
    platform.restart("llm_worker")
    stranded = [platform.submit(auth, note, SUMMARY).json()["id"] for note in notes[3:]]
    platform.wait_terminal(sessions, stranded, 180)

    job_ids = [first, *during, *stranded]
    result = audit(sessions, job_ids)
    assert_nothing_lost(result, job_ids)
    assert [result.states[j] for j in [first, *during]] == ["completed"] * 3
    for job_id in stranded:
        assert result.states[job_id] == "failed"
        # Refused connections, until the breaker opened and left no deployment to try.
        assert result.errors[job_id] in ("llm_connection", "llm_no_deployment_available")
        job = platform.job(auth, job_id)
        assert job["error"]["message"], job
        body = httpx.get(f"{platform.status_url}/v1/jobs/{job_id}/results", headers=auth).json()
        assert {call["outcome"] for call in body["calls"]} <= {"connection"}
        assert result.transcripts[job_id] == 1  # the transcript survives the failed notes
