"""The per-process wiring shared by the web app, the workers and the CLI: settings, the Redis
client and the state machine. Built once per process, lazily, from the environment."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from app.config import Settings, load_settings
from app.core import redisconn
from app.core.state import State

if TYPE_CHECKING:
    from app.wakeups import Waker

log = logging.getLogger(__name__)
EMBEDDED_PORT = 6390
_embedded: redisconn.EmbeddedRedis | None = None


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or (development only) the embedded Redis that `personyze-sync dev` starts,
    started here if nothing answers on its port yet."""
    global _embedded
    if settings.redis_url:
        return settings.redis_url
    url = f"redis://127.0.0.1:{EMBEDDED_PORT}/0"
    if not redisconn.answers(url):
        log.warning("REDIS_URL is not set: starting an embedded Redis (development only)")
        _embedded = redisconn.EmbeddedRedis(Path("var"), EMBEDDED_PORT)
    return url


@dataclass
class Runtime:
    settings: Settings
    url: str
    redis: redis.Redis = field(repr=False)
    state: State = field(repr=False)

    @property
    def broker_url(self) -> str:
        return self.settings.broker_url or self.url

    @cached_property
    def waker(self) -> Waker:
        """The wake-up publisher (the dispatcher; the web process with WAKE_FROM_WEB), built on
        first use: a process that never publishes opens no broker connection."""
        from app.wakeups import Waker

        return Waker(self.settings, self.broker_url)


def build(settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings()
    url = redis_url(settings)
    r = redisconn.client(url, settings.redis_tls_verify)
    state = State(
        r,
        settings.key_prefix,
        wake_from_web=settings.wake_from_web,
        cooldown=settings.product_cooldown_seconds,
    )
    return Runtime(settings=settings, url=url, redis=r, state=state)
