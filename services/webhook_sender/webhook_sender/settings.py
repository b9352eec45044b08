"""The webhook sender's settings: the webhook fragment and the public status URL."""

from __future__ import annotations

from voxflow.settings import ApiSettings
from voxflow.webhooks.settings import WebhookSettings
from voxflow.worker.process import WorkerSettings


class DeliverySettings(WebhookSettings, ApiSettings):
    """What delivering a webhook reads: secret, destinations, retries, links in the payload."""


class WebhookSenderSettings(WorkerSettings, DeliverySettings):
    """Everything the webhook sender reads from the environment (prefix VOXFLOW_)."""
