"""Helpers the webhook tests share (the API and end-to-end tests too): secret, settings, rows."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from voxflow.jobs.models import WebhookDelivery
from voxflow.webhooks.delivery import DeliverySettings

SECRET = "whsec_" + base64.b64encode(b"voxflow-webhook-test-key-32bytes").decode()
STATUS_URL = "https://status.example.test"

# Makes a committed finished job with a webhook URL: (url, status) -> (job id, delivery id).
Finish = Callable[..., tuple[uuid.UUID, uuid.UUID]]


def delivery_settings(**overrides: Any) -> DeliverySettings:
    """Settings for deliveries to loopback receivers, with quick retries."""
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_allow_private_networks": True,
        "webhook_timeout_seconds": 2.0,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.2,
        "public_status_url": STATUS_URL,
    }
    return DeliverySettings(**(values | overrides))


def load(sessions: sessionmaker[Session], delivery_id: uuid.UUID) -> WebhookDelivery:
    """The delivery as committed now."""
    with sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        return delivery
