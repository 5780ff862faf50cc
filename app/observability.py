"""What operators see: Sentry events (scrubbed before they leave the process), Sentry Crons
check-ins, and the scheduler's heartbeat in Redis that /metrics exports.

Events are sent for conditions a person must act on (a dead letter, a rejected API key, a
subscription that cannot be repaired, a crash), never per retry: retries are the service
working as designed and are visible in metrics. Each event carries the tags `store`,
`platform`, `account` and `error_type`, and a fingerprint of (kind, store, error type), so
ten thousand dead letters of one cause are one Sentry issue with ten thousand events."""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.logging_setup import scrub

if TYPE_CHECKING:
    import redis
    from sentry_sdk.types import Event, Hint, MonitorConfig

    from app.config import StoreConfig

_DROP_HEADERS = {
    "authorization",
    "x-shopify-hmac-sha256",
    "x-wc-webhook-signature",
    "webhook-signature",
    "svix-signature",
    "cookie",
    "x-auth-token",
    "x-shopify-access-token",
    "x-csrf-token",
}
# Platform variables that name the deployed commit, in order of preference (Heroku sets
# HEROKU_BUILD_COMMIT, formerly HEROKU_SLUG_COMMIT, with the dyno metadata feature; its
# builds and many CI systems set SOURCE_VERSION).
RELEASE_VARIABLES = (
    "SENTRY_RELEASE",
    "HEROKU_BUILD_COMMIT",
    "HEROKU_SLUG_COMMIT",
    "SOURCE_VERSION",
)
MAX_MESSAGE_DETAIL = 200
DISPATCHER_MONITOR = "personyze-sync-dispatcher"
DISPATCHER_CHECKIN_SECONDS = 60.0
HEARTBEAT_EVERY_SECONDS = 5.0


def before_send(event: Event, _hint: Hint) -> Event | None:
    """Never ship a request body (store payloads), a signature or a key to Sentry."""
    req = event.get("request")
    if isinstance(req, dict):
        req.pop("data", None)
        req.pop("cookies", None)
        headers = req.get("headers")
        if isinstance(headers, dict):
            req["headers"] = {
                k: ("[redacted]" if k.lower() in _DROP_HEADERS else v) for k, v in headers.items()
            }
    scrubbed: Event = scrub(event)
    return scrubbed


def release() -> str | None:
    """The deployed commit, from the first platform variable that names it."""
    for name in RELEASE_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


def init_sentry(settings: Settings, component: str) -> bool:
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    kwargs: dict[str, Any] = {}
    if release():
        kwargs["release"] = release()  # else the SDK's own guess (git)
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=before_send,
        integrations=[
            FlaskIntegration(),
            CeleryIntegration(monitor_beat_tasks=False),
            # Log records become breadcrumbs, not events: the Flask, Celery,
            # threading and excepthook integrations already report each crash
            # once, and the log filter (logging_setup) strips exc_info before
            # Sentry sees the record, so a logged crash came out as a second event.
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        **kwargs,
    )
    sentry_sdk.set_tag("component", component)
    return True


def active() -> bool:
    import sentry_sdk

    return sentry_sdk.get_client().is_active()


def store_platform(store: StoreConfig) -> str:
    """The platform(s) a store is configured for: a dead letter's pending state does not say
    which platform sent it, and one store is almost always one platform."""
    names = [
        name
        for name, on in (
            ("shopify", store.shopify_webhook_secrets or store.shopify_api),
            ("woocommerce", store.woocommerce_webhook_secrets or store.woocommerce_url),
            ("bigcommerce", store.bigcommerce_webhook_secrets or store.bigcommerce_api),
            ("standard", store.standard_webhook_secrets),
        )
        if on
    ]
    return "+".join(names) or "unknown"


def _detail(error: BaseException | str) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return first[:MAX_MESSAGE_DETAIL]


