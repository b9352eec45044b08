"""Per-tenant abuse limits on uploads: a rate in Redis and a quota of unfinished jobs.

Both are checked after authentication and before the body is read, so a tenant over its
limits costs the API almost nothing. Refusals are 429 with `Retry-After`.

* Rate: a sliding window of `UPLOADS_PER_MINUTE` per tenant, kept in a Redis sorted set by
  one Lua script (shared by every API replica, timed by the Redis server's clock). If Redis
  cannot be reached the upload is let through: the limit protects capacity, and refusing
  every upload during a Redis blip would be the bigger outage.
* Quota: at most `MAX_ACTIVE_JOBS` jobs of the tenant that have not finished, counted
  in Postgres, which is the truth about jobs.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import TYPE_CHECKING

import redis
from starlette.concurrency import run_in_threadpool

from voxflow.jobs import reads
from voxflow.web.errors import ApiError

if TYPE_CHECKING:
    from asyncpg import Connection

    from voxflow.web.api_runtime import ApiRuntime

log = logging.getLogger(__name__)

PREFIX = "voxflow:ratelimit:uploads:"
WINDOW_SECONDS = 60

# KEYS: the tenant's window. ARGV: limit, window s, member. Returns {allowed, retry_after_ms}.
_TAKE = """
local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""


class UploadLimits:
    """The checks one API process makes before accepting an upload."""

    def __init__(
        self, client: redis.Redis | None, per_minute: int | None, max_active: int | None
    ) -> None:
        self.redis = client
        self.per_minute = per_minute
        self.max_active = max_active
        self._take = client.register_script(_TAKE) if client is not None else None

    async def check(self, runtime: ApiRuntime, tenant: str) -> None:
        """Both limits, as every upload route checks them before reading the body (the rate's
        Redis call blocks: in a thread; the quota on the driver connection)."""
        await run_in_threadpool(self.check_rate, tenant)
        if self.max_active is not None:
            async with runtime.driver() as conn:
                await self.check_quota(conn, tenant)

    def check_rate(self, tenant: str) -> None:
        """Count one upload against the tenant's rate, or refuse it with a 429."""
        if self.per_minute is None or self._take is None:
            return
        try:
            allowed, retry_ms = self._take(
                keys=[PREFIX + tenant], args=[self.per_minute, WINDOW_SECONDS, uuid.uuid4().hex]
            )
        except redis.RedisError as exc:
            log.warning("upload rate limit not checked (Redis unavailable): %s", exc)
            return
        if not int(allowed):
            wait = max(1, math.ceil(int(retry_ms) / 1000))
            raise ApiError(
                429, "rate_limited",
                f"This tenant may upload {self.per_minute} recordings a minute; retry in "
                f"{wait} s.",
                {"Retry-After": str(wait)},
            )  # fmt: skip

    async def check_quota(self, conn: Connection, tenant: str) -> None:
        """Refuse an upload while the tenant has too many unfinished jobs (counted on the
        driver connection, in autocommit: no transaction to open and roll back)."""
        if self.max_active is None:
            return
        active = await reads.count_active_jobs(conn, tenant)
        if active >= self.max_active:
            raise ApiError(
                429, "too_many_active_jobs",
                f"This tenant already has {active} unfinished jobs (the limit is "
                f"{self.max_active}); retry when some have finished.",
                {"Retry-After": "30"},
            )  # fmt: skip
