"""The scheduler's periodic jobs (reconciliation, subscription repair): once per interval per
store across every scheduler, by a Redis lock per store that lasts the interval."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable

import redis
import structlog

from app.runtime import Runtime

log = structlog.get_logger(__name__)


def every_interval(
    rt: Runtime,
    stop: threading.Event,
    job: str,
    interval: float,
    stores: Callable[[], Iterable[str]],
    run: Callable[[str], object],
) -> None:
    """Run `run(store_id)` for each of `stores()` once per `interval` (0: never), taken by one
    scheduler only. One store's failure is logged and reported to Sentry and the next store
    still runs; Redis errors are waited out."""
    if not interval:
        return
    while not stop.is_set():
        try:
            ids = list(stores())
        except redis.RedisError as e:
            log.warning(f"{job}_redis_error", error=type(e).__name__)
            ids = []
        for sid in ids:
            try:
                lock = rt.state.keys.lock(sid, job)
                if rt.redis.set(lock, "1", nx=True, ex=max(1, math.ceil(interval))):
                    run(sid)
                else:
                    log.debug(f"{job}_done_elsewhere", store=sid)
            except redis.RedisError as e:
                log.warning(f"{job}_redis_error", store=sid, error=type(e).__name__)
            except Exception:
                import sentry_sdk

                log.exception(f"{job}_failed", store=sid)
                sentry_sdk.capture_exception()
        stop.wait(min(60.0, interval))
