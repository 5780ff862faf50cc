"""Sentry for real: the real sentry-sdk sends to a local envelope receiver (a real HTTP
server), from a real Celery worker, the real app and the real scheduler process."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading

import pytest
import sentry_sdk

from app import create_app, runtime
from app.observability import DISPATCHER_MONITOR, last_heartbeat, monitor_slug
from tests.constants import (
    SANDBOX_KEY,
    SENTRY_TEST_RELEASE,
    SHOPIFY_SECRET,
    SHOPIFY_SECRET_2,
    SHOPIFY_TOKEN,
    STANDARD_SECRET,
    WOO_CONSUMER_KEY,
    WOO_CONSUMER_SECRET,
    WOO_SECRET,
)
from tests.fake_shopify import gql_product
from tests.sentry_receiver import SentryReceiver
from tests.servers import CLI, ROOT, eventually, settings_env
from tests.support import shopify_product, woo_product

ADMIN = "admin-token-for-sentry-test-0123"


@pytest.fixture
def sync_settings(make_settings, sandbox, receiver):
    return make_settings(
        personyze_base_url=sandbox.url,
        sentry_dsn=receiver.dsn,
        sentry_environment="test-env",
        admin_token=ADMIN,
        max_attempts=3,
    )


def post(webhooks, pid: int, at: float = 1) -> dict[str, str]:
    """Deliver a product update; its headers (their signature must never reach Sentry)."""
    delivery = webhooks.shopify_delivery("products/update", shopify_product(pid=pid, at=at))
    assert webhooks.post(delivery).status_code == 200
    return delivery.headers


def secrets_of(headers_sent: list[dict[str, str]]) -> list[str]:
    basic = base64.b64encode(f"api:{SANDBOX_KEY}".encode()).decode()
    sigs = [h["X-Shopify-Hmac-Sha256"] for h in headers_sent]
    return [
        SANDBOX_KEY,
        basic,
        SHOPIFY_SECRET,
        SHOPIFY_SECRET_2,
        WOO_SECRET,
        STANDARD_SECRET,
        ADMIN,
        SHOPIFY_TOKEN,
        *sigs,
    ]


def assert_no_secret(receiver: SentryReceiver, secrets: list[str]) -> None:
    assert receiver.raw, "nothing reached the receiver"
    for raw in receiver.raw:
        for s in secrets:
            assert s.encode() not in raw, "a secret reached Sentry"


def by_failure(receiver: SentryReceiver, kind: str) -> list[dict]:
    return [e for e in receiver.events() if e.get("tags", {}).get("failure") == kind]


def test_dead_letters_are_one_event_each_tagged_and_grouped(
    rt, webhooks, sandbox, worker, dispatcher, receiver
):
    web = webhooks.to(rt.settings)
    sent = []
    sandbox.faults.update(error_400_rate=1.0)  # permanent: dead at the first attempt
    for pid in (1, 2, 3):
        sent.append(post(web, pid))
    eventually(lambda: rt.state.ledger("default")["dead"] == 3)
    sandbox.faults.update(error_400_rate=0.0, error_500_rate=1.0)  # retried, then dead
    sent.append(post(web, 4))
    eventually(lambda: rt.state.ledger("default")["dead"] == 4)
    assert sum(e.status == 500 for e in sandbox.request_log) == 3  # MAX_ATTEMPTS attempts
    sentry_sdk.flush(5)

    dead = by_failure(receiver, "dead-letter")
    assert sorted(e["contexts"]["product"]["id"] for e in dead) == ["1", "2", "3", "4"]
    assert len(receiver.events()) == 4  # nothing per retry, nothing else
    for e in dead:
        assert e["tags"]["store"] == "default"
        assert "shopify" in e["tags"]["platform"].split("+")  # configured platforms
        assert e["tags"]["account"] == rt.settings.stores["default"].personyze.id
        assert e["release"] == SENTRY_TEST_RELEASE and e["environment"] == "test-env"
        assert "Dead letter in store default" in e["message"]
        assert e["tags"]["error_type"] in e["message"]
    grouped = {tuple(e["fingerprint"]) for e in dead}
    assert grouped == {
        ("dead-letter", "default", "PersonyzeBadRequest"),
        ("dead-letter", "default", e_type(dead, "4")),
    }
    history = next(e for e in dead if e["contexts"]["product"]["id"] == "4")
    assert history["contexts"]["product"]["attempts"] == 3
    assert_no_secret(receiver, secrets_of(sent))


def e_type(events: list[dict], pid: str) -> str:
    return next(e["tags"]["error_type"] for e in events if e["contexts"]["product"]["id"] == pid)


@pytest.fixture
def bad_key_settings(make_settings, sandbox, receiver):
    return make_settings(
        personyze_base_url=sandbox.url,
        sentry_dsn=receiver.dsn,
        personyze_api_key="B" * 40,
        auth_pause_seconds=0.5,
        admin_token=ADMIN,
    )


def test_first_401_of_a_pause_is_one_tagged_event(bad_key_settings, webhooks, receiver, sandbox):
    from tests.servers import syncing

    rt = runtime.build(bad_key_settings)
    web = webhooks.to(rt.settings)
    sent = [post(web, pid) for pid in (10, 11, 12)]
    with syncing(rt, concurrency=2):
        eventually(lambda: sum(e.status == 401 for e in sandbox.request_log) >= 3)
    sentry_sdk.flush(5)
    auth = by_failure(receiver, "personyze-auth")
    assert len(auth) == 1
    tags = auth[0]["tags"]
    assert tags["store"] == "default" and tags["error_type"] == "PersonyzeAuthError"
    assert tags["account"] == rt.settings.stores["default"].personyze.id
    assert "extra" not in auth[0] or "store" not in auth[0]["extra"]
    assert rt.state.ledger("default")["pending"] == 3  # the events wait, nothing is lost
    assert_no_secret(
        receiver, [*secrets_of(sent), "B" * 40, base64.b64encode(b"api:" + b"B" * 40).decode()]
    )


def test_first_401_of_a_reconcile_listing_is_one_tagged_event(
    make_settings, sandbox, shop, receiver
):
    """A key revoked while a `--delete-missing` pass lists Personyze: the pass stops, the
    account pauses, and Sentry hears of it once, as it does from a worker."""
    from app.observability import init_sentry
    from app.personyze import PersonyzeAuthError
    from workers.reconcile import reconcile

    shop.products[1] = gql_product(1)
    settings = make_settings(
        personyze_base_url=sandbox.url,
        sentry_dsn=receiver.dsn,
        personyze_api_key="B" * 40,
        auth_pause_seconds=0.2,
        shopify_admin_token=SHOPIFY_TOKEN,
        shopify_admin_api_url=shop.url,
    )
    assert init_sentry(settings, "scheduler")
    rt = runtime.build(settings)
    for _ in range(2):  # the second pass meets the same pause: no second event
        with pytest.raises(PersonyzeAuthError):
            reconcile(rt, "default", delete_missing=True)
    sentry_sdk.flush(5)
    auth = by_failure(receiver, "personyze-auth")
    assert len(auth) == 1 and auth[0]["tags"]["store"] == "default"
    assert auth[0]["tags"]["error_type"] == "PersonyzeAuthError"
    assert_no_secret(
        receiver, ["B" * 40, base64.b64encode(b"api:" + b"B" * 40).decode(), SHOPIFY_TOKEN]
    )


def test_subscription_failure_report(make_settings, receiver):
    from app.observability import init_sentry, report_subscription_failure

    settings = make_settings(sentry_dsn=receiver.dsn)
    assert init_sentry(settings, "scheduler")
    store = settings.stores["default"]
    for _ in range(2):
        report_subscription_failure(
            store,
            "shopify",
            f"403 for token {SHOPIFY_TOKEN} Authorization: Bearer {SHOPIFY_SECRET}",
            "StoreFetchError",
        )
    sentry_sdk.flush(5)
    subs = by_failure(receiver, "subscription")
    assert len(subs) == 2 and {tuple(e["fingerprint"]) for e in subs} == {
        ("subscription", "default", "StoreFetchError")
    }
    assert subs[0]["tags"]["platform"] == "shopify"
    assert_no_secret(receiver, [SHOPIFY_SECRET])


def test_scheduler_process_checks_in_dispatcher_and_reconcile(shop, receiver, r, shop_settings):
    shop.products[1] = gql_product(1)
    settings = shop_settings(
        sentry_dsn=receiver.dsn,
        reconcile_interval_seconds=3600,
    )
    env = settings_env(settings)
    proc = subprocess.Popen(
        [CLI, "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        slug = monitor_slug("personyze-sync-reconcile-default")

        def seen():
            statuses = [(c["monitor_slug"], c["status"]) for c in receiver.checkins()]
            return (
                (DISPATCHER_MONITOR, "ok") in statuses
                and (slug, "in_progress") in statuses
                and (slug, "ok") in statuses
                and statuses
            )

        statuses = eventually(seen, timeout=30)
        assert eventually(lambda: last_heartbeat(r, settings.key_prefix))
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stderr.read().decode()[-2000:]
    checkins = receiver.checkins()
    disp = next(c for c in checkins if c["monitor_slug"] == DISPATCHER_MONITOR)
    assert disp["monitor_config"]["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}
    rec = [c for c in checkins if c["monitor_slug"] == slug]
    assert len({c["check_in_id"] for c in rec}) == 1  # in_progress and ok: one pass
    assert rec[0]["monitor_config"]["schedule"]["value"] == 60
    assert statuses.count((slug, "ok")) == 1
    assert_no_secret(receiver, [SANDBOX_KEY, SHOPIFY_TOKEN, SHOPIFY_SECRET])


def test_failed_reconcile_pass_checks_in_error(shop, receiver, shop_settings):
    from app.observability import init_sentry
    from workers.reconcile import run_periodic

    shop.version = "2019-01"  # every call answers 404: the pass fails
    settings = shop_settings(
        sentry_dsn=receiver.dsn,
        reconcile_interval_seconds=600,
    )
    assert init_sentry(settings, "scheduler")
    stop = threading.Event()
    t = threading.Thread(target=run_periodic, args=(runtime.build(settings), stop), daemon=True)
    t.start()
    slug = monitor_slug("personyze-sync-reconcile-default")
    try:
        eventually(
            lambda: (
                sentry_sdk.flush(1)
                or [
                    c
                    for c in receiver.checkins()
                    if c["monitor_slug"] == slug and c["status"] == "error"
                ]
            ),
            timeout=30,
        )
    finally:
        stop.set()
        t.join(10)
    statuses = [c["status"] for c in receiver.checkins() if c["monitor_slug"] == slug]
    assert statuses == ["in_progress", "error"]
    assert_no_secret(receiver, [SHOPIFY_TOKEN, SANDBOX_KEY])


def test_unexpected_exception_in_web_is_reported_without_the_bearer_token(make_settings, receiver):
    """The admin status with Redis gone: an unexpected exception (500), reported with the
    request, whose Authorization header and cookies never reach Sentry."""
    from app.core.redisconn import free_port

    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", sentry_dsn=receiver.dsn, admin_token=ADMIN
    )
    client = create_app(settings).test_client()
    client.set_cookie("psync_admin", "1.secret-cookie-value", path="/admin")
    resp = client.get("/admin/status", headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 500
    sentry_sdk.flush(5)
    events = receiver.events()
    (event,) = events
    assert event["tags"]["component"] == "web"
    assert event["exception"]["values"][-1]["type"] == "ConnectionError"
    assert event["request"]["url"].endswith("/admin/status")
    assert_no_secret(receiver, [ADMIN, "secret-cookie-value"])


def test_store_api_failure_that_dead_letters_names_the_store_api(
    make_settings, webhooks, sandbox, receiver
):
    """A WooCommerce variation whose parent the store API refuses to give (bad keys): one
    event, platform from the refresh itself, and neither API key in it."""
    from app.observability import init_sentry
    from tests.fake_stores import fake_woo
    from workers.sync import Syncer

    woo = fake_woo()
    try:
        settings = make_settings(
            personyze_base_url=sandbox.url,
            sentry_dsn=receiver.dsn,
            woocommerce_url=woo.url,
            woocommerce_consumer_key=WOO_CONSUMER_KEY,
            woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
        )
        rt = runtime.build(settings)
        site = webhooks.to(settings)
        variation = woo_product(pid=78, parent_id=77)
        assert site.woocommerce("product.updated", variation).status_code == 200
        assert init_sentry(settings, "worker")
        woo.status = 401
        assert Syncer(rt.settings, rt.state).run("default", "77") == "dead"
        sentry_sdk.flush(5)
    finally:
        woo.stop()
    (event,) = by_failure(receiver, "dead-letter")
    assert event["tags"]["platform"] == "woocommerce"
    assert event["tags"]["error_type"] == "StoreFetchError"
    assert "the store API failed" in event["message"]
    assert event["contexts"]["product"]["id"] == "77"
    assert_no_secret(receiver, [WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET, SANDBOX_KEY])
