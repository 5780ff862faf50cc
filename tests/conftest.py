"""Shared fixtures: a real Redis the session starts itself (or `TEST_REDIS_URL`), isolated per
test by a key prefix and a Celery queue of its own."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from app.config import Settings, load_settings
from tests.constants import (
    BC_CLIENT_SECRET,
    BC_HASH,
    BC_TOKEN,
    SANDBOX_KEY,
    SENTRY_TEST_RELEASE,
    SHOP,
    SHOPIFY_SECRET,
    SHOPIFY_SECRET_2,
    SHOPIFY_TOKEN,
    STANDARD_SECRET,
    WOO_CONSUMER_KEY,
    WOO_CONSUMER_SECRET,
    WOO_SECRET,
    WOO_URL,
)
from tests.redis_server import start_redis
from tests.servers import ambient, dispatching, working
from tests.webhooks import Webhooks


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    url, server = start_redis(tmp_path_factory.mktemp("redis"))
    if server is not None:
        redis.Redis.from_url(url).flushdb()  # only ever a server this session started
    yield url
    if server is not None:
        server.stop()


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch) -> None:
    """Settings come from the test, never from the shell that runs it (tests/servers.py)."""
    for name in list(os.environ):
        if ambient(name):
            monkeypatch.delenv(name)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """The test's own key prefix and Celery queue (`<prefix>-sync`), deleted afterwards."""
    p = f"t{uuid.uuid4().hex[:10]}"
    yield p
    r = redis.Redis.from_url(redis_url)
    for pattern in (f"{p}:*", f"{p}-sync*", f"_kombu.binding*.{p}-sync*"):
        for key in r.scan_iter(pattern, count=1000):
            r.delete(key)


@pytest.fixture
def make_settings(redis_url: str, prefix: str):
    def make(**overrides) -> Settings:
        env = {
            "redis_url": redis_url,
            "key_prefix": prefix,
            "sync_queue": f"{prefix}-sync",
            "shopify_webhook_secret": f"{SHOPIFY_SECRET},{SHOPIFY_SECRET_2}",
            "shopify_shop_domain": SHOP,
            "woocommerce_webhook_secret": WOO_SECRET,
            "woocommerce_url": WOO_URL,
            "standard_webhook_secret": STANDARD_SECRET,
            "personyze_api_key": SANDBOX_KEY,
            "personyze_base_url": "http://127.0.0.1:9/rest",
            "personyze_rate_limit": 1000,
            "backoff_base_seconds": 0.05,
            "backoff_max_seconds": 0.5,
            "wake_grace_seconds": 2.0,
            "lease_seconds": 5.0,
            "task_time_limit_seconds": 4.0,
            "product_cooldown_seconds": 0.0,
        }
        env.update(overrides)
        return load_settings(**env)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def app(settings):
    """The real Flask app on this test's settings (ingestion tests)."""
    from app import create_app

    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def state(app):
    return app.extensions["personyze_sync"].state


@pytest.fixture
def webhooks(client) -> Webhooks:
    """Signs and posts deliveries as each platform sends them (tests/webhooks.py): to this
    test's app (`client`) unless retargeted, as in `webhooks.to(rt.settings)` or
    `webhooks.to(server.url)`."""
    return Webhooks(client)


# -- the sync side: sandbox, runtime, real Celery workers, the dispatcher --------------------


@pytest.fixture
def sandbox():
    from sandbox import Sandbox

    sb = Sandbox(api_key=SANDBOX_KEY, port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def sync_settings(make_settings, sandbox):
    """Settings pointed at the sandbox; tests override with make_settings when needed."""
    return make_settings(personyze_base_url=sandbox.url)


@pytest.fixture
def rt(sync_settings):
    from app import runtime

    return runtime.build(sync_settings)


@pytest.fixture
def celery_app(rt):
    from workers.celery_app import make_celery

    return make_celery(rt)


@pytest.fixture
def worker(celery_app):
    """A real Celery worker (threads pool) consuming this test's own queue."""
    with working(celery_app) as w:
        yield w


@pytest.fixture
def dispatcher(rt):
    """The scheduler's dispatcher loop for this test's runtime, in a thread."""
    with dispatching(rt) as d:
        yield d


@pytest.fixture
def dispatcher_factory():
    """Start a dispatcher (the scheduler process's loop) for a given runtime, in a thread;
    the returned function stops it (and the fixture stops any still running)."""
    with contextlib.ExitStack() as running:

        def start(rt):
            stack = running.enter_context(contextlib.ExitStack())
            stack.enter_context(dispatching(rt))
            return stack.close

        yield start


@pytest.fixture
def shop():
    """A fake Shopify GraphQL Admin API (tests/fake_shopify.py), real HTTP."""
    from tests.fake_shopify import FakeShopify

    s = FakeShopify()
    yield s
    s.stop()


@pytest.fixture
def shop_settings(make_settings, sandbox, shop):
    """Settings whose store reads Shopify's Admin API (the fake) and writes to the sandbox;
    keyword arguments override or add settings."""

    def make(**overrides):
        return make_settings(
            **{
                "personyze_base_url": sandbox.url,
                "shopify_admin_token": SHOPIFY_TOKEN,
                "shopify_admin_api_url": shop.url,
                **overrides,
            }
        )

    return make


@pytest.fixture
def shop_rt(shop_settings):
    """A runtime on `shop_settings`."""
    from app import runtime

    return runtime.build(shop_settings())


@pytest.fixture
def woo():
    """A fake WooCommerce REST API (tests/fake_stores.py), real HTTP."""
    from tests.fake_stores import fake_woo

    w = fake_woo()
    yield w
    w.stop()


@pytest.fixture
def woo_rt(make_settings, sandbox, woo):
    """A runtime whose store reads WooCommerce's REST API (the fake) and writes to the sandbox."""
    from app import runtime

    return runtime.build(
        make_settings(
            personyze_base_url=sandbox.url,
            woocommerce_url=woo.url,
            woocommerce_consumer_key=WOO_CONSUMER_KEY,
            woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
        )
    )


@pytest.fixture
def bc():
    """A fake BigCommerce catalog API (tests/fake_stores.py), real HTTP."""
    from tests.fake_stores import fake_bigcommerce

    b = fake_bigcommerce()
    yield b
    b.stop()


@pytest.fixture
def bc_rt(make_settings, sandbox, bc):
    """Builds a runtime whose store reads BigCommerce's catalog API (the fake) and writes to
    the sandbox; keyword arguments are further settings."""
    from app import runtime

    def build(**extra):
        return runtime.build(
            make_settings(
                personyze_base_url=sandbox.url,
                bigcommerce_store_hash=BC_HASH,
                bigcommerce_access_token=BC_TOKEN,
                bigcommerce_client_secret=BC_CLIENT_SECRET,
                bigcommerce_api_url=bc.url,
                **extra,
            )
        )

    return build


@pytest.fixture
def receiver(monkeypatch):
    """A local Sentry envelope receiver (tests/sentry_receiver.py): point SENTRY_DSN at
    `receiver.dsn` and the real sentry-sdk sends it what it would send to Sentry."""
    import sentry_sdk

    from tests.sentry_receiver import SentryReceiver

    monkeypatch.setenv("SENTRY_RELEASE", SENTRY_TEST_RELEASE)
    rec = SentryReceiver()
    yield rec
    sentry_sdk.flush(5)
    sentry_sdk.init()  # no DSN: later tests in this process send nothing
    rec.stop()
