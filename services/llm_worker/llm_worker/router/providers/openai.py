"""OpenAI Chat Completions through the official `openai` SDK."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

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
    clean_message,
    completion,
    elapsed_ms,
    error_body,
    started,
    status_error,
    token_count,
)

_REFUSAL_CODES = frozenset({"content_filter", "content_policy_violation"})
_AUTH_CODES = frozenset({"insufficient_quota", "invalid_api_key"})


class OpenAIProvider:
    """Chat Completions on api.openai.com, or on another base URL speaking the same API."""

    name: str = "openai"
    # OpenAI deprecated max_tokens (reasoning models reject it); compatible servers still use it.
    _modern_token_limit: bool = True

    def __init__(self, config: ProviderConfig) -> None:
        self.model = config.model
        self._secret = self._api_key(config)
        # max_retries=0: the router owns retries, backoff and fallbacks.
        self._client = openai.OpenAI(
            api_key=self._secret,
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    def _api_key(self, config: ProviderConfig) -> str:
        if not config.api_key:
            # Never fall back to OPENAI_API_KEY silently: keys come from the deployment config.
            raise AuthError(f"{self.name}: no API key configured for model {config.model!r}")
        return config.api_key

    def complete(self, request: CompletionRequest) -> Completion:
        """Send the request's messages as one chat completion and normalise the answer."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": message.content}
            if message.role == "system"
            else {"role": "user", "content": message.content}
            for message in request.messages
        ]
        limit = request.max_tokens
        start = started()
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_completion_tokens=limit if self._modern_token_limit else openai.omit,
                max_tokens=openai.omit if self._modern_token_limit else limit,
                temperature=request.temperature,
                response_format={"type": "json_object"} if request.json_output else openai.omit,
            )
        except openai.APIError as exc:
            raise self._error(exc) from exc
        except ValueError as exc:  # a 200 whose body claims to be JSON but is not
            raise MalformedResponseError(f"{self.name}: response body is not JSON: {exc}") from exc
        latency = elapsed_ms(start)
        return completion(self.name, request, latency, self._read(response))

    def _read(self, response: Any) -> tuple[str, str, int, int]:
        if not isinstance(response, ChatCompletion):  # the SDK hands back non-JSON bodies as str
            raise MalformedResponseError(f"{self.name}: response is not a chat completion")
        try:
            choice = response.choices[0]
            content, refusal = choice.message.content, choice.message.refusal
            finish_reason, usage, model = choice.finish_reason, response.usage, response.model
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            raise MalformedResponseError(f"{self.name}: response lacks choices[0].message") from exc
        if refusal or finish_reason == "content_filter":
            detail = refusal or "the output was blocked by the content filter"
            raise RefusedError(f"{self.name}: the model refused: {detail}")
        if not isinstance(content, str):
            raise MalformedResponseError(f"{self.name}: choices[0].message has no text content")
        tokens_in = token_count(self.name, getattr(usage, "prompt_tokens", None))
        tokens_out = token_count(self.name, getattr(usage, "completion_tokens", None))
        return (
            content,
            model if isinstance(model, str) and model else self.model,
            tokens_in,
            tokens_out,
        )

    def _error(self, exc: openai.APIError) -> ProviderError:
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeoutError(f"{self.name}: request timed out: {exc.message}")
        if isinstance(exc, openai.APIConnectionError):
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            return ProviderConnectionError(f"{self.name}: {exc.message}{cause}")
        if isinstance(exc, openai.APIStatusError):
            body = error_body(exc.body)
            code = exc.code or ""
            message = body.get("message")
            return status_error(
                self.name,
                exc.status_code,
                message if isinstance(message, str) and message else exc.message,
                exc.response.headers,
                secret=self._secret,
                context_too_long=code == "context_length_exceeded",
                refused=code in _REFUSAL_CODES,
                auth=code in _AUTH_CODES,
            )
        # APIResponseValidationError and any other SDK-side failure to read the answer.
        message = clean_message(exc.message, self._secret)
        return MalformedResponseError(f"{self.name}: {message}")
