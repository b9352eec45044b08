"""Vendor providers through the real SDKs against a local server speaking each vendor's API."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from llm_worker.prompts import render
from llm_worker.router.providers import (
    AuthError,
    BadRequestError,
    ContextTooLongError,
    LocalProvider,
    MalformedResponseError,
    OverloadedError,
    Provider,
    ProviderConfig,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RefusedError,
    build_provider,
)
from llm_worker.router.providers.common import JSON_INSTRUCTION, parse_retry_after, strip_fences
from tests.services.llm_worker.conftest import VENDOR_API_KEY
from tests.support.llm_vendors import (
    VENDORS,
    RecordedRequest,
    Reply,
    VendorServer,
    auth_error,
    bad_request,
    closed_port_url,
    context_too_long,
    malformed,
    ok,
    overloaded,
    rate_limited,
    refused,
    server_error,
    slow,
)

MODELS = {
    "openai": "gpt-4o-mini",
    "openai_compatible": "llama3.1:8b",
    "anthropic": "claude-haiku-5-5",
    "mistral": "mistral-small-latest",
}
TRANSCRIPT = "Anna will send the contract by Friday. We need to book a room for the workshop."
REQUEST = render("summary", TRANSCRIPT)
JSON_REQUEST = render("action_items", TRANSCRIPT)
SYSTEM, USER = (message.content for message in REQUEST.messages)


def _provider(
    server: VendorServer,
    vendor: str,
    *,
    timeout: float = 5.0,
    api_key: str | None = VENDOR_API_KEY,
    base_url: str | None = None,
) -> Provider:
    config = ProviderConfig(
        kind=vendor,
        model=MODELS[vendor],
        api_key=api_key,
        base_url=base_url or server.url(vendor),
        timeout_seconds=timeout,
    )
    return build_provider(config)


def _sent(vendor: str, request: RecordedRequest) -> dict[str, Any]:
    """What the SDK sent, in one shape for every vendor."""
    body = request.body
    messages = body["messages"]
    if vendor == "anthropic":
        assert request.headers["anthropic-version"]
        system = body.get("system")
    else:
        assert messages[0]["role"] == "system"
        system = messages.pop(0)["content"]
    token_fields = {"max_tokens", "max_completion_tokens"} & body.keys()
    return {
        "model": body["model"],
        "system": system,
        "messages": messages,
        "max_tokens": {field: body[field] for field in token_fields},
        "temperature": body.get("temperature"),
        "response_format": body.get("response_format"),
        "authorization": request.headers.get("authorization"),
    }


@pytest.mark.parametrize("vendor", VENDORS)
def test_success(vendor_server: VendorServer, vendor: str) -> None:
    reported = f"{MODELS[vendor]}-2026-01-01"
    vendor_server.enqueue(
        vendor, ok("Anna sends the contract.", tokens_in=87, tokens_out=5, model=reported)
    )
    completion = _provider(vendor_server, vendor).complete(REQUEST)

    assert completion.text == "Anna sends the contract."
    assert (completion.tokens_in, completion.tokens_out) == (87, 5)
    assert completion.model == reported
    assert completion.provider == vendor
    assert completion.latency_ms >= 0
    assert completion.output_json is None
    [request] = vendor_server.requests_for(vendor)
    sent = _sent(vendor, request)
    assert sent["model"] == MODELS[vendor]
    assert sent["system"] == SYSTEM
    assert sent["messages"] == [{"role": "user", "content": USER}]
    assert sent["authorization"] == f"Bearer {VENDOR_API_KEY}"
    assert sent["response_format"] is None
    # OpenAI deprecated max_tokens; compatible servers, Anthropic and Mistral use it.
    token_field = "max_completion_tokens" if vendor == "openai" else "max_tokens"
    assert sent["max_tokens"] == {token_field: REQUEST.max_tokens}
    # Anthropic's API version 2026-10-21 rejects sampling parameters.
    assert sent["temperature"] == (None if vendor == "anthropic" else REQUEST.temperature)


@pytest.mark.parametrize("vendor", VENDORS)
def test_default_reply_echoes_the_user_message(vendor_server: VendorServer, vendor: str) -> None:
    completion = _provider(vendor_server, vendor).complete(REQUEST)
    assert completion.text == "Echo: " + " ".join(USER.split()[:8])
    assert completion.tokens_in == len(f"{SYSTEM} {USER}".split())


@pytest.mark.parametrize("vendor", VENDORS)
def test_json_output(vendor_server: VendorServer, vendor: str) -> None:
    answer = '```json\n[{"text": "Send the contract by Friday.", "owner": "Anna"}]\n```'
    vendor_server.enqueue(vendor, ok(answer))
    completion = _provider(vendor_server, vendor).complete(JSON_REQUEST)

    assert completion.output_json == [{"text": "Send the contract by Friday.", "owner": "Anna"}]
    assert completion.text == answer
    sent = _sent(vendor, vendor_server.requests_for(vendor)[0])
    if vendor == "anthropic":  # no JSON mode: the instruction rides on the system prompt
        assert sent["response_format"] is None
        assert sent["system"].endswith(JSON_INSTRUCTION)
    else:
        assert sent["response_format"] == {"type": "json_object"}
        assert sent["system"] == JSON_REQUEST.messages[0].content


@pytest.mark.parametrize("vendor", VENDORS)
def test_unparsable_json_output_is_malformed(vendor_server: VendorServer, vendor: str) -> None:
    vendor_server.enqueue(vendor, ok("Sure! Here are the action items: none."))
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        _provider(vendor_server, vendor).complete(JSON_REQUEST)


ERROR_CASES = [
    pytest.param(rate_limited(7), RateLimitedError, id="429"),
    pytest.param(server_error(500), OverloadedError, id="500"),
    pytest.param(server_error(502, retry_after=3), OverloadedError, id="502"),
    pytest.param(overloaded(), OverloadedError, id="overloaded"),
    pytest.param(context_too_long(), ContextTooLongError, id="context"),
    pytest.param(auth_error(), AuthError, id="401"),
    pytest.param(refused(), RefusedError, id="refused"),
    pytest.param(bad_request(), BadRequestError, id="400"),
    pytest.param(malformed("truncated"), MalformedResponseError, id="truncated-200"),
    pytest.param(malformed("missing_fields"), MalformedResponseError, id="incomplete-200"),
    pytest.param(malformed("html"), MalformedResponseError, id="html-200"),
]


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(("reply", "error"), ERROR_CASES)
def test_errors_are_normalised(
    vendor_server: VendorServer, vendor: str, reply: Reply, error: type[ProviderError]
) -> None:
    vendor_server.enqueue(vendor, reply)
    with pytest.raises(error) as caught:
        _provider(vendor_server, vendor).complete(REQUEST)

    assert caught.type is error
    assert str(caught.value).startswith(f"{vendor}: ")
    assert VENDOR_API_KEY not in str(caught.value)
    expected_wait = float(reply.retry_after) if reply.retry_after else None
    assert caught.value.retry_after == expected_wait
    # The SDK did not retry on its own: retries belong to the router.
    assert len(vendor_server.requests_for(vendor)) == 1


def test_anthropic_overloaded_is_its_529(vendor_server: VendorServer) -> None:
    vendor_server.enqueue("anthropic", overloaded(retry_after=2))
    with pytest.raises(OverloadedError, match=r"HTTP 529: Overloaded") as caught:
        _provider(vendor_server, "anthropic").complete(REQUEST)
    assert caught.value.retry_after == 2


@pytest.mark.parametrize("vendor", ["openai", "openai_compatible"])
@pytest.mark.parametrize("variant", ["field", "error"])
def test_openai_refusal_forms(vendor_server: VendorServer, vendor: str, variant: str) -> None:
    vendor_server.enqueue(vendor, refused(variant))
    with pytest.raises(RefusedError):
        _provider(vendor_server, vendor).complete(REQUEST)


def test_retry_after_ms_wins(vendor_server: VendorServer) -> None:
    vendor_server.enqueue("openai", rate_limited(9, retry_after_ms=1500))
    with pytest.raises(RateLimitedError) as caught:
        _provider(vendor_server, "openai").complete(REQUEST)
    assert caught.value.retry_after == 1.5


def test_parse_retry_after() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (parse_retry_after({"Retry-After": soon}) or 0) <= 30
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({}) is None


def test_strip_fences() -> None:
    assert strip_fences('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fences("```\n[]\n```  ") == "[]"
    assert strip_fences(' {"a": "```"} ') == '{"a": "```"}'


@pytest.mark.parametrize("vendor", VENDORS)
def test_timeout(vendor_server: VendorServer, vendor: str) -> None:
    vendor_server.enqueue(vendor, slow(3))
    provider = _provider(vendor_server, vendor, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError):
        provider.complete(REQUEST)
    assert time.monotonic() - started < 2
    assert len(vendor_server.requests_for(vendor)) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_connection_refused(vendor_server: VendorServer, vendor: str) -> None:
    provider = _provider(vendor_server, vendor, base_url=closed_port_url(vendor))
    with pytest.raises(ProviderConnectionError, match="refused"):
        provider.complete(REQUEST)


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "mistral"])
def test_wrong_key_is_rejected_by_the_server(vendor_server: VendorServer, vendor: str) -> None:
    wrong = "sk-wrong-key-0000000000"
    with pytest.raises(AuthError) as caught:
        _provider(vendor_server, vendor, api_key=wrong).complete(REQUEST)
    assert wrong not in str(caught.value)


def test_sticky_outage_then_recovery(vendor_server: VendorServer) -> None:
    provider = _provider(vendor_server, "mistral")
    vendor_server.set_sticky("mistral", server_error(503))
    for _ in range(3):
        with pytest.raises(OverloadedError):
            provider.complete(REQUEST)
    vendor_server.set_sticky("mistral", None)
    assert provider.complete(REQUEST).text.startswith("Echo: ")


def test_openai_compatible_sends_a_placeholder_key(vendor_server: VendorServer) -> None:
    completion = _provider(vendor_server, "openai_compatible", api_key=None).complete(REQUEST)
    assert completion.provider == "openai_compatible"
    [request] = vendor_server.requests_for("openai_compatible")
    assert request.headers["authorization"] == "Bearer none"


def test_openai_compatible_needs_a_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        build_provider(ProviderConfig(kind="openai_compatible", model="llama3"))


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "mistral"])
def test_vendor_providers_need_a_key(vendor: str) -> None:
    with pytest.raises(AuthError, match="no API key"):
        build_provider(ProviderConfig(kind=vendor, model=MODELS[vendor]))


def test_build_provider_kinds() -> None:
    names = {
        kind: type(
            build_provider(
                ProviderConfig(kind=kind, model="m", api_key="k", base_url="http://127.0.0.1:9/v1")
            )
        )
        for kind in VENDORS
    }
    assert {kind: cls.__name__ for kind, cls in names.items()} == {
        "openai": "OpenAIProvider",
        "openai_compatible": "OpenAICompatibleProvider",
        "anthropic": "AnthropicProvider",
        "mistral": "MistralProvider",
    }
    assert isinstance(build_provider(ProviderConfig(kind="local", model="x")), LocalProvider)
    with pytest.raises(ValueError, match="unknown provider kind 'gemini'"):
        build_provider(ProviderConfig(kind="gemini", model="x"))


def test_importing_the_package_loads_no_vendor_sdk() -> None:
    code = (
        "import sys, llm_worker.router.providers\n"
        "print(sorted({'openai', 'anthropic', 'mistralai'} & sys.modules.keys()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