def report_failure(
    kind: str,
    message: str,
    *,
    store: StoreConfig,
    error_type: str,
    platform: str | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """One Sentry event for a condition a person must act on. Grouped by (kind, store,
    error type): the fingerprint, not the message, decides the Sentry issue."""
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("store", store.id)
        scope.set_tag("platform", platform or store_platform(store))
        scope.set_tag("account", store.personyze.id)
        scope.set_tag("error_type", error_type)
        scope.set_tag("failure", kind)
        scope.fingerprint = [kind, store.id, error_type]
        for name, value in (context or {}).items():
            scope.set_context(name, value)
        # before_send scrubs the whole event (message, contexts, breadcrumbs) on its way out
        sentry_sdk.capture_message(message, level="error")


def report_dead_letter(
    store: StoreConfig,
    product_id: str,
    error: BaseException,
    errors: list[dict[str, Any]],
    platform: str | None = None,
) -> None:
    """A product gave up on: its id and error history go in the event, the cause in the
    message (a store API failure reads differently from a Personyze rejection)."""
    error_type = type(error).__name__
    cause = (
        "the store API failed"
        if error_type == "StoreFetchError"
        else "the product could not be mapped"
        if error_type == "MappingError"
        else "Personyze refused it"
    )
    report_failure(
        "dead-letter",
        f"Dead letter in store {store.id}: {cause} ({error_type}: {_detail(error)})",
        store=store,
        error_type=error_type,
        platform=platform,
        context={"product": {"id": product_id, "attempts": len(errors), "errors": errors[-5:]}},
    )


def report_auth_failure(store: StoreConfig, paused_seconds: float) -> None:
    """The first 401 of a pause: every product of the account waits until the key is fixed."""
    report_failure(
        "personyze-auth",
        f"Personyze rejected the API key of store {store.id} (401); the account is paused",
        store=store,
        error_type="PersonyzeAuthError",
        context={"pause": {"seconds": paused_seconds}},
    )


def report_subscription_failure(
    store: StoreConfig, platform: str, error: str, error_type: str
) -> None:
    """A webhook subscription that could not be registered or repaired: the store stops
    telling us about changes until someone fixes it (called by the subscription keeper)."""
    report_failure(
        "subscription",
        f"Webhook subscription of store {store.id} on {platform} cannot be repaired "
        f"({_detail(error)})",
        store=store,
        error_type=error_type,
        platform=platform,
    )


# -- Sentry Crons -------------------------------------------------------------------------


def monitor_slug(name: str) -> str:
    """Sentry slugs: lowercase letters, digits, `-` and `_`, at most 50 characters."""
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:50]


def dispatcher_checkin() -> None:
    """Heartbeat monitor: an `ok` every minute; a missed one opens a Sentry issue. The
    monitor_config makes the SDK create (upsert) the monitor on first check-in."""
    from sentry_sdk.crons import capture_checkin

    capture_checkin(
        monitor_slug=DISPATCHER_MONITOR,
        status="ok",
        monitor_config={
            "schedule": {"type": "interval", "value": 1, "unit": "minute"},
            "checkin_margin": 2,
            "max_runtime": 1,
            "failure_issue_threshold": 2,
            "recovery_threshold": 1,
        },
    )


@contextmanager
def reconcile_monitor(store_id: str, interval_seconds: float) -> Iterator[None]:
    """in_progress when a reconciliation pass starts, ok or error when it ends (an exception
    passes through after the error check-in)."""
    if not active():
        yield
        return
    from sentry_sdk.crons import monitor

    minutes = max(1, round(interval_seconds / 60))
    config: MonitorConfig = {
        "schedule": {"type": "interval", "value": minutes, "unit": "minute"},
        "checkin_margin": max(5, minutes // 10),
        "max_runtime": max(30, minutes),
        "failure_issue_threshold": 1,
        "recovery_threshold": 1,
    }
    with monitor(
        monitor_slug=monitor_slug(f"personyze-sync-reconcile-{store_id}"), monitor_config=config
    ):
        yield


# -- the scheduler's heartbeat ------------------------------------------------------------


def heartbeat_key(prefix: str) -> str:
    return f"{prefix}:scheduler:heartbeat"


def last_heartbeat(r: redis.Redis, prefix: str) -> float | None:
    """When any scheduler last turned its loop (unix time), or None if none ever did."""
    raw = r.get(heartbeat_key(prefix))
    return float(raw) if raw else None


class SchedulerPulse:
    """Called on every turn of the dispatcher loop: writes the heartbeat that /metrics
    exports (alert: scheduler heartbeat stale) and checks in the Sentry monitor once a
    minute. Throttled, so it costs nothing on the loop's hot path."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r = r
        self.key = heartbeat_key(prefix)
        self.sentry = active()
        self._beat_at = self._checkin_at = -math.inf  # the first turn beats and checks in

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._beat_at >= HEARTBEAT_EVERY_SECONDS:
            self.r.set(self.key, f"{time.time():.3f}", ex=24 * 3600)
            self._beat_at = now
        if self.sentry and now - self._checkin_at >= DISPATCHER_CHECKIN_SECONDS:
            self._checkin_at = now
            dispatcher_checkin()
