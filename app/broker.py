"""The Celery broker connection both sides share: the publisher's (app/wakeups.py) and the
worker's (workers/celery_app.py) configuration, and kombu's Redis transport made to survive a
Redis restart.

With Redis gone while the worker's consumer is blocked in BRPOP, Celery 5.7 / kombu 5.7 (the
newest releases) close the broken connection twice (read from the crash's traceback, which
tests/test_redis_restart.py reproduces): the first close fails reading the
BRPOP reply, yet still detaches the transport from its connection; the second close then
restores the unacknowledged messages through a new client built from that detached
connection, and `_connparams` fails with `AttributeError: 'NoneType' object has no attribute
'hostname'`. That error is not a connection error, so it escapes Celery's reconnect loop and
the worker process exits (docs/design.md, Redis restarts).

Here the detached case is a connection error, which Celery's loop ignores while it
reconnects. Nothing is lost by not restoring those messages then: kombu restores
unacknowledged messages after `visibility_timeout`, and in any case a message is only a
wake-up; the dispatcher's sweeper wakes every due key nobody holds a lease on."""

from __future__ import annotations

from typing import Any, Protocol, cast

import redis
from kombu.transport import redis as kombu_redis

from app.config import Settings
from app.core.redisconn import tls_options

# Longer than any task can run, so a slow task is not redelivered while it runs.
VISIBILITY_TIMEOUT_SECONDS = 3600


class _ConnParams(Protocol):
    # kombu's private hook, which the kombu stubs (celery-types) leave out.
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]: ...


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is already closed")
        return cast(_ConnParams, super())._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"


def broker_config(settings: Settings, broker_url: str) -> dict[str, Any]:
    """The Celery settings that decide where a wake-up goes and what it looks like: the same
    for the apps that publish and the app that consumes, so a message one sends is one the
    other reads."""
    conf: dict[str, Any] = {
        "broker_url": broker_url,
        # kombu's Redis transport with the fix that lets a worker outlive a Redis restart
        "broker_transport": TRANSPORT,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.sync_queue,
        "task_serializer": "json",
        "accept_content": ["json"],
    }
    if broker_url.startswith("rediss://"):
        # The certificate is checked unless REDIS_TLS_VERIFY=false (Heroku's self-signed ones).
        conf["broker_use_ssl"] = tls_options(settings.redis_tls_verify)
    return conf
