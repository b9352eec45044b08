"""Webhook URLs: what a job may name, and where a delivery may connect (SSRF guard).

A URL is checked when the job is submitted and again before every attempt, since DNS
answers change. Each attempt connects to an address it has just checked (the URL's host is
replaced by that address; the Host header and TLS server name keep the original name), so
a name that resolves to something else a moment later cannot redirect the request.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

MAX_URL_LENGTH = 2048
SCHEMES = frozenset({"http", "https"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookUrlError(ValueError):
    """A webhook URL that is malformed (`invalid_webhook_url`) or not allowed."""

    def __init__(self, message: str, code: str = "invalid_webhook_url") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ForbiddenAddressError(WebhookUrlError):
    """The URL's host is, or resolves to, an address webhooks may not reach."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "webhook_url_not_public")


def parse(raw: str) -> SplitResult:
    """Check a webhook URL's form: http(s), a host, no credentials, at most 2048 characters."""
    if len(raw) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.")
    if not raw.isascii() or any(c.isspace() or not c.isprintable() for c in raw):
        raise WebhookUrlError(
            "The webhook URL must be printable ASCII without spaces (use the punycode form "
            "of an international domain name)."
        )
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        raise WebhookUrlError(f"The webhook URL is malformed: {exc}.") from None
    if parts.scheme not in SCHEMES:
        raise WebhookUrlError("The webhook URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookUrlError("The webhook URL must not contain a user name or password.")
    if not parts.hostname:
        raise WebhookUrlError("The webhook URL has no host.")
    if port == 0:
        raise WebhookUrlError("The webhook URL's port must be between 1 and 65535.")
    return parts


def is_public(address: IPAddress) -> bool:
    """Whether an address is a public unicast one (not loopback, private, link-local...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address a host name (or literal) stands for; raises socket.gaierror if none."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def check_public(addresses: list[IPAddress], host: str) -> None:
    """Refuse if any of the host's addresses is not public (one bad answer is enough)."""
    for address in addresses:
        if not is_public(address):
            raise ForbiddenAddressError(
                f"The webhook host {host!r} resolves to {address}, which is not a public "
                "address (set VOXFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it)."
            )


def check_at_submission(raw: str, *, allow_private: bool) -> str:
    """Validate a job's webhook URL; refuse hosts that are or resolve to non-public addresses.

    A name that does not exist is refused; a lookup that fails for another reason (resolver
    unreachable) is let through: every delivery checks again.
    """
    parts = parse(raw)
    if allow_private:
        return raw
    host = parts.hostname or ""
    try:
        addresses = resolve(host, _default_port(parts))
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            raise WebhookUrlError(f"The webhook host {host!r} does not resolve.") from None
        return raw
    except OSError:
        return raw
    check_public(addresses, host)
    return raw


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: a checked address, and the name the receiver expects."""

    url: str  # the webhook URL with its host replaced by the checked address
    host_header: str
    extensions: dict[str, str] = field(default_factory=dict)  # TLS server name (SNI)


def pin(raw: str, *, allow_private: bool) -> list[Target]:
    """Resolve and check the URL's host now: one target per address, in resolver order."""
    parts = parse(raw)
    host = parts.hostname or ""
    addresses = resolve(host, _default_port(parts))
    if not allow_private:
        check_public(addresses, host)
    extensions = {}
    if parts.scheme == "https" and _literal(host) is None:
        extensions["sni_hostname"] = host  # and the certificate is checked against the name
    targets = []
    for address in addresses:
        shown = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        targets.append(Target(url=url, host_header=parts.netloc, extensions=extensions))
    return targets
