"""LLM worker fixtures: a local server speaking the LLM vendors' HTTP APIs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.llm_vendors import VendorServer

VENDOR_API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def vendor_server_module() -> Iterator[VendorServer]:
    """One vendor server per test module (the openai_compatible endpoint takes any key)."""
    with VendorServer(api_key=VENDOR_API_KEY, keyless=("openai_compatible",)) as server:
        yield server


@pytest.fixture
def vendor_server(vendor_server_module: VendorServer) -> VendorServer:
    """The module's vendor server with no scripted replies and no recorded requests."""
    vendor_server_module.reset()
    return vendor_server_module
