"""Each Celery setting the handbook asks for, shown doing its job on a real worker and broker.

acks_late and reject_on_worker_lost are shown by the SIGKILL tests (test_worker_faults),
the visibility timeout by the task that outlives it, soft shutdown by the SIGTERM test,
retrying the broker forever by the Redis restarts (test_server_faults).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.chaos.conftest import PlatformFactory
from tests.chaos.harness import (
    SEQUENTIAL,
    RedisServer,
    assert_nothing_lost,
    audit,
    job_row,
    short_notes,
    speech,
    transcribing,
)
from voxflow.queue.celery_app import QueueSettings, make_celery
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE


def test_settings_keep_redelivery_behind_the_time_limits() -> None:
    settings = QueueSettings(redis_url="redis://127.0.0.1:1/0")
    conf = make_celery(settings).conf
    # A task still running when Redis hands its message out again gets a second copy.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_acks_late
    assert conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_connection_max_retries is None
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    assert conf.worker_soft_shutdown_timeout == settings.soft_shutdown_seconds > 0


def test_a_busy_worker_reserves_no_more_than_it_runs_and_acks_only_when_done(
    make_platform: PlatformFactory,
    broker: RedisServer,
    sessions: sessionmaker[Session],
    auth: dict[str, str],
) -> None:
    # Prefetch 1: while one job runs, the others stay in the shared list for any worker.
    # acks_late: the running job's message stays unacknowledged until the task returns, so
    # a worker that dies mid-task leaves it to be delivered again.
    platform = make_platform(VOXFLOW_MICROBATCH_MAX_JOBS="1")
    platform.start("ingest_api", "transcription_worker")
    running = platform.submit(auth, speech(60), SEQUENTIAL).json()["id"]
    platform.wait_for(lambda: transcribing(sessions, running), 90, "the transcription to start")
    waiting = [platform.submit(auth, note).json()["id"] for note in short_notes(3)]
    client = broker.client()
    assert client.llen(TRANSCRIPTION_QUEUE) == 3
    assert client.hlen("unacked") == 1

    platform.wait_terminal(sessions, [running, *waiting], 180)
    assert client.hlen("unacked") == 0
    assert client.llen(TRANSCRIPTION_QUEUE) == 0
    # No result backend: the job row is the result, nothing is written to Redis per task.
    assert not list(client.scan_iter("celery-task-meta-*"))
    assert_nothing_lost(audit(sessions, [running, *waiting]), [running, *waiting])


def test_transcription_workers_leave_llm_work_to_llm_workers(
    make_platform: PlatformFactory,
    broker: RedisServer,
    sessions: sessionmaker[Session],
    auth: dict[str, str],
) -> None:
    platform = make_platform()
    platform.start("ingest_api", "transcription_worker")
    job_id = platform.submit(auth, short_notes(1)[0], {"tasks": ["summary"]}).json()["id"]
    platform.wait_for(
        lambda: job_row(sessions, job_id).status == "transcribed", 90, "the transcript"
    )
    # Transcribed, and its notes wait on their own queue for a worker of their own kind.
    client = broker.client()
    platform.wait_for(lambda: client.llen(LLM_QUEUE) == 1, 10, "the LLM task message")
    assert job_row(sessions, job_id).status == "transcribed"
    platform.start("llm_worker")
    platform.wait_terminal(sessions, [job_id], 120)
    assert job_row(sessions, job_id).status == "completed"


def test_the_soft_time_limit_fails_a_runaway_task_with_its_reason(
    make_platform: PlatformFactory, sessions: sessionmaker[Session], auth: dict[str, str]
) -> None:
    platform = make_platform(
        VOXFLOW_TASK_SOFT_TIME_LIMIT_SECONDS="2",
        VOXFLOW_TASK_TIME_LIMIT_SECONDS="30",
        VOXFLOW_MAX_ATTEMPTS="1",
    )
    platform.start("ingest_api", "transcription_worker")
    job_id = platform.submit(auth, speech(90), SEQUENTIAL).json()["id"]
    platform.wait_terminal(sessions, [job_id], 120)
    job = job_row(sessions, job_id)
    assert job.status == "failed"
    assert job.error_code == "transcription_failed"
    assert job.error_message is not None
    assert "SoftTimeLimitExceeded" in job.error_message
    assert platform.services["transcription_worker"].alive()
