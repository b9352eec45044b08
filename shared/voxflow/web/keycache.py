"""The API keys an API process has checked lately, so most requests skip the key lookup.

A key's tenant is remembered for `ttl` seconds from the lookup that found it (a hit does not
extend it), so a revoked key keeps working for at most `ttl` seconds on any process that saw
it just before. Unknown and revoked keys are never remembered: a new key works at once, and a
wrong one is looked up every time. Entries are found by the key's SHA-256, never the secret.
"""

from __future__ import annotations

import threading

from cachetools import TTLCache

MAX_KEYS = 10_000  # a process serving more distinct keys than this just looks up more often


class ApiKeyCache:
    """key hash → tenant for `ttl` seconds (0: nothing is remembered)."""

    def __init__(self, ttl: float, max_keys: int = MAX_KEYS) -> None:
        self.ttl = ttl
        self._tenants: TTLCache[str, str] | None = (
            TTLCache(maxsize=max_keys, ttl=ttl) if ttl > 0 else None
        )
        self._lock = threading.Lock()  # TTLCache is not thread-safe; sync routes use threads

    def get(self, key_hash: str) -> str | None:
        """The tenant of a key checked less than `ttl` seconds ago, else None."""
        if self._tenants is None:
            return None
        with self._lock:
            return self._tenants.get(key_hash)

    def put(self, key_hash: str, tenant: str) -> None:
        """Remember a key the database just confirmed."""
        if self._tenants is not None:
            with self._lock:
                self._tenants[key_hash] = tenant
