"""Helpers shared by the vendor providers: timing, Retry-After, JSON output, error mapping."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

from llm_worker.router.base import (
    AuthError,
    BadRequestError,
    Completion,
    CompletionRequest,
    ContextTooLongError,
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RefusedError,
)

# Appended to the system prompt where a vendor has no JSON mode (Anthropic).
JSON_INSTRUCTION: Final = (
    "Respond with valid JSON only: no prose before or after it and no Markdown code fences."
)

# How vendors and OpenAI-compatible servers word "the prompt does not fit the context window".
CONTEXT_TOO_LONG: Final = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|prompt is too long"
    r"|too large for model with|prompt too long|greater than the context length"
    r"|exceeds? the (?:model'?s? )?(?:maximum )?context (?:length|window|size)",
    re.IGNORECASE,
)

_FENCED: Final = re.compile(r"^```[\w+-]*[ \t]*\n?(?P<body>.*?)\n?```$", re.DOTALL)
_MAX_MESSAGE: Final = 500


def started() -> float:
    """A start mark for `elapsed_ms`."""
    return time.perf_counter()


def elapsed_ms(start: float) -> int:
    """Whole milliseconds since `start` (from `started`)."""
    return max(0, round((time.perf_counter() - start) * 1000))


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = _number(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def strip_fences(text: str) -> str:
    """The text without surrounding whitespace and a Markdown code fence around it."""
    stripped = text.strip()
    match = _FENCED.match(stripped)
    return match["body"].strip() if match else stripped


def completion(
    provider: str, request: CompletionRequest, latency_ms: int, read: tuple[str, str, int, int]
) -> Completion:
    """The normalised answer from what a vendor module read: text, model and token counts."""
    text, model, tokens_in, tokens_out = read
    return Completion(
        text=text,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        model=model,
        provider=provider,
        latency_ms=latency_ms,
        output_json=parse_json_output(provider, text) if request.json_output else None,
    )


def parse_json_output(provider: str, text: str) -> Any:
    """Parse a model's JSON answer; MalformedResponseError when it is not JSON."""
    try:
        return json.loads(strip_fences(text))
    except ValueError as exc:
        raise MalformedResponseError(
            f"{provider}: the model's output is not valid JSON ({exc}); it starts {text[:80]!r}"
        ) from None


def token_count(provider: str, value: object) -> int:
    """A usage counter as an int: 0 when the vendor left it out, an error when it is junk."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponseError(f"{provider}: usage has an invalid token count {value!r}")
    return value


def clean_message(message: str, secret: str | None) -> str:
    """A vendor message fit for logs: the API key masked, the length bounded."""
    if secret:
        message = message.replace(secret, "***")
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "\u2026"


def status_error(
    provider: str,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    secret: str | None = None,
    context_too_long: bool = False,
    refused: bool = False,
    auth: bool = False,
) -> ProviderError:
    """Map a vendor's HTTP error (status plus what its body said) to the typed error set."""
    text = f"{provider}: HTTP {status}: {clean_message(message, secret)}"
    error: type[ProviderError]
    if refused:
        error = RefusedError
    elif auth or status in (401, 402, 403):
        error = AuthError
    elif (
        context_too_long
        or status == 413
        or (status in (400, 422) and CONTEXT_TOO_LONG.search(message))
    ):
        error = ContextTooLongError
    elif status == 429:
        error = RateLimitedError
    elif status == 408:
        error = ProviderTimeoutError
    elif status >= 500 and status != 501:
        error = OverloadedError
    else:
        error = BadRequestError
    return error(text, retry_after=parse_retry_after(headers))


def json_body(body: object) -> dict[str, Any]:
    """A vendor body (raw text or already decoded) as a dict, or {} when it is not one."""
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return {}
    return body if isinstance(body, dict) else {}


def error_body(body: object) -> dict[str, Any]:
    """The dict inside a vendor's error body (`{"error": {...}}` or flat), or {}."""
    top = json_body(body)
    inner = top.get("error")
    return inner if isinstance(inner, dict) else top


def body_message(body: Mapping[str, Any], fallback: str) -> str:
    """The human-readable message in a vendor error body, else `fallback`."""
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    if message:  # e.g. Mistral's 422 puts its validation details under "message"
        return json.dumps(message)
    detail = body.get("detail")
    return json.dumps(detail) if detail else fallback
