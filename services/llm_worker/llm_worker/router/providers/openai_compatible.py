"""Self-hosted servers that speak OpenAI's Chat Completions API: vLLM, Ollama, LM Studio."""

from __future__ import annotations

from llm_worker.router.base import ProviderConfig
from llm_worker.router.providers.openai import OpenAIProvider

# The SDK insists on a key; keyless local servers ignore whatever is sent.
PLACEHOLDER_API_KEY = "none"


class OpenAICompatibleProvider(OpenAIProvider):
    """OpenAIProvider for a configured base URL (required), with an optional API key."""

    name: str = "openai_compatible"
    _modern_token_limit = False  # these servers know max_tokens, not all max_completion_tokens

    def __init__(self, config: ProviderConfig) -> None:
        if not config.base_url:
            raise ValueError(
                "openai_compatible providers need a base_url, e.g. http://host:8000/v1"
            )
        super().__init__(config)

    def _api_key(self, config: ProviderConfig) -> str:
        # Explicit, so the SDK never falls back to OPENAI_API_KEY and leaks it to this server.
        return config.api_key or PLACEHOLDER_API_KEY
