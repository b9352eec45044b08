"""Delivering webhooks over real HTTP to a local receiver: answers, retries, refusals.

Each test commits a finished job with a webhook URL, then runs the delivery task's code
in-process against a receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sweeper.main import sweep_once
from tests.support.metrics import local, value
from tests.support.webhook_receiver import Receiver, Reply, receiving, self_signed
from tests.support.webhooks import SECRET, STATUS_URL, Finish, delivery_settings, load
from voxflow.jobs.states import JobStatus
from voxflow.settings import JobSettings
from voxflow.webhooks import verify
from webhook_sender import sender
from webhook_sender.delivery import deliver


def test_a_completed_delivery_is_signed_and_recorded(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    before = local()
    with receiving() as receiver:
        job_id, delivery_id = finished(receiver.url("/hooks/voxflow?token=t1"))
        assert deliver(sessions, str(delivery_id), delivery_settings()) == "delivered"
        [request] = receiver.requests
    assert request.path == "/hooks/voxflow?token=t1"
    assert request.headers["webhook-id"] == str(delivery_id)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Voxflow-Webhooks/")
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    payload = verify(SECRET, request.headers, request.body)
    own = f"{STATUS_URL}/v1/jobs/{job_id}"
    assert payload["type"] == "job.failed"
    assert payload["data"]["id"] == str(job_id)
    assert payload["data"]["status"] == "failed"
    assert payload["data"]["error"] == {"code": "boom", "message": "It broke."}
    assert payload["data"]["links"] == {
        "self": own, "events": f"{own}/events", "transcript": f"{own}/transcript",
        "results": f"{own}/results", "webhooks": f"{own}/webhooks",
    }  # fmt: skip
    assert payload["timestamp"].endswith("Z")
    delivery = load(sessions, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None
    assert (delivery.next_attempt_at, delivery.last_error) == (None, None)
    after = local()
    assert value(after, "voxflow_webhook_attempts_total", result="ok") - value(
        before, "voxflow_webhook_attempts_total", result="ok"
    ) == 1  # fmt: skip
    delivered = {"event": "job.failed", "outcome": "delivered"}
    assert value(after, "voxflow_webhook_deliveries_total", **delivered) - value(
        before, "voxflow_webhook_deliveries_total", **delivered
    ) == 1  # fmt: skip


def test_a_duplicate_message_sends_nothing(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    with receiving() as receiver:
        _, delivery_id = finished(receiver.url(), JobStatus.CANCELED)
        settings = delivery_settings()
        results: list[str] = []

        def one_copy() -> None:
            results.append(deliver(sessions, str(delivery_id), settings))

        threads = [threading.Thread(target=one_copy) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert deliver(sessions, str(delivery_id), settings) == "skipped"  # already delivered
        assert sorted(results) == ["delivered", "skipped", "skipped"]
        assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0].body)["type"] == "job.canceled"


def test_a_500_is_retried_through_the_sweeper_until_it_succeeds(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    script = [Reply(500, body=b"database on fire"), Reply(503, body=b"still")]
    with receiving(script) as receiver:
        _, delivery_id = finished(receiver.url())
        settings = delivery_settings()
        assert deliver(sessions, str(delivery_id), settings) == "retry"
        first = load(sessions, delivery_id)
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
        assert first.last_error == "HTTP 500: database on fire"
        assert deliver(sessions, str(delivery_id), settings) == "skipped"  # not due yet
        outcomes = []
        sweeper = JobSettings(requeue_after_seconds=3600)
        for _ in range(200):  # what the sweeper and the worker do, in turn
            if delivery_id in sweep_once(sessions, sweeper).webhooks:
                outcomes.append(deliver(sessions, str(delivery_id), settings))
                if outcomes[-1] == "delivered":
                    break
            threading.Event().wait(0.02)
        assert outcomes == ["retry", "delivered"]
        requests = receiver.requests
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {str(delivery_id)}
    assert len({r.body for r in requests}) == 1  # the same bytes every time
    for request in requests:
        verify(SECRET, request.headers, request.body)  # each attempt is signed afresh
    done = load(sessions, delivery_id)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 3, 200)


def test_410_gone_stops_the_retries(sessions: sessionmaker[Session], finished: Finish) -> None:
    with receiving(then=Reply(410)) as receiver:
        _, delivery_id = finished(receiver.url())
        assert deliver(sessions, str(delivery_id), delivery_settings()) == "failed"
        delivery = load(sessions, delivery_id)
        assert (delivery.status, delivery.last_status_code) == ("failed", 410)
        assert delivery.next_attempt_at is None
        assert "410 Gone" in (delivery.last_error or "")
        threading.Event().wait(0.3)
        assert delivery_id not in sweep_once(sessions, JobSettings()).webhooks
        assert len(receiver.requests) == 1


def test_a_slow_receiver_times_out_and_is_retried(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    with receiving([Reply(200, delay=1.5)]) as receiver:
        _, delivery_id = finished(receiver.url())
        settings = delivery_settings(webhook_timeout_seconds=0.3)
        assert deliver(sessions, str(delivery_id), settings) == "retry"
        delivery = load(sessions, delivery_id)
        assert delivery.status == "pending"
        assert delivery.last_status_code is None
        assert "no answer within 0.3 s" in (delivery.last_error or "")


def test_redirects_are_not_followed(sessions: sessionmaker[Session], finished: Finish) -> None:
    with receiving() as target, receiving(then=Reply(307, {"Location": target.url()})) as hop:
        _, delivery_id = finished(hop.url())
        assert deliver(sessions, str(delivery_id), delivery_settings()) == "retry"
        assert (len(hop.requests), len(target.requests)) == (1, 0)
    delivery = load(sessions, delivery_id)
    assert delivery.last_status_code == 307
    assert "redirects are not followed" in (delivery.last_error or "")


def test_private_addresses_are_refused_at_delivery_time(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    with receiving() as receiver:
        _, delivery_id = finished(receiver.url(host="localhost"))
        settings = delivery_settings(webhook_allow_private_networks=False)
        assert deliver(sessions, str(delivery_id), settings) == "retry"
        assert receiver.requests == []  # nothing was sent
    delivery = load(sessions, delivery_id)
    assert delivery.status == "pending"
    assert "resolves to 127.0.0.1, which is not a public address" in (delivery.last_error or "")


def test_without_a_secret_nothing_is_sent_and_the_reason_is_recorded(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    with receiving() as receiver:
        _, delivery_id = finished(receiver.url())
        settings = delivery_settings(webhook_secret=None)
        assert deliver(sessions, str(delivery_id), settings) == "retry"
        assert receiver.requests == []
    assert "VOXFLOW_WEBHOOK_SECRET" in (load(sessions, delivery_id).last_error or "")


def test_nobody_listening_is_a_connection_error(
    sessions: sessionmaker[Session], finished: Finish
) -> None:
    receiver = Receiver().start()
    url = receiver.url()
    receiver.stop()
    _, delivery_id = finished(url)
    assert deliver(sessions, str(delivery_id), delivery_settings()) == "retry"
    assert "ConnectError" in (load(sessions, delivery_id).last_error or "")


def test_an_unknown_or_invalid_delivery_id_is_skipped(sessions: sessionmaker[Session]) -> None:
    settings = delivery_settings()
    assert deliver(sessions, "not-a-uuid", settings) == "skipped"
    assert deliver(sessions, "00000000-0000-4000-8000-000000000000", settings) == "skipped"


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """An HTTPS receiver whose certificate names `localhost` only, trusted via SSL_CERT_FILE."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    sender._tls.cache_clear()  # the client's trust store is built once per process
    receiver = Receiver().start(tls=context)
    try:
        yield receiver
    finally:
        receiver.stop()
        monkeypatch.delenv("SSL_CERT_FILE")
        sender._tls.cache_clear()


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    sessions: sessionmaker[Session], finished: Finish, tls_receiver: Receiver
) -> None:
    _, by_name = finished(tls_receiver.url(host="localhost"))
    assert deliver(sessions, str(by_name), delivery_settings()) == "delivered"
    [request] = tls_receiver.requests
    assert request.headers["host"] == f"localhost:{tls_receiver.port}"
    # The certificate does not name the address: pinning must not weaken the name check.
    _, by_address = finished(tls_receiver.url(host="127.0.0.1"))
    assert deliver(sessions, str(by_address), delivery_settings()) == "retry"
    error = load(sessions, by_address).last_error or ""
    assert "CERTIFICATE_VERIFY_FAILED" in error or "certificate" in error.lower(), error
    assert len(tls_receiver.requests) == 1
