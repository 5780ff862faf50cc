"""One rate limit and one pause per Personyze account, shared by every worker on every machine
(docs/design.md invariants 5 and 6). State lives in Redis; the clock is Redis's own (TIME), so
workers with skewed clocks still agree."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import redis

from app.config import PersonyzeAccount
from app.core.state import Keys, lua_source


@dataclass(slots=True, frozen=True)
class Decision:
    allowed: bool
    wait: float  # seconds until it is worth asking again (0 when allowed)
    paused: bool = False
    tokens: int = 0


# Burst tolerance: a request may go up to this long before its slot (never more than one
# interval), so two workers whose requests are ready at nearly the same moment need not wait
# out a whole interval each; at most one extra request can bunch up after an idle spell.
# GCRA never lends out time that passed unused: a late request loses it, which is why the
# dispatcher paces its wake-ups from the start of each tick.
BURST_TOLERANCE = 0.05


class AccountLimiter:
    """GCRA: `rate` requests per second, spaced 1/rate apart, up to BURST_TOLERANCE early."""

    def __init__(self, r: redis.Redis, keys: Keys, account: PersonyzeAccount):
        self.r = r
        self.account = account.id
        self.interval = 1.0 / account.rate_limit
        self.tau = min(self.interval, BURST_TOLERANCE)
        self.tat_key = keys.account(self.account, "tat")
        self.pause_key = keys.account(self.account, "pause")
        self.fail_key = keys.account(self.account, "failures")
        self._gcra = r.register_script(lua_source("ratelimit"))
        self._pause = r.register_script(lua_source("pause"))

    def _ask(self, consume: bool) -> Decision:
        status, value = self._gcra(
            keys=[self.tat_key, self.pause_key],
            args=[f"{self.interval:.9f}", f"{self.tau:.9f}", "1" if consume else "0"],
        )
        status = status.decode()
        if status == "ok":
            return Decision(True, 0.0, tokens=int(value))
        return Decision(False, float(value), paused=status == "paused")

    def acquire(self) -> Decision:
        """Take a token now, or learn how long until one (never sleeps)."""
        return self._ask(True)

    def peek(self) -> Decision:
        """How many requests could go now, without taking any (the dispatcher's admission)."""
        return self._ask(False)

    def unavailable(self, retry_after: float | None, base: float, cap: float) -> float:
        """Personyze said 503: nobody calls this account for the seconds it named, else for
        an exponential backoff with full jitter over the account's consecutive 503s."""
        args: list[str | int]
        if retry_after is not None:
            args = ["wait", f"{max(retry_after, 0.001):.3f}", 0, 0]
        else:
            args = ["busy", f"{base:.3f}", f"{cap:.3f}", f"{random.random():.6f}"]
        secs, _ = self._pause(keys=[self.pause_key, self.fail_key], args=args)
        return float(secs)

    def auth_failed(self, base: float, cap: float = 3600.0) -> tuple[float, bool]:
        """Personyze said 401: pause, growing with each repeat. True the first time since the
        last success (so it is reported once)."""
        secs, first = self._pause(
            keys=[self.pause_key, self.fail_key], args=["auth", f"{base:.3f}", f"{cap:.3f}", 0]
        )
        return float(secs), int(first) == 1

    def paused_for(self) -> float:
        ms = int(self.r.pttl(self.pause_key))
        return ms / 1000 if ms > 0 else 0.0

    def status(self) -> dict[str, Any]:
        """Whether the account is paused, for how much longer, and why: the consecutive 401s
        and 503s since its last success (the counters pause.lua keeps). For /admin, `status`
        and /metrics."""
        pipe = self.r.pipeline(transaction=False)
        pipe.pttl(self.pause_key)
        pipe.hmget(self.fail_key, "auth", "busy")
        ms, (auth, busy) = pipe.execute()
        remaining = int(ms) / 1000 if int(ms) > 0 else 0.0
        auth, busy = int(auth or 0), int(busy or 0)
        reason = (
            ""
            if not remaining
            else "401: API key rejected"
            if auth
            else "503: Personyze asked to wait"
        )
        return {
            "paused": remaining > 0,
            "remaining_seconds": round(remaining, 1),
            "reason": reason,
            "consecutive_401": auth,
            "consecutive_503": busy,
        }


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): uniform in
    [0, min(cap, base * 2**attempt)], so retries of many keys spread out instead of
    returning together."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0, ceiling)
