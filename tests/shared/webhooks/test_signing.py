"""Webhook signatures follow Standard Webhooks exactly, and `verify` refuses what it should."""

from __future__ import annotations

import base64
import json
import time

import pytest
from pydantic import ValidationError

from voxflow.webhooks import WebhookVerificationError, sign, signed_headers, verify
from voxflow.webhooks.settings import WebhookSettings

# The Standard Webhooks test vector (standard-webhooks reference libraries, Svix's too).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = json.dumps({"type": "job.completed", "data": {"id": "abc"}}).encode()


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    # The prefix is optional, as in the reference implementations.
    bare = VECTOR_SECRET.removeprefix("whsec_")
    assert sign(bare, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_verify_accepts_the_test_vector_and_returns_the_payload() -> None:
    headers = {"Webhook-Id": VECTOR_ID, "Webhook-Timestamp": str(VECTOR_TIMESTAMP),
               "Webhook-Signature": VECTOR_SIGNATURE}  # fmt: skip
    payload = verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)
    assert payload == {"test": 2432232314}


def test_signed_headers_verify_now() -> None:
    headers = signed_headers(SECRET, "d-1", BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert verify(SECRET, headers, BODY) == json.loads(BODY)
    assert verify(SECRET, headers, BODY.decode()) == json.loads(BODY)  # str bodies too


def test_one_matching_signature_among_several_is_enough() -> None:
    headers = signed_headers(SECRET, "d-1", BODY)
    headers["webhook-signature"] = "v1,bm9wZQ== " + headers["webhook-signature"]
    assert verify(SECRET, headers, BODY)["type"] == "job.completed"


NOW = 1_800_000_000
OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()
Signed = tuple[dict[str, str], bytes, str]  # headers, body, the secret the receiver has


def _signed(timestamp: int = NOW) -> Signed:
    return signed_headers(SECRET, "d-1", BODY, timestamp=timestamp), BODY, SECRET


def _tampered_body() -> Signed:
    headers, body, secret = _signed()
    return headers, body.replace(b"abc", b"abd"), secret


def _other_secret() -> Signed:
    headers, body, _ = _signed()
    return headers, body, OTHER_SECRET


def _other_id() -> Signed:
    headers, body, secret = _signed()
    return {**headers, "webhook-id": "d-2"}, body, secret


def _without(name: str) -> Signed:
    headers, body, secret = _signed()
    del headers[name]
    return headers, body, secret


def _other_version() -> Signed:
    headers, body, secret = _signed()
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    return headers, body, secret


@pytest.mark.parametrize(
    ("signed", "message"),
    [
        pytest.param(_tampered_body(), "no matching signature", id="tampered-body"),
        pytest.param(_other_secret(), "no matching signature", id="other-secret"),
        pytest.param(_other_id(), "no matching signature", id="other-id"),
        pytest.param(_other_version(), "no matching signature", id="unknown-version"),
        pytest.param(_signed(NOW - 301), "too old", id="too-old"),
        pytest.param(_signed(NOW + 301), "future", id="from-the-future"),
        pytest.param(
            _without("webhook-signature"), "missing header webhook-signature", id="no-signature"
        ),
        pytest.param(
            _without("webhook-timestamp"), "missing header webhook-timestamp", id="no-timestamp"
        ),
    ],
)
def test_verify_rejects(signed: Signed, message: str) -> None:
    headers, body, secret = signed
    with pytest.raises(WebhookVerificationError, match=message):
        verify(secret, headers, body, tolerance=300, now=NOW)


def test_a_timestamp_within_the_tolerance_passes() -> None:
    for age in (-300, 0, 300):
        headers, body, secret = _signed(NOW - age)
        assert verify(secret, headers, body, now=NOW)


@pytest.mark.parametrize(
    "secret",
    ["not base64!", "whsec_" + base64.b64encode(b"short").decode(),
     "whsec_" + base64.b64encode(b"x" * 65).decode()],
)  # fmt: skip
def test_settings_refuse_a_secret_that_is_not_standard(secret: str) -> None:
    with pytest.raises(ValidationError, match="webhook secret"):
        WebhookSettings(webhook_secret=secret)


def test_settings_accept_a_standard_secret_and_keep_it_out_of_reprs() -> None:
    settings = WebhookSettings(webhook_secret=VECTOR_SECRET)
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == VECTOR_SECRET
    assert VECTOR_SECRET not in repr(settings)
