"""Gauges computed when Prometheus scrapes: queue depth from the broker, jobs from the database.

They describe the whole platform, not one process, so exactly one kind of process exports
them: the sweeper (`voxflow-sweeper`, VOXFLOW_METRICS_PORT). With several sweeper replicas,
each reports the same values; aggregate them with `max`, never `sum`.

- `voxflow_queue_depth{queue}`: messages waiting in the broker (the Redis list kombu keeps
  per queue, with its priority lists), not yet delivered to any worker. The queues are
  `transcription`, `llm` and `webhooks` (job webhooks, consumed by the webhook sender).
- `voxflow_queue_unacked{queue}`: messages delivered to a worker and not yet acknowledged
  (kombu's `unacked` hash; with acks_late, the tasks running now plus the prefetched ones).
- `voxflow_jobs_waiting{status}` and `voxflow_oldest_waiting_job_age_seconds{status}`: jobs
  in `queued` (waiting for transcription) or `transcribed` (waiting for the LLM worker), and
  seconds since the oldest of them entered that state (0 when none waits). This is the truth
  the broker's depth only hints at: a lost message leaves a job waiting with an empty queue.
- `voxflow_jobs_in_flight{stage}`: jobs in `transcribing` or `generating`.
- `voxflow_collector_up{source}`: 1 when the `database` or the `broker` answered this scrape,
  0 when it did not (its gauges are then missing, rather than reported as zero).
"""

from __future__ import annotations

from voxflow.observability import multiproc

multiproc.prepare()  # before prometheus_client loads (see voxflow.observability.multiproc)

import json  # noqa: E402
import logging  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterable, Sequence  # noqa: E402
from typing import cast  # noqa: E402

import redis  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402
from sqlalchemy import Connection, Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from voxflow.jobs import repository  # noqa: E402
from voxflow.jobs.states import RUNNING_TO_WAITING, JobStatus  # noqa: E402
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE, WEBHOOK_QUEUE  # noqa: E402

log = logging.getLogger(__name__)

WAITING = (JobStatus.QUEUED, JobStatus.TRANSCRIBED)
RUNNING = tuple(RUNNING_TO_WAITING)
QUEUES = (TRANSCRIPTION_QUEUE, LLM_QUEUE, WEBHOOK_QUEUE)
# kombu's Redis transport: a list per queue and priority step, and one hash of delivered,
# unacknowledged messages ([message, exchange, routing key] as JSON).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_KEY = "unacked"


class PlatformCollector(Collector):
    """Queue and job gauges read from Redis and PostgreSQL at each scrape."""

    def __init__(
        self,
        database: Engine | Connection,
        broker: redis.Redis | None,
        queues: Sequence[str] = QUEUES,
    ) -> None:
        self.database = database  # an engine (a Connection in tests: their transaction)
        self.broker = broker
        self.queues = tuple(queues)

    def collect(self) -> Iterable[Metric]:
        """The gauges of whichever sources answer, and which did."""
        up = GaugeMetricFamily(
            "voxflow_collector_up", "Whether a source answered this scrape.", labels=["source"]
        )
        families: list[Metric] = []
        try:
            families += self._jobs()
            up.add_metric(["database"], 1)
        except Exception:
            log.warning("metrics: the job database did not answer", exc_info=True)
            up.add_metric(["database"], 0)
        if self.broker is not None:
            try:
                families += self._broker(self.broker)
                up.add_metric(["broker"], 1)
            except Exception:
                log.warning("metrics: the broker did not answer", exc_info=True)
                up.add_metric(["broker"], 0)
        return [*families, up]

    def _jobs(self) -> list[Metric]:
        with Session(self.database) as session:
            counts = repository.count_by_status(session, [*WAITING, *RUNNING])
        waiting = GaugeMetricFamily(
            "voxflow_jobs_waiting", "Jobs waiting for their next stage.", labels=["status"]
        )
        oldest = GaugeMetricFamily(
            "voxflow_oldest_waiting_job_age_seconds",
            "Seconds since the oldest waiting job entered its state (0: none waits).",
            labels=["status"],
        )
        in_flight = GaugeMetricFamily(
            "voxflow_jobs_in_flight", "Jobs a worker is running now.", labels=["stage"]
        )
        for status in WAITING:
            count, age = counts.get(status.value, (0, 0.0))
            waiting.add_metric([status.value], count)
            oldest.add_metric([status.value], age)
        for status in RUNNING:
            in_flight.add_metric([status.value], counts.get(status.value, (0, 0.0))[0])
        return [waiting, oldest, in_flight]

    def _broker(self, client: redis.Redis) -> list[Metric]:
        pipe = client.pipeline(transaction=False)
        for queue in self.queues:
            for step in PRIORITY_STEPS:
                pipe.llen(queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}")
        pipe.hvals(UNACKED_KEY)
        *lengths, unacked_raw = pipe.execute()
        depth = GaugeMetricFamily(
            "voxflow_queue_depth", "Messages waiting in the broker's queue.", labels=["queue"]
        )
        steps = len(PRIORITY_STEPS)
        for index, queue in enumerate(self.queues):
            depth.add_metric([queue], sum(lengths[index * steps : (index + 1) * steps]))
        delivered = Counter(_routing_key(raw) for raw in cast(list[bytes], unacked_raw))
        unacked = GaugeMetricFamily(
            "voxflow_queue_unacked",
            "Messages delivered to workers and not yet acknowledged.",
            labels=["queue"],
        )
        for queue in self.queues:
            unacked.add_metric([queue], delivered.get(queue, 0))
        return [depth, unacked]


def _routing_key(raw: bytes) -> str | None:
    try:
        _message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return str(routing_key)
