"""The scheduler process: publishes the Celery wake-ups for keys that are due.

It is what makes a lost Celery message harmless (keys woken but never finished come round
again after the grace), and it only wakes as many keys as the account's rate limit can take
right now, so a backlog does not turn into a storm of tasks that find no token. Several may
run: the sweep script hands each due key to one of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
import structlog
from celery import Celery
from kombu.exceptions import OperationalError

from app.core.ratelimit import AccountLimiter
from app.runtime import Runtime
from workers.celery_app import SYNC_TASK

log = structlog.get_logger(__name__)
MAX_IDLE_SECONDS = 1.0
SHORT_WAIT_SECONDS = 0.25


class Dispatcher:
    def __init__(self, rt: Runtime, celery: Celery) -> None:
        self.rt = rt
        self.celery = celery
        self.stop_event = threading.Event()
        self.limiters = {
            sid: AccountLimiter(rt.redis, rt.state.keys, s.personyze)
            for sid, s in rt.settings.stores.items()
        }
        self.woken = 0

    def publish(self, store: str, pid: str) -> None:
        publish(self.celery, store, pid)

    def tick(self) -> float:
        """Wake what is due and admissible; return how long nothing needs doing, counted from
        the start of the tick (so its own round trips are not added to every token interval:
        that cost 4% of the rate in bench/sync.py)."""
        started = time.monotonic()
        s = self.rt.settings
        idle = MAX_IDLE_SECONDS
        for sid in s.stores:
            decision = self.limiters[sid].peek()
            if not decision.allowed:
                idle = min(idle, decision.wait)
                continue
            limit = min(s.sweep_batch, max(1, decision.tokens))
            keys, nxt = self.rt.state.sweep(sid, limit, s.wake_grace_seconds)
            for pid in keys:
                self.publish(sid, pid)
            self.woken += len(keys)
            if keys:
                # Those keys will spend the tokens seen; look again when new ones exist.
                nxt = max(nxt or 0.0, len(keys) * self.limiters[sid].interval)
            if nxt is not None:
                idle = min(idle, nxt)
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


def publish(celery: Celery, store: str, pid: str) -> None:
    """The wake-up message: just the key; what to do is read from Redis."""
    celery.send_task(SYNC_TASK, args=[store, pid], queue=celery.runtime.settings.sync_queue)
