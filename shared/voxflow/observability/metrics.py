"""Prometheus metrics every Voxflow process records (the catalog: docs/observability.md).

The names and labels below are a contract: dashboards and alert rules use exactly these.
Labels are bounded sets (route templates, statuses, error codes, configured models and
deployments); never a tenant, a job id or a raw path. The scrape-time gauges (queue depth,
waiting jobs, oldest waiting age, jobs in flight) are not here: the sweeper computes them
per scrape (sweeper.platform_metrics).

Values are kept in multiprocess mode (voxflow.observability.multiproc), so each process
group's endpoint reports the sum over its processes. Gauges say how to combine processes:
`livesum` (processes alive now), `mostrecent` (the last value written by any process).
"""

from __future__ import annotations

from voxflow.observability import multiproc

multiproc.prepare()  # before prometheus_client loads: it picks multiprocess mode at import

from decimal import Decimal  # noqa: E402

from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

# Seconds, from a health probe to a long upload or an event stream.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Seconds, from a voice note's LLM notes to a four-hour recording on a CPU.
STAGE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                 7200.0, 14400.0)  # fmt: skip
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

# HTTP (both APIs, voxflow.web.observability)
HTTP_REQUESTS = Counter(
    "voxflow_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "voxflow_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body.",
    ["service", "route", "method"],
    buckets=HTTP_BUCKETS,
)

# Job lifecycle (voxflow.jobs.service), counted once the transition's commit succeeded.
JOBS_CREATED = Counter("voxflow_jobs_created_total", "Jobs accepted (committed uploads).")
JOBS_COMPLETED = Counter("voxflow_jobs_completed_total", "Jobs that reached `completed`.")
JOBS_FAILED = Counter(
    "voxflow_jobs_failed_total", "Jobs that reached `failed`, by error code.", ["reason"]
)
STAGE_DURATION = Histogram(
    "voxflow_stage_duration_seconds",
    "Time a worker spent on one claimed stage of one job (claim to outcome).",
    ["stage", "outcome"],
    buckets=STAGE_BUCKETS,
)
WORKER_PROCESSES = Gauge(
    "voxflow_worker_processes",
    "Worker pool processes alive and ready to take tasks.",
    ["service"],
    multiprocess_mode="livesum",
)

# Transcription (services/transcription_worker)
TRANSCRIPTION_AUDIO = Counter(
    "voxflow_transcription_audio_seconds_total",
    "Seconds of audio transcribed.",
    ["model", "mode"],
)
TRANSCRIPTION_PROCESSING = Counter(
    "voxflow_transcription_processing_seconds_total",
    "Seconds spent transcribing (divide by audio seconds for the real-time factor).",
    ["model", "mode"],
)
TRANSCRIPTION_RTF = Histogram(
    "voxflow_transcription_realtime_factor",
    "Processing seconds per audio second of each transcribed job (below 1: faster than real time).",
    ["model"],
    buckets=RTF_BUCKETS,
)
MODEL_LOAD = Gauge(
    "voxflow_model_load_seconds",
    "Seconds the most recent load of a Whisper model took.",
    ["model"],
    multiprocess_mode="mostrecent",
)

# LLM router (services/llm_worker)
LLM_CALLS = Counter(
    "voxflow_llm_calls_total",
    "LLM attempts by outcome: `ok`, `cached` (answered from the response cache), or the "
    "error code of a failed call.",
    ["provider", "model", "outcome"],
)
LLM_DURATION = Histogram(
    "voxflow_llm_call_duration_seconds",
    "Latency of calls to LLM providers (cache hits excluded).",
    ["provider", "model"],
    buckets=LLM_BUCKETS,
)
LLM_TOKENS = Counter(
    "voxflow_llm_tokens_total",
    "Tokens billed by LLM providers, `in` (prompt) or `out` (completion).",
    ["provider", "model", "direction"],
)
LLM_COST = Counter(
    "voxflow_llm_cost_usd_total", "Cost of LLM calls in US dollars.", ["provider", "model"]
)
LLM_CACHE_HITS = Counter("voxflow_llm_cache_hits_total", "Notes answered from the cache.")
LLM_BREAKER_OPEN = Gauge(
    "voxflow_llm_breaker_open",
    "Circuit breaker of a deployment as last seen by a worker: 1 open, 0 closed.",
    ["deployment"],
    multiprocess_mode="mostrecent",
)

# Sweeper (sweeper)
SWEEPER_REQUEUED = Counter(
    "voxflow_sweeper_requeued_total",
    "Jobs the sweeper sent back to their queue: `lease_expired` (the worker vanished) or "
    "`message_lost` (waiting too long since its last publish).",
    ["reason"],
)
SWEEPER_FAILED = Counter(
    "voxflow_sweeper_failed_total", "Jobs the sweeper failed (attempts exhausted)."
)

# Webhooks (webhook_sender.delivery, in the worker consuming the `webhooks` queue)
WEBHOOK_ATTEMPTS = Counter(
    "voxflow_webhook_attempts_total",
    "Webhook delivery attempts by result: `ok` (2xx), `gone` (410), `http_3xx`, `http_4xx`, "
    "`http_5xx`, `timeout`, `connection_error`, `dns_error`, `invalid_url`, "
    "`forbidden_address` (the SSRF guard refused it) or `no_secret` (VOXFLOW_WEBHOOK_SECRET "
    "unset where it is delivered).",
    ["result"],
)
WEBHOOK_DELIVERIES = Counter(
    "voxflow_webhook_deliveries_total",
    "Webhook deliveries settled, by event (`job.completed`, `job.failed`, `job.canceled`) and "
    "outcome: `delivered`, or `failed` (410, or still failing when the retry window ended).",
    ["event", "outcome"],
)


def record_llm_attempt(
    *,
    provider: str,
    model: str,
    outcome: str,
    seconds: float,
    tokens_in: int,
    tokens_out: int,
    cost_usd: Decimal,
) -> None:
    """Count one router attempt: a call (its latency, and tokens and cost when it answered)."""
    LLM_CALLS.labels(provider=provider, model=model, outcome=outcome).inc()
    if outcome == "cached":
        LLM_CACHE_HITS.inc()
        return
    LLM_DURATION.labels(provider=provider, model=model).observe(seconds)
    if outcome == "ok":
        LLM_TOKENS.labels(provider=provider, model=model, direction="in").inc(tokens_in)
        LLM_TOKENS.labels(provider=provider, model=model, direction="out").inc(tokens_out)
    if cost_usd:
        LLM_COST.labels(provider=provider, model=model).inc(float(cost_usd))


def record_transcription(model: str, mode: str, audio: float, processing: float) -> None:
    """Count one job's transcribed audio and the time it took."""
    TRANSCRIPTION_AUDIO.labels(model=model, mode=mode).inc(audio)
    TRANSCRIPTION_PROCESSING.labels(model=model, mode=mode).inc(processing)
    if audio > 0:
        TRANSCRIPTION_RTF.labels(model=model).observe(processing / audio)


def set_breaker(deployment: str, state: str) -> None:
    """Record a breaker state a worker saw (`open`, `half_open`/probe counts as open)."""
    LLM_BREAKER_OPEN.labels(deployment=deployment).set(0 if state == "closed" else 1)
