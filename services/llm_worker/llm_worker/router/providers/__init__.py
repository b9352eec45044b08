"""LLM providers: the shared contract, the offline provider and the vendor-provider factory."""

from __future__ import annotations

from typing import Final

from llm_worker.router.base import (
    ERROR_CODES,
    TASK_KINDS,
    AuthError,
    BadRequestError,
    ChatMessage,
    Completion,
    CompletionRequest,
    ContextTooLongError,
    MalformedResponseError,
    OverloadedError,
    Provider,
    ProviderConfig,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RefusedError,
    TaskKind,
)
from llm_worker.router.providers.local import LocalProvider

PROVIDER_KINDS: Final = ("local", "openai", "anthropic", "mistral", "openai_compatible")


def build_provider(config: ProviderConfig) -> Provider:
    """The provider for `config.kind`, with its SDK client built (no request is made)."""
    # Vendor modules are imported here so that importing this package loads no vendor SDK.
    if config.kind == "local":
        return LocalProvider(config)
    if config.kind == "openai":
        from llm_worker.router.providers.openai import OpenAIProvider

        return OpenAIProvider(config)
    if config.kind == "anthropic":
        from llm_worker.router.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config)
    if config.kind == "mistral":
        from llm_worker.router.providers.mistral import MistralProvider

        return MistralProvider(config)
    if config.kind == "openai_compatible":
        from llm_worker.router.providers.openai_compatible import OpenAICompatibleProvider

        return OpenAICompatibleProvider(config)
    raise ValueError(
        f"unknown provider kind {config.kind!r}; expected one of {', '.join(PROVIDER_KINDS)}"
    )


__all__ = [
    "ERROR_CODES",
    "PROVIDER_KINDS",
    "TASK_KINDS",
    "AuthError",
    "BadRequestError",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "ContextTooLongError",
    "LocalProvider",
    "MalformedResponseError",
    "OverloadedError",
    "Provider",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "RefusedError",
    "TaskKind",
    "build_provider",
]
