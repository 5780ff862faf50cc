"""Recent syncs and writes per minute, per store, for the admin page and `status`.

Prometheus has the exact rates; this is what a person opening /admin wants at a glance
without a Prometheus: the last writes and dead letters, and how many writes went out in the
last minute. Both are small and expire on their own (a capped list, per-minute counters
that live three minutes), and are written off the webhook path, by the worker."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from redis.client import Pipeline

from app.core.state import State

if TYPE_CHECKING:
    from app.config import StoreConfig

RECENT_KEPT = 50
MINUTE_KEY_TTL = 180


def _keys(state: State, store: str) -> tuple[str, str]:
    return state.keys.recent(store), state.keys.writes_per_minute(store)


def note(
    state: State, store: str, pid: str, outcome: str, detail: str = "", pipe: Pipeline | None = None
) -> None:
    """Remember one finished sync ("written", "deleted", "dead"); writes count per minute.
    With `pipe`, the commands join the caller's pipeline and the caller executes it."""
    recent, wpm = _keys(state, store)
    now = time.time()
    own = pipe is None
    p = state.r.pipeline(transaction=False) if pipe is None else pipe
    p.lpush(recent, orjson.dumps({"at": now, "product": pid, "outcome": outcome, "detail": detail}))
    p.ltrim(recent, 0, RECENT_KEPT - 1)
    if outcome in ("written", "deleted"):
        minute = f"{wpm}:{int(now // 60)}"
        p.incr(minute)
        p.expire(minute, MINUTE_KEY_TTL)
    if own:
        p.execute()


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


def duration(seconds: float) -> str:
    """A span as a person reads it (`45 s`, `12 min`, `3.5 h`): the CLI and the admin page."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def pause_state(state: State, store: StoreConfig) -> dict[str, Any]:
    """The store's Personyze account pause (AccountLimiter.status)."""
    from app.core.ratelimit import AccountLimiter

    return AccountLimiter(state.r, state.keys, store.personyze).status()


def overview(state: State, store: StoreConfig) -> dict[str, Any]:
    """One store at a glance: the state's status (ledger, balance, due, backlog age, DLQ
    size), the account's pause and writes in the last minute. What /admin, /admin/status
    and `personyze-sync status` show."""
    out = state.status(store.id)
    out.update(
        pause=pause_state(state, store), writes_per_minute=writes_per_minute(state, store.id)
    )
    return out
