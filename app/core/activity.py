"""Recent syncs and writes per minute, per store, for the admin page and `status`.

Prometheus has the exact rates; this is what a person opening /admin wants at a glance
without a Prometheus: the last writes and dead letters, and how many writes went out in the
last minute. Both are small and expire on their own (a capped list, per-minute counters
that live three minutes), and are written off the webhook path, by the worker."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from app.core.state import State

if TYPE_CHECKING:
    from app.config import StoreConfig

RECENT_KEPT = 50
MINUTE_KEY_TTL = 180


def _keys(state: State, store: str) -> tuple[str, str]:
    return state.keys.recent(store), state.keys.writes_per_minute(store)


def note(state: State, store: str, pid: str, outcome: str, detail: str = "",
         pipe: Any = None) -> None:
    """Remember one finished sync ("written", "deleted", "dead"); writes count per minute.
    With `pipe`, the commands join the caller's pipeline and the caller executes it."""
    recent, wpm = _keys(state, store)
    now = time.time()
    own = pipe is None
    pipe = state.r.pipeline(transaction=False) if own else pipe
    pipe.lpush(recent, orjson.dumps({"at": now, "product": pid, "outcome": outcome,
                                     "detail": detail}))
    pipe.ltrim(recent, 0, RECENT_KEPT - 1)
    if outcome in ("written", "deleted"):
        minute = f"{wpm}:{int(now // 60)}"
        pipe.incr(minute)
        pipe.expire(minute, MINUTE_KEY_TTL)
    if own:
        pipe.execute()


def recent(state: State, store: str, limit: int = 20) -> list[dict[str, Any]]:
    key, _ = _keys(state, store)
    return [orjson.loads(x) for x in state.r.lrange(key, 0, limit - 1)]


def writes_per_minute(state: State, store: str) -> int:
    """Writes in the last 60 seconds: this minute's count plus the share of the previous
    minute that falls inside the window (the usual sliding-window estimate)."""
    _, wpm = _keys(state, store)
    now = time.time()
    minute = int(now // 60)
    cur, prev = state.r.mget(f"{wpm}:{minute}", f"{wpm}:{minute - 1}")
    frac = 1.0 - (now % 60) / 60.0
    return round(int(cur or 0) + int(prev or 0) * frac)


def pause_state(state: State, store: StoreConfig) -> dict[str, Any]:
    """Whether the store's Personyze account is paused, for how much longer, and why (the
    consecutive 401s and 503s since its last success; app/core/lua/pause.lua)."""
    from app.core.ratelimit import AccountLimiter

    limiter = AccountLimiter(state.r, state.keys, store.personyze)
    fails = {k.decode(): v.decode() for k, v in state.r.hgetall(limiter.fail_key).items()}
    remaining = limiter.paused_for()
    auth, busy = int(fails.get("auth", 0)), int(fails.get("busy", 0))
    reason = ("" if not remaining else "401: API key rejected" if auth
              else "503: Personyze asked to wait")
    return {"paused": remaining > 0, "remaining_seconds": round(remaining, 1), "reason": reason,
            "consecutive_401": auth, "consecutive_503": busy}


def overview(state: State, store: StoreConfig) -> dict[str, Any]:
    """One store at a glance: the state's status (ledger, balance, due, backlog age, DLQ
    size), the account's pause and writes in the last minute. What /admin, /admin/status
    and `personyze-sync status` show."""
    out = state.status(store.id)
    out.update(pause=pause_state(state, store), writes_per_minute=writes_per_minute(state,
                                                                                   store.id))
    return out
