"""The router: one request, tried on deployments in strategy order until one answers.

Per deployment: skip it when its breaker is open, its context window is too small, it is
over its rate limit, or the tenant's budget allows only free deployments; otherwise call it,
retry transient failures with backoff (honouring Retry-After), and fall back to the next
deployment on anything else. Every attempt, failed ones included, is returned for the
caller to record with its cost.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import redis
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from llm_worker.router import selection
from llm_worker.router.attempts import Attempt
from llm_worker.router.base import Completion, CompletionRequest, Provider, ProviderError
from llm_worker.router.breaker import Breakers
from llm_worker.router.cache import ResponseCache, cache_key
from llm_worker.router.config import Deployment, RouterConfig
from llm_worker.router.policy import Action, action_for, backoff_seconds, counts_against_breaker
from llm_worker.router.providers import build_provider
from llm_worker.router.telemetry import record_attempts

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("voxflow.llm")

ProviderFactory = Callable[[Deployment], Provider]


@dataclass(frozen=True)
class Routed:
    """The answer and what it took to get it."""

    completion: Completion
    deployment: str
    cost_usd: Decimal
    cached: bool
    attempts: list[Attempt] = field(default_factory=list)


class RoutingError(Exception):
    """No deployment produced an answer; `code` is the last failure's (or why none ran)."""

    def __init__(self, code: str, message: str, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.attempts = attempts


def _default_factory(deployment: Deployment) -> Provider:
    return build_provider(deployment.provider_config())


def _traced_call(
    provider: Provider, deployment: Deployment, request: CompletionRequest, retry: int
) -> tuple[Completion, Decimal]:
    """One provider call in a span of its own (the SDKs' httpx2 transport is not
    instrumented): the completion and what it cost at the deployment's prices."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.provider.name": provider.name,
        "gen_ai.request.model": deployment.model,
        "gen_ai.request.max_tokens": request.max_tokens,
        "voxflow.llm.deployment": deployment.name,
        "voxflow.llm.task": request.task,
        "voxflow.llm.retry": retry,
    }
    with _tracer.start_as_current_span("llm.call", attributes=attributes) as span:
        try:
            completion = provider.complete(request)
        except ProviderError as exc:
            span.set_attribute("voxflow.llm.outcome", exc.code)
            raise
        cost = deployment.cost(completion.tokens_in, completion.tokens_out)
        span.set_attributes(
            {
                "voxflow.llm.outcome": "ok",
                "gen_ai.response.model": completion.model,
                "gen_ai.usage.input_tokens": completion.tokens_in,
                "gen_ai.usage.output_tokens": completion.tokens_out,
                "voxflow.llm.cost_usd": float(cost),
            }
        )
        return completion, cost


class Router:
    """Routes completion requests over the configured deployments."""

    def __init__(
        self,
        config: RouterConfig,
        client: redis.Redis,
        *,
        factory: ProviderFactory = _default_factory,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.redis = client
        self.breakers = Breakers(client, config.breaker)
        self.cache = ResponseCache(client, config.cache.ttl_seconds)
        self.latency = selection.LatencyStats(client)
        self._factory = factory
        self._providers: dict[str, Provider] = {}
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (load spreading, not secrets)

    def provider(self, deployment: Deployment) -> Provider:
        """The deployment's provider, built once (it holds the authenticated client)."""
        if deployment.name not in self._providers:
            self._providers[deployment.name] = self._factory(deployment)
        return self._providers[deployment.name]

    def _allowed(self, *, free_only: bool) -> list[Deployment]:
        """Deployments the budget allows; the local provider only if no model is left.

        The local provider is the last resort for outages, not for size: a transcript too
        long for every model is split (map-reduce) rather than handed to it.
        """
        allowed = [d for d in self.config.deployments if d.free or not free_only]
        models = [d for d in allowed if d.provider != "local"]
        return models or allowed

    def candidates(self, request: CompletionRequest, *, free_only: bool) -> list[Deployment]:
        """Deployments allowed by budget and context window, in strategy order."""
        fitting = [d for d in self._allowed(free_only=free_only) if selection.fits(d, request)]
        if fitting and self.config.local_fallback:
            fitting += [d for d in self.config.deployments if d.provider == "local"]
            fitting = list({d.name: d for d in fitting}.values())
        names = [d.name for d in fitting]
        latency = self.latency.get(names) if self.config.strategy == "lowest_latency" else {}
        return selection.order(fitting, self.config.strategy, latency, self._rng)

    def largest_context(self, *, free_only: bool) -> int:
        """The largest context window among the deployments a request is sized for."""
        return max((d.context_window for d in self._allowed(free_only=free_only)), default=0)

    def complete(
        self, request: CompletionRequest, *, template: str, free_only: bool = False
    ) -> Routed:
        """Answer a request, from the cache or the first deployment that succeeds."""
        try:
            routed = self._route(request, template, free_only=free_only)
        except RoutingError as exc:
            record_attempts(self.config, exc.attempts)
            raise
        record_attempts(self.config, routed.attempts)
        return routed

    def _route(self, request: CompletionRequest, template: str, *, free_only: bool) -> Routed:
        ordered = self.candidates(request, free_only=free_only)
        if not ordered:
            raise RoutingError(
                "context_too_long",
                "The prompt does not fit the context window of any allowed deployment.",
                [],
            )
        if self.config.cache.enabled:
            hit = self._cached(request, template, ordered)
            if hit is not None:
                return hit
        attempts: list[Attempt] = []
        skipped: list[str] = []
        floor = 0  # after a context-too-long failure: only larger windows
        for deployment in ordered:
            if deployment.context_window <= floor:
                continue
            verdict = self.breakers.allow(deployment.name)
            if verdict is None:
                skipped.append(f"{deployment.name} (circuit open)")
                continue
            if not selection.take_rate_slot(self.redis, deployment):
                skipped.append(f"{deployment.name} (rate limit)")
                continue
            routed, action = self._try(deployment, request, template, attempts, verdict)
            if routed is not None:
                return routed
            if action is Action.LARGER_CONTEXT:
                floor = deployment.context_window
        last = next((a for a in reversed(attempts) if a.error), None)
        detail = "; ".join(
            [f"{a.deployment}: {a.error}" for a in attempts if a.error][-3:] + skipped
        )
        raise RoutingError(
            last.outcome if last else "no_deployment_available",
            f"No LLM deployment answered ({detail or 'none available'}).",
            attempts,
        )

    def _cached(
        self, request: CompletionRequest, template: str, ordered: list[Deployment]
    ) -> Routed | None:
        for cls in dict.fromkeys(d.cache_class for d in ordered):
            completion = self.cache.get(cache_key(request, template, cls))
            if completion is not None:
                deployment = next(d for d in ordered if d.cache_class == cls)
                attempt = Attempt(
                    deployment.name, completion.provider, completion.model, "cached", 0,
                    completion.tokens_in, completion.tokens_out,
                )  # fmt: skip
                return Routed(completion, deployment.name, Decimal(0), True, [attempt])
        return None

    def _try(
        self,
        deployment: Deployment,
        request: CompletionRequest,
        template: str,
        attempts: list[Attempt],
        verdict: str,
    ) -> tuple[Routed | None, Action | None]:
        """Call one deployment, retrying transient failures; the answer or what to do next."""
        try:
            provider = self.provider(deployment)
        except ProviderError as exc:  # e.g. its API key variable is not set
            attempts.append(Attempt(deployment.name, deployment.provider, deployment.model,
                                    exc.code, 0, error=str(exc)[:500]))  # fmt: skip
            log.warning("LLM deployment %s is unusable (%s): %s", deployment.name, exc.code, exc)
            return None, Action.FALLBACK
        sized = dataclasses.replace(
            request, max_tokens=min(request.max_tokens, deployment.max_output_tokens)
        )
        probe = verdict == "probe"
        retry = 0
        while True:
            started = time.perf_counter()
            try:
                completion, cost = _traced_call(provider, deployment, sized, retry)
            except ProviderError as exc:
                elapsed = int((time.perf_counter() - started) * 1000)
                attempts.append(Attempt(deployment.name, provider.name, deployment.model,
                                        exc.code, elapsed, error=str(exc)[:500]))  # fmt: skip
                log.warning("LLM call to %s failed (%s): %s", deployment.name, exc.code, exc)
                if counts_against_breaker(exc):
                    state = self.breakers.record(deployment.name, ok=False, probe=probe)
                    if state == "open":
                        return None, Action.FALLBACK
                action = action_for(exc)
                if action is not Action.RETRY:
                    return None, action
                retry += 1
                wait = backoff_seconds(self.config.retry, retry, exc.retry_after, self._rng)
                if wait is None:
                    return None, Action.FALLBACK
                self._sleep(wait)
                continue
            self.breakers.record(deployment.name, ok=True, probe=probe)
            self.latency.observe(deployment.name, completion.latency_ms)
            attempts.append(
                Attempt(deployment.name, completion.provider, completion.model, "ok",
                        completion.latency_ms, completion.tokens_in, completion.tokens_out, cost)
            )  # fmt: skip
            if self.config.cache.enabled:
                self.cache.put(cache_key(request, template, deployment.cache_class), completion)
            return Routed(completion, deployment.name, cost, False, attempts), None
