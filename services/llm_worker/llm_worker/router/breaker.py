"""Per-deployment circuit breakers whose state lives in Redis, shared by every worker.

Closed: calls go through; consecutive failures, or a failure rate over a sliding window,
open the circuit. Open: the deployment is skipped until its cool-down ends. Then exactly
one caller wins the half-open probe (a lock with a TTL); its success closes the circuit,
its failure opens it for another cool-down. Every deployment has a breaker, even a lone
one, so an outage is never retried call after call (LiteLLM #40405).

Each transition is one Lua script, so concurrent workers cannot interleave half-updates,
and times come from the Redis server's clock, so worker clocks need not agree.
"""

from __future__ import annotations

from typing import Literal

import redis

from llm_worker.router.config import BreakerPolicy
from voxflow.observability.metrics import set_breaker

State = Literal["closed", "open", "half_open"]
PREFIX = "voxflow:llm:breaker:"

# KEYS: hash, calls zset, probe lock. ARGV: cooldown s. Returns "closed", "probe" or "open".
_ALLOW = """
local t = redis.call('TIME'); local now = t[1] + t[2] / 1e6
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return 'closed' end
if now < open_until then return 'open' end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', math.floor(ARGV[1] * 1000)) then
  return 'probe'
end
return 'open'
"""

# ARGV: outcome (1 ok, 0 failure), probe (1/0), failures, rate, window s, min calls,
# cooldown s, member id. Returns the state after recording.
_RECORD = """
local t = redis.call('TIME'); local now = t[1] + t[2] / 1e6
local ok, probe = ARGV[1] == '1', ARGV[2] == '1'
local window, cooldown = tonumber(ARGV[5]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZADD', KEYS[2], now, (ok and 'ok:' or 'fail:') .. ARGV[8])
redis.call('EXPIRE', KEYS[2], math.ceil(window) + 1)
if ok then
  redis.call('HSET', KEYS[1], 'consecutive', 0)
  if probe then
    redis.call('HSET', KEYS[1], 'open_until', 0)
    redis.call('DEL', KEYS[2], KEYS[3])
  end
  local still = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  return still == 0 and 'closed' or 'open'
end
local consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
local calls, failed = 0, 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  calls = calls + 1
  if string.sub(member, 1, 5) == 'fail:' then failed = failed + 1 end
end
local open = probe or consecutive >= tonumber(ARGV[3])
  or (calls >= tonumber(ARGV[6]) and failed / calls >= tonumber(ARGV[4]))
if open then
  redis.call('HSET', KEYS[1], 'open_until', now + cooldown, 'opened_at', now)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  redis.call('DEL', KEYS[3])
  return 'open'
end
return 'closed'
"""


class Breakers:
    """The breakers of all deployments, in one Redis."""

    def __init__(self, client: redis.Redis, policy: BreakerPolicy) -> None:
        self.redis = client
        self.policy = policy
        self._allow = client.register_script(_ALLOW)
        self._record = client.register_script(_RECORD)
        self._sequence = 0

    @staticmethod
    def _keys(name: str) -> list[str]:
        return [f"{PREFIX}{name}", f"{PREFIX}{name}:calls", f"{PREFIX}{name}:probe"]

    def allow(self, name: str) -> Literal["closed", "probe"] | None:
        """May a call go to this deployment? "probe" means this caller tests recovery."""
        verdict = self._allow(keys=self._keys(name), args=[self.policy.cooldown_seconds])
        text = _text(verdict)
        set_breaker(name, "closed" if text == "closed" else "open")  # a probe: still open
        if text == "open":
            return None
        return "probe" if text == "probe" else "closed"

    def record(self, name: str, *, ok: bool, probe: bool = False) -> State:
        """Count one call's outcome; returns the circuit's state afterwards."""
        self._sequence += 1
        policy = self.policy
        state = self._record(
            keys=self._keys(name),
            args=[
                int(ok), int(probe), policy.failures, policy.failure_rate,
                policy.window_seconds, policy.min_calls, policy.cooldown_seconds,
                f"{id(self)}:{self._sequence}",
            ],
        )  # fmt: skip
        result: State = "open" if _text(state) == "open" else "closed"
        set_breaker(name, result)
        return result

    def state(self, name: str) -> State:
        """The circuit's state as an observer sees it (no probe is taken)."""
        raw = self.redis.hget(f"{PREFIX}{name}", "open_until")
        open_until = float(raw) if raw else 0.0
        state: State = "closed"
        if open_until:
            seconds, micros = self.redis.time()
            state = "open" if seconds + micros / 1e6 < open_until else "half_open"
        set_breaker(name, state)
        return state

    def reset(self, name: str) -> None:
        """Forget a deployment's history (operators, tests)."""
        self.redis.delete(*self._keys(name))
        set_breaker(name, "closed")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
