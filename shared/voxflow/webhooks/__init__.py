"""Job webhooks: signed POSTs on completion, failure and cancelation (docs/webhooks.md).

Only the signing helpers are imported here, so that `from voxflow.webhooks import verify`
needs nothing but the standard library.
"""

from voxflow.webhooks.signing import WebhookVerificationError, sign, signed_headers, verify

__all__ = ["WebhookVerificationError", "sign", "signed_headers", "verify"]
