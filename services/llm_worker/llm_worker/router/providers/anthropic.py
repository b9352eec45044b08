"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types import Message, MessageParam, TextBlock

from llm_worker.router.base import (
    AuthError,
    Completion,
    CompletionRequest,
    MalformedResponseError,
    ProviderConfig,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RefusedError,
)
from llm_worker.router.providers.common import (
    JSON_INSTRUCTION,
    clean_message,
    completion,
    elapsed_ms,
    started,
    status_error,
    token_count,
)

_AUTH_TYPES = frozenset({"authentication_error", "permission_error", "billing_error"})


class AnthropicProvider:
    """Claude models on api.anthropic.com (or a base URL speaking the same API)."""

    name: str = "anthropic"

    def __init__(self, config: ProviderConfig) -> None:
        if not config.api_key:
            raise AuthError(f"{self.name}: no API key configured for model {config.model!r}")
        self.model = config.model
        self._secret = config.api_key
        # max_retries=0: the router owns retries, backoff and fallbacks.
        self._client = anthropic.Anthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    def complete(self, request: CompletionRequest) -> Completion:
        """Send the request as one Messages call and normalise the answer."""
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        if request.json_output:
            # No JSON mode; no "{" prefill either: newer models reject prefills and the
            # action-items prompt asks for an array. Fences are stripped when parsing.
            system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
        messages: list[MessageParam] = [
            {"role": "user", "content": m.content} for m in request.messages if m.role == "user"
        ]
        # API version 2026-10-21 (SDK 2.x) rejects temperature/top_p/top_k, so none is sent.
        start = started()
        try:
            response = self._client.messages.create(
                model=self.model,
                max_tokens=request.max_tokens,
                system=system or anthropic.omit,
                messages=messages,
            )
        except anthropic.APIError as exc:
            raise self._error(exc) from exc
        except ValueError as exc:  # a 200 whose body claims to be JSON but is not
            raise MalformedResponseError(f"{self.name}: response body is not JSON: {exc}") from exc
        latency = elapsed_ms(start)
        return completion(self.name, request, latency, self._read(response))

    def _read(self, response: Any) -> tuple[str, str, int, int]:
        if not isinstance(response, Message):  # the SDK hands back non-JSON bodies as str
            raise MalformedResponseError(f"{self.name}: response is not a message")
        try:
            blocks, stop_reason = list(response.content), response.stop_reason
            usage, model = response.usage, response.model
            texts = [block.text for block in blocks if isinstance(block, TextBlock)]
        except (AttributeError, KeyError, TypeError) as exc:
            raise MalformedResponseError(f"{self.name}: response lacks content blocks") from exc
        if stop_reason == "refusal":
            details = getattr(response, "stop_details", None)
            why = getattr(details, "explanation", None) or getattr(details, "category", None)
            raise RefusedError(f"{self.name}: the model refused" + (f": {why}" if why else ""))
        if not texts or not all(isinstance(text, str) for text in texts):
            raise MalformedResponseError(f"{self.name}: response has no text content block")
        # Input tokens are split three ways once prompt caching is involved.
        tokens_in = sum(
            token_count(self.name, getattr(usage, field, None))
            for field in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        tokens_out = token_count(self.name, getattr(usage, "output_tokens", None))
        model = model if isinstance(model, str) and model else self.model
        return "".join(texts), model, tokens_in, tokens_out

    def _error(self, exc: anthropic.APIError) -> ProviderError:
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderTimeoutError(f"{self.name}: request timed out")
        if isinstance(exc, anthropic.APIConnectionError):
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            return ProviderConnectionError(f"{self.name}: {exc.message}{cause}")
        if isinstance(exc, anthropic.APIStatusError):
            # 529 overloaded_error and other 5xx become OverloadedError in status_error;
            # "prompt is too long: N tokens > M maximum" is matched there too.
            return status_error(
                self.name,
                exc.status_code,
                exc.api_message or exc.message,
                exc.response.headers,
                secret=self._secret,
                auth=exc.type in _AUTH_TYPES,
            )
        message = clean_message(exc.message, self._secret)
        return MalformedResponseError(f"{self.name}: {message}")
