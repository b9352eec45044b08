"""The suite's network guard: loopback and Unix sockets work, anything else fails loudly."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llm_worker.router.providers import (
    ChatMessage,
    CompletionRequest,
    ProviderConfig,
    ProviderConnectionError,
    build_provider,
)
from tests.support import netguard
from tests.support.llm_vendors import VendorServer
from tests.support.netguard import NetworkBlockedError

REQUEST = CompletionRequest(
    task="summary", messages=[ChatMessage("user", "Say hello to the guard.")], transcript=""
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


def test_guard_is_installed_for_the_suite() -> None:
    assert netguard.installed()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST.", "::ffff:127.0.0.1", "", None],
)
def test_local_hosts(host: str | None) -> None:
    assert netguard.is_local(host)


@pytest.mark.parametrize("host", ["api.openai.com", "192.0.2.1", "10.0.0.1", "2001:db8::1"])
def test_public_hosts(host: str) -> None:
    assert not netguard.is_local(host)


def test_raw_sockets_are_blocked_beyond_loopback() -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlockedError, match=r"192\.0\.2\.1"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routable anyway
    with socket.socket() as sock, pytest.raises(NetworkBlockedError):
        sock.connect_ex(("192.0.2.1", 443))
    with pytest.raises(NetworkBlockedError, match=r"example\.com"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("example.com", 80), timeout=1)


def test_loopback_and_unix_sockets_work(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname(), timeout=1):
            pass
    path = str(tmp_path / "guard.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)


def test_openai_sdk_on_its_public_endpoint_is_stopped_by_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    client = openai.OpenAI(api_key="sk-test", max_retries=0, timeout=5)
    assert str(client.base_url) == "https://api.openai.com/v1/"
    with pytest.raises(openai.APIConnectionError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert any(isinstance(error, NetworkBlockedError) for error in _chain(caught.value))

    provider = build_provider(ProviderConfig(kind="openai", model="gpt-4o-mini", api_key="sk-x"))
    with pytest.raises(ProviderConnectionError, match="netguard"):
        provider.complete(REQUEST)


def test_the_loopback_vendor_server_still_works() -> None:
    with VendorServer(api_key="sk-local") as server:
        config = ProviderConfig(
            kind="openai", model="gpt-4o-mini", api_key="sk-local", base_url=server.url("openai")
        )
        completion = build_provider(config).complete(REQUEST)
    assert completion.text == "Echo: Say hello to the guard."
