"""Shared fixtures: a real Redis (the machine's, else an embedded one), isolated per test by a
key prefix and a Celery queue of its own, in a database the test session flushes first."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.config import Settings, load_settings
from app.core import redisconn

TEST_DB = int(os.environ.get("PERSONYZE_SYNC_TEST_DB", "9"))
SHOPIFY_SECRET = "shpss_test_secret_one"
SHOPIFY_SECRET_2 = "shpss_test_secret_two"
WOO_SECRET = "woo-test-secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SHOP = "test-shop.myshopify.com"
WOO_URL = "https://woo.example.com"
SANDBOX_KEY = "TESTKEY" + "0" * 33


def _base_url() -> tuple[str, redisconn.EmbeddedRedis | None]:
    """REDIS_URL if set and answering, else the local default, else an embedded server."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if redisconn.answers(url):
        return url, None
    embedded = redisconn.EmbeddedRedis(Path(os.environ.get("TMPDIR", "/tmp")) / "psync-test-redis")
    return embedded.url, embedded


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    base, embedded = _base_url()
    url = base.rsplit("/", 1)[0] + f"/{TEST_DB}"
    redis.Redis.from_url(url).flushdb()
    yield url
    if embedded:
        embedded.stop()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = f"t{uuid.uuid4().hex[:10]}"
    yield p
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter(f"{p}:*", count=1000):
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
    from celery.contrib.testing.worker import start_worker

    with start_worker(celery_app, pool="threads", concurrency=4, perform_ping_check=False,
                      shutdown_timeout=15, loglevel="WARNING") as w:
        yield w


@pytest.fixture
def dispatcher(rt, celery_app):
    import threading

    from workers.dispatch import Dispatcher

    d = Dispatcher(rt, celery_app)
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    yield d
    d.stop()
    t.join(5)


@pytest.fixture
def dispatcher_factory():
    """Start a dispatcher (the scheduler process's loop) for a given runtime, in a thread."""
    import threading

    from workers.celery_app import make_celery
    from workers.dispatch import Dispatcher

    stops = []

    def start(rt):
        d = Dispatcher(rt, make_celery(rt))
        t = threading.Thread(target=d.run, daemon=True)
        t.start()

        def stop():
            d.stop()
            t.join(5)

        stops.append(stop)
        return stop

    yield start
    for s in stops:
        s()
