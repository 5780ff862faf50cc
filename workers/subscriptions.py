"""Keeps the stores connected: the scheduler re-checks every store's webhook subscriptions
every SUBSCRIPTION_CHECK_SECONDS and repairs them the way `personyze-sync connect` does
(docs/design.md, "Store subscriptions").

Platforms turn subscriptions off quietly (WooCommerce after 5 failed deliveries in a row,
BigCommerce after 48 h of retries or 90 quiet days, Shopify deletes them after 4 h of
failures), so after an outage the service could stop hearing from a store for good. One
scheduler per interval does the check (a Redis lock that lasts the interval, as for
reconciliation); each repair is logged and counted in Redis, so /metrics of any web process
shows it; what cannot be repaired goes to Sentry."""

from __future__ import annotations

import threading

import structlog

from app.observability import report_subscription_failure
from app.platforms.subscriptions import Outcome, connect_store, describe
from app.runtime import Runtime
from workers.periodic import every_interval

log = structlog.get_logger(__name__)


def url_key(rt: Runtime) -> str:
    return f"{rt.settings.key_prefix}:public-url"


def record_public_url(rt: Runtime, url: str) -> None:
    """What `connect` used, so the scheduler can keep it connected without PUBLIC_URL."""
    rt.redis.set(url_key(rt), url)


def public_url(rt: Runtime) -> str | None:
    """PUBLIC_URL, else the URL `connect` recorded, else None (nothing to keep yet)."""
    if rt.settings.public_url:
        return rt.settings.public_url
    raw = rt.redis.get(url_key(rt))
    if isinstance(raw, bytes):
        return raw.decode() or None
    return raw or None


def check_store(rt: Runtime, store_id: str, url: str) -> list[Outcome]:
    """One pass over one store: repair, log, count, and report what could not be repaired."""
    store = rt.settings.stores[store_id]
    outcomes = connect_store(rt.settings, store, url)
    for o in outcomes:
        if o.problem:  # credentials not configured: managed by hand, not an incident
            log.info(
                "subscriptions_not_managed", store=store_id, platform=o.platform, reason=o.problem
            )
            continue
        if o.error:
            log.error(
                "subscription_check_failed", store=store_id, platform=o.platform, error=o.error
            )
            report_subscription_failure(store, o.platform, o.error, "StoreFetchError")
            continue
        assert o.plan is not None
        fixed = len(o.plan.create) + len(o.plan.enable)
        if fixed:
            rt.state.note_repairs(store_id, o.platform, fixed)
            log.warning(
                "subscriptions_repaired",
                store=store_id,
                platform=o.platform,
                url=o.url,
                detail=describe(o.plan, check_only=False),
            )
        if o.plan.held:
            topics = ", ".join(sub.topic for sub in o.plan.held)
            report_subscription_failure(
                store, o.platform, f"paused by a store admin: {topics}", "SubscriptionPaused"
            )
        if not fixed and not o.plan.held:
            log.info("subscriptions_healthy", store=store_id, platform=o.platform)
    return outcomes


def run_periodic(rt: Runtime, stop: threading.Event) -> None:
    """The scheduler's loop: once a public URL is known, every SUBSCRIPTION_CHECK_SECONDS per
    store, taken by one scheduler only."""

    url: str | None = None

    def stores() -> list[str]:
        nonlocal url
        url = public_url(rt)  # read each turn: `connect --url` may have recorded a new one
        return list(rt.settings.stores) if url else []

    every_interval(
        rt,
        stop,
        "subscriptions",
        rt.settings.subscription_check_seconds,
        stores,
        lambda sid: check_store(rt, sid, url or ""),
    )
