"""Provider contract for the LLM worker: request/response types, errors and the Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

TaskKind = Literal["summary", "diary", "action_items", "custom"]
TASK_KINDS: tuple[str, ...] = ("summary", "diary", "action_items", "custom")


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat-style prompt."""

    role: Literal["system", "user"]
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """Everything a provider needs to produce one note from one transcript."""

    task: str
    messages: list[ChatMessage]
    transcript: str
    instruction: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.2
    json_output: bool = False
    # A diarized transcript comes as turns, one per line ("Ada: ..."); these are the names.
    speakers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """A provider's answer plus the accounting the worker stores with the note."""

    text: str
    tokens_in: int
    tokens_out: int
    model: str
    provider: str
    latency_ms: int
    output_json: Any | None = None


class ProviderError(Exception):
    """Base class for provider failures; `code` is a stable machine-readable tag."""

    code: str = "provider_error"

    def __init__(
        self, message: str = "", *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        # An instance may carry a more specific code than its class, e.g. from a vendor payload.
        if code is not None:
            self.code = code
        # Seconds the vendor asked us to wait (its Retry-After header), when it said.
        self.retry_after = retry_after


class RateLimitedError(ProviderError):
    """The provider asked us to slow down (HTTP 429 or equivalent)."""

    code = "rate_limited"


class OverloadedError(ProviderError):
    """The provider is temporarily over capacity (HTTP 503/529 or equivalent)."""

    code = "overloaded"


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the allowed time."""

    code = "timeout"


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (DNS, TLS, refused or reset connection)."""

    code = "connection"


class ContextTooLongError(ProviderError):
    """The prompt exceeds the model's context window."""

    code = "context_too_long"


class RefusedError(ProviderError):
    """The model declined to answer or the output was blocked by a content filter."""

    code = "refused"


class AuthError(ProviderError):
    """The provider rejected our credentials or the account lacks access."""

    code = "auth"


class BadRequestError(ProviderError):
    """The provider rejected the request as malformed or unsupported."""

    code = "bad_request"


class MalformedResponseError(ProviderError):
    """The provider answered, but not with a body of the shape its API documents."""

    code = "bad_response"


ERROR_CODES: tuple[str, ...] = (
    RateLimitedError.code,
    OverloadedError.code,
    ProviderTimeoutError.code,
    ProviderConnectionError.code,
    ContextTooLongError.code,
    RefusedError.code,
    AuthError.code,
    BadRequestError.code,
    MalformedResponseError.code,
)


@dataclass(frozen=True)
class ProviderConfig:
    """What a provider needs to build its authenticated client for one deployment."""

    kind: str  # "openai", "anthropic", "mistral", "openai_compatible" or "local"
    model: str
    api_key: str | None = None
    base_url: str | None = None  # None: the vendor's public endpoint
    timeout_seconds: float = 60.0


class Provider(Protocol):
    """Anything that turns a rendered CompletionRequest into a Completion."""

    name: str

    def complete(self, request: CompletionRequest) -> Completion:
        """Produce a completion or raise a ProviderError subclass."""
        ...
