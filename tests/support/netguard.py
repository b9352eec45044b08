"""Network guard for the test suite: in-process connections may only reach this machine.

`install()` patches `socket.getaddrinfo` (so a public host name is refused before any DNS
query) and `socket.socket.connect`/`connect_ex` (so a public address is refused before any
packet). Unix sockets, 127.0.0.0/8, ::1 and "localhost" stay allowed. A blocked attempt
raises `NetworkBlockedError`, an OSError, so HTTP clients report it as a connection error
whose cause names the guard. Child processes (e2e workers) are not covered.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any, Final

_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_INET: Final = (socket.AF_INET, socket.AF_INET6)
_lock = threading.Lock()
_originals: dict[str, Any] = {}


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to reach a host other than this machine."""


def is_local(host: object) -> bool:
    """Whether `host` (a name or an address) can only mean this machine."""
    if host is None:  # getaddrinfo(None, ...): the loopback (or wildcard) address
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in ("", *_LOCAL_NAMES) or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _blocked(what: str) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"netguard: tests may not use the network; blocked {what} (only loopback is allowed)"
    )


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    # Literal IPs need no DNS and are judged at connect time; names must be local (this
    # machine's own name may be resolved: some libraries do, and connecting is still checked).
    if not (is_local(host) or _is_ip_literal(host) or host == socket.gethostname()):
        raise _blocked(f"name resolution of {host!r}")
    return _originals["getaddrinfo"](host, port, *args, **kwargs)


def _is_ip_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
    except ValueError:
        return False
    return True


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in _INET:
        host = address[0] if isinstance(address, tuple) else address
        if not is_local(host):
            raise _blocked(f"a connection to {address!r}")


def _connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _originals["connect"](self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    result: int = _originals["connect_ex"](self, address)
    return result


def install() -> None:
    """Start refusing non-loopback connections in this process (idempotent)."""
    with _lock:
        if _originals:
            return
        _originals.update(
            getaddrinfo=socket.getaddrinfo,
            connect=socket.socket.connect,
            connect_ex=socket.socket.connect_ex,
        )
        socket.getaddrinfo = _getaddrinfo
        socket.socket.connect = _connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign,assignment]


def uninstall() -> None:
    """Restore the real socket functions."""
    with _lock:
        if not _originals:
            return
        socket.getaddrinfo = _originals.pop("getaddrinfo")
        socket.socket.connect = _originals.pop("connect")  # type: ignore[method-assign]
        socket.socket.connect_ex = _originals.pop("connect_ex")  # type: ignore[method-assign]


def installed() -> bool:
    """Whether the guard is active."""
    return bool(_originals)
