"""Job webhooks' settings fragment: the signing secret, allowed destinations and retries.

Read by the ingestion API (it refuses a `webhook_url` without a secret, and checks the
destination) and by the webhook sender (it signs, sends and schedules retries).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from voxflow.settings import ENV_CONFIG
from voxflow.webhooks.signing import decode_secret


class WebhookSettings(BaseSettings):
    """Job webhooks: the signing secret, allowed destinations and retries (docs/webhooks.md)."""

    model_config = ENV_CONFIG

    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret that signs webhook deliveries (Standard Webhooks: `whsec_` and the "
        "base64 of 24 to 64 random bytes). The ingestion API refuses a `webhook_url` (422 "
        "`webhooks_disabled`) while it is unset; the worker delivering webhooks needs it too.",
    )
    webhook_allow_private_networks: bool = Field(
        default=False,
        description="Let webhooks go to loopback, private, link-local and other non-public "
        "addresses (checked at upload and before every delivery). Keep false unless every "
        "tenant is trusted.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time allowed to connect, send and read each delivery."
    )
    webhook_retry_base_seconds: float = Field(
        default=30.0, gt=0, description="Pause before the first retry; it doubles per attempt."
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Longest pause between two attempts (a receiver's Retry-After included).",
    )
    webhook_retry_window_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="A delivery is retried until this long after the event, then marked failed.",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_secret(value.get_secret_value())  # raises ValueError with the reason
        return value
