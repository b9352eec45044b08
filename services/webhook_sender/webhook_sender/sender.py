"""One HTTP attempt of a webhook delivery: checked address, no redirects, bounded time."""

from __future__ import annotations

import email.utils
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import certifi
import httpx

from voxflow.webhooks.urls import ForbiddenAddressError, Target, WebhookUrlError, pin

USER_AGENT = "Voxflow-Webhooks/1"
_SNIPPET_BYTES = 512  # of an error answer's body, recorded to help the receiver's owner


@dataclass(frozen=True)
class Attempt:
    """What one attempt got: a metric label, the HTTP status if any, and what went wrong."""

    result: str  # ok, gone, http_3xx, http_4xx, http_5xx, timeout, connection_error, ...
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait

    @property
    def delivered(self) -> bool:
        """The receiver took it (2xx)."""
        return self.result == "ok"


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # The system's trust store (SSL_CERT_FILE and SSL_CERT_DIR apply) plus Mozilla's bundle.
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _answer(response: httpx.Response, snippet: str) -> Attempt:
    code = response.status_code
    if 200 <= code < 300:
        return Attempt("ok", code)
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    if code == 410:
        return Attempt("gone", code, "the receiver answered 410 Gone: not retried")
    if 300 <= code < 400:
        location = response.headers.get("location", "")
        error = f"HTTP {code}: redirects are not followed (Location: {location[:200]})"
        return Attempt("http_3xx", code, error, retry_after)
    kind = "http_4xx" if code < 500 else "http_5xx"
    detail = f": {snippet}" if snippet else ""
    return Attempt(kind, code, f"HTTP {code}{detail}", retry_after)


def _targets(url: str, allow_private: bool) -> list[Target] | Attempt:
    """The checked addresses to try, or the failed attempt that checking them was."""
    try:
        targets = pin(url, allow_private=allow_private)
    except WebhookUrlError as exc:
        forbidden = isinstance(exc, ForbiddenAddressError)
        return Attempt("forbidden_address" if forbidden else "invalid_url", error=exc.message)
    except OSError as exc:  # socket.gaierror included
        return Attempt("dns_error", error=f"cannot resolve the webhook host: {exc}")
    return targets or Attempt("dns_error", error="the webhook host has no address")


def _send(
    client: httpx.Client, target: Target, body: bytes, headers: dict[str, str], timeout: float
) -> Attempt:
    """One request to one address; httpx.ConnectError is left to the caller."""
    request = client.build_request(
        "POST", target.url, content=body, extensions=dict(target.extensions),
        headers={**headers, "Host": target.host_header, "Content-Type": "application/json",
                 "User-Agent": USER_AGENT},
    )  # fmt: skip
    try:
        response = client.send(request, stream=True)
        try:
            snippet = _read_snippet(response)
        finally:
            response.close()
    except httpx.ConnectError:
        raise
    except httpx.TimeoutException as exc:
        return Attempt("timeout", error=f"no answer within {timeout:g} s ({type(exc).__name__})")
    except (httpx.HTTPError, OSError) as exc:
        return Attempt("connection_error", error=f"{type(exc).__name__}: {exc}"[:500])
    return _answer(response, snippet)


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool
) -> Attempt:
    """POST the body once to a checked address of `url`; never raises for network trouble."""
    targets = _targets(url, allow_private)
    if isinstance(targets, Attempt):
        return targets
    refused = Attempt("connection_error", error="no address to connect to")
    # No proxies from the environment: the address was checked, and a proxy would pick its
    # own. Redirects are answers, not instructions.
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls()
    ) as client:
        for target in targets:
            try:
                return _send(client, target, body, headers, timeout)
            except httpx.ConnectError as exc:  # as a plain connect would: try the next address
                refused = Attempt("connection_error", error=f"ConnectError: {exc}"[:500])
    return refused


def _read_snippet(response: httpx.Response) -> str:
    if 200 <= response.status_code < 300:
        return ""  # the body of a success does not matter
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _SNIPPET_BYTES:
            break
    return b"".join(chunks)[:_SNIPPET_BYTES].decode("utf-8", "replace").strip()
