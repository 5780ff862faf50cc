"""The scheduler process: publishes the Celery wake-ups for keys that are due.

It is what makes a lost Celery message harmless (a wake-up the broker no longer holds and no
worker claimed is published again after the grace), and it bounds what it publishes twice:
no more keys than the account's rate limit can take right now, and no more messages than keep
the broker's queue at WAKE_QUEUE_MAX, so a backlog the workers cannot drain waits in Redis's
`due` set (a few bytes a key) instead of piling up as Celery messages (docs/design.md,
Backpressure). Several may run: the sweep script hands each due key to one of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
import structlog
from kombu.exceptions import OperationalError

from app.core import redisconn
from app.core.ratelimit import AccountLimiter
from app.runtime import Runtime
from app.wakeups import Waker

log = structlog.get_logger(__name__)
MAX_IDLE_SECONDS = 1.0
SHORT_WAIT_SECONDS = 0.25
# How soon to look again when the queue is full: workers drain it meanwhile; a full queue of
# WAKE_QUEUE_MAX messages lasts longer than this at any drain rate below 10 x WAKE_QUEUE_MAX/s.
QUEUE_FULL_POLL_SECONDS = 0.1


class Dispatcher:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.waker: Waker = rt.waker
        self.stop_event = threading.Event()
        self.limiters = {
            sid: AccountLimiter(rt.redis, rt.state.keys, s.personyze)
            for sid, s in rt.settings.stores.items()
        }
        self.woken = 0
        self.broker = (
            rt.redis
            if rt.broker_url == rt.url
            else redisconn.client(rt.broker_url, rt.settings.redis_tls_verify)
        )

    def queued(self) -> int:
        """Messages waiting in the sync queue: kombu's Redis transport keeps a queue as a list
        named after it (LPUSH to publish, BRPOP to consume), so this is FIFO order too."""
        return int(self.broker.llen(self.rt.settings.sync_queue))

    def tick(self) -> float:
        """Wake what is due and admissible; return how long nothing needs doing, counted from
        the start of the tick, so its own round trips do not slow the pace the rate limit
        sets (docs/design.md, Wake-ups and the dispatcher)."""
        started = time.monotonic()
        s = self.rt.settings
        idle = MAX_IDLE_SECONDS
        queued = self.queued()
        room = max(0, s.wake_queue_max - queued)
        full = False
        for sid in s.stores:
            decision = self.limiters[sid].peek()
            if not decision.allowed:
                idle = min(idle, decision.wait)
                limit = 0  # paused or no token: only recover lost wake-ups
            else:
                limit = min(s.sweep_batch, max(1, decision.tokens), room)
            keys, nxt = self.rt.state.sweep(sid, limit, s.wake_grace_seconds, queued)
            for pid in keys:
                self.waker.publish(sid, pid)
            self.woken += len(keys)
            room -= len(keys)
            if keys:
                # Those keys will spend the tokens seen; look again when new ones exist.
                nxt = max(nxt or 0.0, len(keys) * self.limiters[sid].interval)
            if decision.allowed and room <= 0 and nxt == 0:
                full = True  # due keys wait for room in the queue, not for time
            elif nxt is not None and decision.allowed:
                idle = min(idle, nxt)
        if full:
            idle = QUEUE_FULL_POLL_SECONDS
        return max(0.0, idle - (time.monotonic() - started))

    def run(self, on_turn: Callable[[], None] | None = None) -> None:
        """The loop; `on_turn` runs after each tick (the scheduler's heartbeat and Sentry
        Crons check-in, app/observability.py SchedulerPulse)."""
        log.info("dispatcher_started", stores=list(self.rt.settings.stores))
        while not self.stop_event.is_set():
            try:
                idle = self.tick()
                if on_turn is not None:
                    on_turn()
                if idle >= SHORT_WAIT_SECONDS:
                    self.rt.state.wait_kick(min(idle, MAX_IDLE_SECONDS))
                elif idle > 0:
                    # Redis times out blocked clients only as often as its event loop wakes
                    # (hz 10: every 100 ms), far too coarse for pacing tokens; sleep here.
                    self.stop_event.wait(idle)
                    self.rt.state.drain_kicks()
            except (redis.RedisError, OperationalError) as e:  # Redis or a separate broker
                log.warning("dispatcher_unavailable", error=type(e).__name__)
                self.stop_event.wait(1.0)

    def stop(self) -> None:
        self.stop_event.set()
