"""Webhook endpoints: verify, parse, record in one Redis round trip, answer.

A delivery is answered 2xx only once its event is in Redis; if Redis cannot be written the
answer is 503 so the platform retries (docs/design.md invariant 1). Nothing a sender puts in a
request produces a 500.

This is the one hot path, so it is a small WSGI app mounted at /webhooks beside the Flask
app rather than a blueprint: Flask's request context, routing and dispatch cost a webhook
more than anything here needs (docs/design.md, The webhook path).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, NamedTuple

import redis
import structlog
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from app.core.model import BadPayload, NotOurs
from app.core.state import Recorded
from app.platforms.base import Adapter, Ignore
from app.platforms.bigcommerce import BigCommerce
from app.platforms.shopify import Shopify
from app.platforms.standard import StandardWebhooks
from app.platforms.woocommerce import WooCommerce, is_ping
from app.runtime import Runtime
from app.web import metrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = structlog.get_logger(__name__)

ADAPTERS: dict[str, Adapter] = {
    "shopify": Shopify(),
    "woocommerce": WooCommerce(),
    "bigcommerce": BigCommerce(),
    "standard": StandardWebhooks(),
}
RETRY_AFTER_SECONDS = "5"


class Answer(NamedTuple):
    """A webhook's whole answer: a few bytes of JSON, written straight to WSGI because a
    werkzeug Response is a measurable share of a webhook's cost (docs/design.md, The webhook
    path)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response(
            f"{self.status} {HTTP_STATUS_CODES[self.status]}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(self.body))),
                *self.headers,
            ],
        )
        return [self.body]


def _answer(status: int, outcome: str, platform: str, detail: str | None = None) -> Answer:
    metrics.WEBHOOKS.labels(platform, outcome).inc()
    body = b'{"status":"' + outcome.encode() + b'"'
    if detail:
        # `detail` is our own wording from BadPayload, never echoed sender input.
        body += b',"error":"' + detail.replace('"', "'").encode() + b'"'
    headers = (("Retry-After", RETRY_AFTER_SECONDS),) if status == 503 else ()
    return Answer(status, body + b"}", headers)


# An oversized body is read and thrown away up to this many times the limit before the 413,
# so the sender is not reset mid-send; past it the answer goes out at once.
DISCARD_FACTOR = 4


def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past `limit` before more than `limit` bytes are held in
    memory, also for chunked requests that announce no Content-Length."""
    length = request.content_length
    stream = request.stream
    if length is not None:
        if length > limit:
            discard(stream, min(length, limit * DISCARD_FACTOR))
            raise RequestEntityTooLarge()
        return stream.read(length)
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            discard(stream, limit * (DISCARD_FACTOR - 1))
            raise RequestEntityTooLarge()


def discard(stream: IO[bytes], most: int) -> None:
    """Read and drop up to `most` bytes of what the sender is still sending. Answering 413
    with the body unread makes the server's close reset the connection under a client that
    is still writing, and it never sees the answer (http.client: BrokenPipeError)."""
    left = most
    try:
        while left > 0:
            chunk = stream.read(min(65536, left))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, ValueError):  # the sender gave up, or a malformed chunk
        return


def receive(rt: Runtime, request: Request, platform: str, hint: str | None = None) -> Answer:
    """The one path every platform's delivery takes."""
    adapter = ADAPTERS[platform]
    body = read_body(request, rt.settings.max_body_bytes)
    headers = request.headers
    if platform == "woocommerce" and is_ping(body, headers):
        return _answer(200, "ping", platform)
    store = adapter.resolve(rt.settings.stores, headers, hint)
    if store is None or not adapter.verify(store, body, headers):
        return _answer(401, "unauthorized", platform)
    now = time.time()
    try:
        result = adapter.parse(store, body, headers, now)
    except BadPayload as e:
        return _answer(400, "bad_request", platform, str(e))
    except NotOurs:
        return _answer(401, "unauthorized", platform)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        # A shape our parser did not foresee is still the sender's input, not our outage:
        # answer 400 (the fuzz tests look for these) and keep the trace for us.
        log.exception("unparseable_payload", platform=platform)
        return _answer(400, "bad_request", platform, "unexpected payload shape")
    try:
        if isinstance(result, Ignore):
            rt.state.ignore(store.id)
            return _answer(200, "ignored", platform)
        recorded = rt.state.record(result, now, keep_raw=bool(store.mapping.add))
    except TypeError:  # orjson.JSONEncodeError: nesting orjson.loads took but dumps refuses
        return _answer(400, "bad_request", platform, "payload nested too deeply")
    except redis.RedisError as e:
        log.warning("redis_unavailable", platform=platform, error=type(e).__name__)
        return _answer(503, "unavailable", platform)
    if recorded is Recorded.ACCEPTED_WAKE and rt.settings.wake_from_web:
        wake(rt, store.id, result.product_id)
    return _answer(200, recorded.name.lower(), platform)


def wake(rt: Runtime, store: str, pid: str) -> None:
    """Publish the Celery wake-up (WAKE_FROM_WEB); if that fails the sweeper wakes the key
    after the grace."""
    try:
        rt.waker.publish(store, pid)
    except Exception as e:  # noqa: BLE001 - the event is safe in Redis either way
        log.warning("wake_publish_failed", error=type(e).__name__)


class WebhookApp:
    """POST /<platform> or /<platform>/<store id> (mounted at /webhooks)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        platform = parts[0]
        if platform not in ADAPTERS or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
            resp = _answer(404, "not_found", "unknown", "no such webhook endpoint")
        elif environ.get("REQUEST_METHOD") != "POST":
            resp = _answer(405, "method_not_allowed", platform, "webhooks are POSTed")
            resp = resp._replace(headers=(("Allow", "POST"),))
        else:
            try:
                resp = receive(
                    self.rt, Request(environ), platform, parts[1] if len(parts) == 2 else None
                )
            except RequestEntityTooLarge:
                resp = _answer(
                    413,
                    "request_entity_too_large",
                    platform,
                    f"body over {self.rt.settings.max_body_bytes} bytes",
                )
        return resp(environ, start_response)
