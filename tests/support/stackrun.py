"""`voxflow run` as a child process, a client of its APIs, and the events the metrics record.

The stack runs on the suite's PostgreSQL server (a database of its own) and Redis, with its
LLM worker routed to one priced OpenAI deployment on a loopback vendor server
(tests.support.llm_vendors) and no local fallback, so that calls cost money and a vendor error
fails a job. Webhooks are on (a secret, loopback receivers allowed): its LLM worker delivers
them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import redis
import yaml

from tests.conftest import ROOT, SAMPLES
from tests.support.metrics import scrape, value
from tests.support.served import free_port
from tests.support.webhooks import SECRET
from voxflow.apikeys import issue_key
from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE, WEBHOOK_QUEUE
from voxflow_cli.stack import STATE_FILE, StackInfo

VENDOR_KEY = "sk-infra-0123456789abcdef"
TERMINAL = ("completed", "failed", "canceled")


def stack_env(database_url: str, openai_url: str, workdir: Path) -> dict[str, str]:
    """The environment `voxflow run` starts with: its database, the router, a quick sweeper."""
    run = uuid.uuid4().hex[:8]  # breakers and the cache live in the shared Redis
    router = {
        "local_fallback": False,
        "retry": {"max_retries": 0},
        "deployments": [{
            "name": f"gpt-infra-{run}", "provider": "openai", "model": "gpt-infra",
            "api_key_env": "VOXFLOW_INFRA_VENDOR_KEY", "base_url": openai_url,
            "input_price_per_million": 2, "output_price_per_million": 8, "model_class": run,
        }],
    }  # fmt: skip
    config = workdir / "router.yaml"
    config.write_text(yaml.safe_dump(router))
    env = {k: v for k, v in os.environ.items() if k != "VOXFLOW_LLM_DEPLOYMENTS"}
    return env | {
        "VOXFLOW_DATABASE_URL": database_url,
        "VOXFLOW_LLM_CONFIG_FILE": str(config),
        "VOXFLOW_INFRA_VENDOR_KEY": VENDOR_KEY,
        # A waiting job whose message is 3 s old is published again (lost-message recovery).
        "VOXFLOW_REQUEUE_AFTER_SECONDS": "3",
        "VOXFLOW_SWEEP_INTERVAL_SECONDS": "0.5",
        # Webhooks on, to receivers on loopback (tests.support.webhook_receiver).
        "VOXFLOW_WEBHOOK_SECRET": SECRET,
        "VOXFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    }


class RunningStack:
    """`voxflow run --metrics-port-base 0` in `workdir`, stopped with Ctrl-C (SIGINT)."""

    def __init__(self, workdir: Path, env: dict[str, str], broker: redis.Redis) -> None:
        self.data_dir = workdir / "data"
        self.log = workdir / "stack.log"
        self.env = env
        self.broker = broker
        self.process: subprocess.Popen[bytes] | None = None
        self.info: StackInfo | None = None
        self.auth: dict[str, str] = {}

    def __enter__(self) -> Self:
        self.broker.delete(TRANSCRIPTION_QUEUE, LLM_QUEUE, WEBHOOK_QUEUE)  # earlier leftovers
        command = [sys.executable, "-m", "voxflow_cli.main", "run", "--data-dir",
                   str(self.data_dir), "--ingest-port", str(free_port()), "--status-port",
                   str(free_port()), "--metrics-port-base", "0"]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=out)
        state = self.data_dir / STATE_FILE
        deadline = time.monotonic() + 120
        while not state.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"voxflow run did not start:\n{self.tail()}")
            time.sleep(0.5)
        self.info = StackInfo(**json.loads(state.read_text()))
        engine = make_engine(self.env["VOXFLOW_DATABASE_URL"], pool_size=1)
        with session_scope(make_sessionmaker(engine)) as session:
            key = issue_key(session, "infra", "infra-test")
        engine.dispose()
        self.auth = {"Authorization": f"Bearer {key.secret}"}
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 80) -> str:
        """The end of the stack's log (all its services write there)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    @property
    def stack(self) -> StackInfo:
        """Where the stack's services are."""
        assert self.info is not None
        return self.info

    def submit(self, tasks: list[str], webhook_url: str | None = None, **options: Any) -> str:
        """Upload samples/voice_note.ogg with these tasks (and a webhook); the job id."""
        data = {"options": json.dumps({"tasks": tasks, **options})}
        if webhook_url is not None:
            data["webhook_url"] = webhook_url
        response = httpx.post(
            f"{self.stack.ingest_url}/v1/jobs", headers=self.auth, timeout=60,
            files={"file": ("voice_note.ogg", (SAMPLES / "voice_note.ogg").read_bytes(),
                            "audio/ogg")},
            data=data,
        )  # fmt: skip
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def get(self, path: str) -> Any:
        """GET a status API path as the test tenant."""
        response = httpx.get(f"{self.stack.status_url}{path}", headers=self.auth, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll the status API until the job is terminal."""
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.get(f"/v1/jobs/{job_id}")
            if job["status"] in TERMINAL:
                return job
            time.sleep(0.3)
        pytest.fail(f"job {job_id} did not finish in {timeout}s; last {job}\n{self.tail()}")

    def submit_with_lost_message(self) -> str:
        """A transcription-only job whose queue message is lost: only the sweeper can save it.

        The stack's transcription worker stops consuming, the job is uploaded and its message
        deleted from Redis; once the sweeper has published it again, consuming resumes.
        """
        control = publisher_app().control
        node = [f"transcription@{socket.gethostname()}"]
        assert control.cancel_consumer(TRANSCRIPTION_QUEUE, destination=node, reply=True,
                                       timeout=10), f"no reply from {node}"  # fmt: skip
        time.sleep(2)  # a fetch already waiting on the queue (1 s at most) is over
        job_id = self.submit([])
        assert self.broker.delete(TRANSCRIPTION_QUEUE) == 1, "the message was not waiting"
        sweeper = self.stack.metrics_urls["sweeper"]
        deadline = time.monotonic() + 30
        while value(scrape(sweeper), "voxflow_sweeper_requeued_total", reason="message_lost") < 1:
            assert time.monotonic() < deadline, f"the sweeper did not republish\n{self.tail()}"
            time.sleep(0.5)
        assert control.add_consumer(TRANSCRIPTION_QUEUE, destination=node, reply=True,
                                    timeout=10), f"no reply from {node}"  # fmt: skip
        return job_id
