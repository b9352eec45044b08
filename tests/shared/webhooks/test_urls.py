"""Webhook URLs: their form, and the SSRF guard on the addresses they stand for."""

from __future__ import annotations

import ipaddress

import pytest

from voxflow.webhooks.urls import (
    MAX_URL_LENGTH,
    ForbiddenAddressError,
    WebhookUrlError,
    check_at_submission,
    is_public,
    parse,
    pin,
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("https://token@example.com/hook", "user name or password"),
        ("https:///hook", "no host"),
        ("https://example.com:99999/hook", "malformed"),
        ("https://example.com:0/hook", "between 1 and 65535"),
        ("https://exa mple.com/hook", "without spaces"),
        ("https://bücher.example/hook", "punycode"),
        ("https://example.com/hook\n", "without spaces"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH}"),
    ],
)
def test_malformed_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlError, match=reason) as caught:
        parse(url)
    assert caught.value.code == "invalid_webhook_url"


def test_a_url_of_exactly_the_maximum_length_is_accepted() -> None:
    base = "https://example.com/"
    url = base + "a" * (MAX_URL_LENGTH - len(base))
    assert len(url) == MAX_URL_LENGTH
    assert parse(url).hostname == "example.com"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1", "::",
     "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2001:db8::1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hook", "http://localhost/hook", "https://10.0.0.7/hook",
     "http://[::1]:9000/hook", "http://169.254.169.254/latest/meta-data/",
     "http://[::ffff:192.168.0.1]/hook"],
)  # fmt: skip
def test_submission_refuses_hosts_on_private_networks(url: str) -> None:
    with pytest.raises(ForbiddenAddressError, match="not a public address") as caught:
        check_at_submission(url, allow_private=False)
    assert caught.value.code == "webhook_url_not_public"


def test_the_setting_lets_private_hosts_through() -> None:
    url = "http://127.0.0.1:8080/hook"
    assert check_at_submission(url, allow_private=True) == url
    with pytest.raises(WebhookUrlError):  # the form is still checked
        check_at_submission("http://u:p@127.0.0.1/", allow_private=True)


def test_a_public_literal_passes_without_any_lookup() -> None:
    url = "https://93.184.216.34/hook"
    assert check_at_submission(url, allow_private=False) == url


def test_a_name_whose_lookup_cannot_be_made_is_left_to_delivery() -> None:
    # The network guard refuses to resolve public names here, as an unreachable resolver
    # would fail: the upload is accepted, and every delivery checks again.
    url = "https://hooks.example.com/voxflow"
    assert check_at_submission(url, allow_private=False) == url


def test_pin_aims_at_the_checked_address_and_keeps_the_name() -> None:
    [target] = pin("http://localhost:8123/hook/path?x=1&y=2#frag", allow_private=True)
    assert target.url == "http://127.0.0.1:8123/hook/path?x=1&y=2"
    assert target.host_header == "localhost:8123"
    assert target.extensions == {}
    [secure] = pin("https://localhost/hook", allow_private=True)
    assert secure.url == "https://127.0.0.1/hook"
    assert secure.host_header == "localhost"
    assert secure.extensions == {"sni_hostname": "localhost"}  # TLS is checked for the name
    [six] = pin("https://[::1]:8443", allow_private=True)
    assert six.url == "https://[::1]:8443/"
    assert six.extensions == {}  # an address in the URL: the certificate must name it


def test_pin_refuses_private_addresses_unless_allowed() -> None:
    with pytest.raises(ForbiddenAddressError):
        pin("http://localhost:8123/hook", allow_private=False)
