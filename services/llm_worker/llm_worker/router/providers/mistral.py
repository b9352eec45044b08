"""Mistral's Chat Completions through the official `mistralai` SDK (3.x: `mistralai.client`)."""

from __future__ import annotations

from typing import Any

import httpx2
from mistralai.client import Mistral, errors, models
from mistralai.client.utils import BackoffStrategy, RetryConfig

from llm_worker.router.base import (
    AuthError,
    Completion,
    CompletionRequest,
    MalformedResponseError,
    OverloadedError,
    ProviderConfig,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from llm_worker.router.providers.common import (
    body_message,
    clean_message,
    completion,
    elapsed_ms,
    error_body,
    json_body,
    started,
    status_error,
    token_count,
)

# Strategy "none": one attempt; the router owns retries, backoff and fallbacks.
_NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False)


class MistralProvider:
    """Mistral models on api.mistral.ai (or a base URL speaking the same API)."""

    name: str = "mistral"

    def __init__(self, config: ProviderConfig) -> None:
        if not config.api_key:
            raise AuthError(f"{self.name}: no API key configured for model {config.model!r}")
        self.model = config.model
        self._secret = config.api_key
        self._client = Mistral(
            api_key=config.api_key,
            server_url=config.base_url,
            timeout_ms=max(1, round(config.timeout_seconds * 1000)),
            retry_config=_NO_RETRIES,
        )

    def complete(self, request: CompletionRequest) -> Completion:
        """Send the request's messages as one chat completion and normalise the answer."""
        messages: list[models.ChatCompletionRequestMessageTypedDict] = [
            {"role": "system", "content": m.content}
            if m.role == "system"
            else {"role": "user", "content": m.content}
            for m in request.messages
        ]
        start = started()
        try:
            response = self._client.chat.complete(
                model=self.model,
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                response_format={"type": "json_object"} if request.json_output else None,
            )
        except errors.ResponseValidationError as exc:  # a 200 the SDK could not parse
            raise MalformedResponseError(f"{self.name}: {self._clean(exc.message)}") from exc
        except errors.MistralError as exc:
            raise self._error(exc) from exc
        except errors.NoResponseError as exc:
            raise ProviderConnectionError(f"{self.name}: {exc.message}") from exc
        except httpx2.TimeoutException as exc:  # the SDK lets transport errors through as is
            raise ProviderTimeoutError(f"{self.name}: request timed out ({exc})") from exc
        except httpx2.TransportError as exc:
            raise ProviderConnectionError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        latency = elapsed_ms(start)
        return completion(self.name, request, latency, self._read(response))

    def _read(self, response: Any) -> tuple[str, str, int, int]:
        try:
            choice = response.choices[0]
            content, finish_reason = choice.message.content, choice.finish_reason
            usage, model = response.usage, response.model
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            raise MalformedResponseError(f"{self.name}: response lacks choices[0].message") from exc
        if finish_reason == "error":
            raise OverloadedError(f"{self.name}: the model stopped with finish_reason 'error'")
        if isinstance(content, list):  # chunks: keep the text, drop e.g. reasoning ("thinking")
            content = "".join(
                chunk.text for chunk in content if getattr(chunk, "type", None) == "text"
            )
        if not isinstance(content, str):
            raise MalformedResponseError(f"{self.name}: choices[0].message has no text content")
        tokens_in = token_count(self.name, getattr(usage, "prompt_tokens", None))
        tokens_out = token_count(self.name, getattr(usage, "completion_tokens", None))
        model = model if isinstance(model, str) and model else self.model
        return content, model, tokens_in, tokens_out

    def _error(self, exc: errors.MistralError) -> ProviderError:
        if 200 <= exc.status_code < 300:  # "Unexpected response received": e.g. not JSON
            message = f"unexpected {exc.headers.get('content-type', 'untyped')} body"
            return MalformedResponseError(f"{self.name}: HTTP {exc.status_code}: {message}")
        top = json_body(exc.body)
        message = body_message(error_body(top), exc.body or exc.message)
        # Custom guardrails block a request with 403 {"error": {...}, "guardrails": {...}}.
        guardrail = exc.status_code == 403 and ("guardrails" in top or "guardrail" in message)
        return status_error(
            self.name,
            exc.status_code,
            message,
            exc.headers,
            secret=self._secret,
            refused=guardrail,
        )

    def _clean(self, message: str) -> str:
        return clean_message(message, self._secret)
