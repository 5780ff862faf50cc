"""The Celery broker transport: kombu's Redis transport, made to survive a Redis restart.

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

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
