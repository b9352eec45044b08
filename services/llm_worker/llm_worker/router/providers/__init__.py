"""LLM providers: the shared contract and the built-in offline provider."""

from llm_worker.providers.base import (
    ERROR_CODES,
    TASK_KINDS,
    AuthError,
    BadRequestError,
    ChatMessage,
    Completion,
    CompletionRequest,
    ContextTooLongError,
    OverloadedError,
    Provider,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RefusedError,
    TaskKind,
)
from llm_worker.providers.local import LocalProvider

__all__ = [
    "ERROR_CODES",
    "TASK_KINDS",
    "AuthError",
    "BadRequestError",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "ContextTooLongError",
    "LocalProvider",
    "OverloadedError",
    "Provider",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "RefusedError",
    "TaskKind",
]
