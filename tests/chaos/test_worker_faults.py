"""Workers killed, stopped and outlived by their own messages: every job still ends once."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import psutil
from sqlalchemy.orm import Session, sessionmaker

from tests.chaos.conftest import PlatformFactory
from tests.chaos.harness import (
    SEQUENTIAL,
    assert_nothing_lost,
    audit,
    events,
    job_row,
    short_notes,
    speech,
    transcribing,
)


def test_sigkill_of_the_pool_child_mid_job_completes_it_once(
    make_platform: PlatformFactory, sessions: sessionmaker[Session], auth: dict[str, str]
) -> None:
    platform = make_platform()
    platform.start("ingest_api", "transcription_worker", "sweeper")
    job_id = platform.submit(auth, speech(90), SEQUENTIAL).json()["id"]
    platform.wait_for(lambda: transcribing(sessions, job_id), 90, "the transcription to start")
    worker = platform.services["transcription_worker"]
    [child] = worker.children()
    child.kill()

    platform.wait_terminal(sessions, [job_id], 180)
    result = audit(sessions, [job_id])
    assert_nothing_lost(result, [job_id])
    assert result.states[job_id] == "completed"
    assert worker.alive()  # the main process replaced its child and went on
    timeline = events(sessions, job_id)
    requeues = [e for e in timeline if e.actor == "sweeper" and e.to_status == "queued"]
    assert [e.detail["reason"] for e in requeues] == ["lease_expired"]
    assert job_row(sessions, job_id).attempts == 0  # reset once transcribed
    claims = [e for e in timeline if e.to_status == "transcribing"]
    assert len(claims) == 2
    # reject_on_worker_lost put the message straight back: its copy found the lease still
    # held and stood down (the sweeper's re-publish is what ran the job again).
    assert f"job {job_id} is not waiting for this stage" in worker.logged()


def test_sigterm_hands_the_running_job_back_and_another_worker_finishes_it(
    make_platform: PlatformFactory, sessions: sessionmaker[Session], auth: dict[str, str]
) -> None:
    # No sweeper: the job must come back through the worker's own hand-back, not a lease expiry.
    platform = make_platform(VOXFLOW_LEASE_SECONDS="600")
    platform.start("ingest_api", "transcription_worker")
    job_id = platform.submit(auth, speech(90), SEQUENTIAL).json()["id"]
    platform.wait_for(lambda: transcribing(sessions, job_id), 90, "the transcription to start")
    worker = platform.services["transcription_worker"]
    stopped_at = time.monotonic()
    worker.stop(signal.SIGTERM)
    took = time.monotonic() - stopped_at
    assert took < 20, worker.tail()  # soft shutdown of 1 s, then the hand-back

    job = job_row(sessions, job_id)
    assert job.status == "queued", worker.tail()
    assert job.attempts == 0  # stopping a worker is not the job's failure
    assert job.lease_owner is None
    handed_back = events(sessions, job_id)[-1]
    assert handed_back.to_status == "queued"
    assert handed_back.detail == {"reason": "worker shutdown", "attempt_refunded": True}

    platform.restart("transcription_worker")
    platform.wait_terminal(sessions, [job_id], 180)
    result = audit(sessions, [job_id])
    assert_nothing_lost(result, [job_id])
    assert result.states[job_id] == "completed"


def test_a_task_outliving_the_visibility_timeout_runs_once(
    make_platform: PlatformFactory, sessions: sessionmaker[Session], auth: dict[str, str]
) -> None:
    # Redis hands the unacknowledged message out again after 2 s, checking every second, to
    # a second pool process of the same worker: it must find the job taken and write nothing.
    platform = make_platform(
        VOXFLOW_VISIBILITY_TIMEOUT_SECONDS="2", VOXFLOW_UNACKED_RESTORE_SECONDS="1"
    )
    platform.concurrency["transcription_worker"] = 2
    platform.start("ingest_api", "transcription_worker")
    worker = platform.services["transcription_worker"]
    job_id = platform.submit(auth, speech(240)).json()["id"]
    # Claimed, whatever it has reached since: batched decoding reports progress once per batch
    # of 16 chunks, so this recording goes from 0 to done in one step.
    platform.wait_for(
        lambda: job_row(sessions, job_id).transcription_started_at is not None,
        90,
        "the transcription to start",
    )
    platform.wait_terminal(sessions, [job_id], 240)

    result = audit(sessions, [job_id])
    assert_nothing_lost(result, [job_id])
    assert result.states[job_id] == "completed"
    claims = [e for e in events(sessions, job_id) if e.to_status == "transcribing"]
    assert len(claims) == 1
    assert f"job {job_id} is not waiting for this stage" in worker.logged(), worker.tail()


def test_a_job_that_kills_its_worker_fails_after_max_attempts_and_the_rest_complete(
    make_platform: PlatformFactory, sessions: sessionmaker[Session], auth: dict[str, str]
) -> None:
    # A recording that takes its worker process down every time (as a decoder or CUDA crash
    # inside the worker would): redelivery would loop forever without the attempt cap.
    platform = make_platform(VOXFLOW_MAX_ATTEMPTS="2")
    platform.start("ingest_api", "transcription_worker", "sweeper")
    worker = platform.services["transcription_worker"]
    poison = platform.submit(auth, speech(90), SEQUENTIAL).json()["id"]
    healthy = [platform.submit(auth, note).json()["id"] for note in short_notes(3)]
    stop = threading.Event()
    kills: list[int] = []  # the attempt each kill ended

    def killer() -> None:
        while not stop.is_set():
            job = job_row(sessions, poison)
            if job.status == "transcribing" and job.attempts not in kills:
                for child in worker.children():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                kills.append(job.attempts)
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        platform.wait_terminal(sessions, [poison, *healthy], 240)
    finally:
        stop.set()
        thread.join(10)

    result = audit(sessions, [poison, *healthy])
    assert_nothing_lost(result, [poison, *healthy])
    assert result.states[poison] == "failed"
    assert result.errors[poison] == "attempts_exhausted"
    assert kills == [1, 2]
    assert all(result.states[j] == "completed" for j in healthy)
    assert worker.alive()
