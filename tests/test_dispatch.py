"""The scheduler's dispatcher/sweeper and the Celery configuration."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from app import runtime
from tests.support import shopify_product
from workers.celery_app import make_celery
from workers.dispatch import Dispatcher


def test_two_schedulers_wake_each_key_once(make_settings, r, webhooks):
    settings = make_settings(
        wake_grace_seconds=30, personyze_rate_limit=10_000, wake_queue_max=1000
    )
    rt = runtime.build(settings)
    hooks = webhooks.to(settings)
    for pid in range(1, 201):
        hooks.shopify("products/update", shopify_product(pid=pid))
    a, b = Dispatcher(rt), Dispatcher(rt)
    barrier = threading.Barrier(2)

    def spin(d):
        barrier.wait()
        end = time.time() + 3
        while time.time() < end and a.woken + b.woken < 200:
            d.tick()
        for _ in range(5):  # and a few more: nothing may be handed out twice
            d.tick()

    threads = [threading.Thread(target=spin, args=(d,)) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.woken + b.woken == 200
    assert a.woken > 0 and b.woken > 0
    assert r.llen(settings.sync_queue) == 200  # one Celery message per key


def test_dispatcher_wakes_only_what_the_rate_limit_admits(make_settings, r, webhooks):
    settings = make_settings(personyze_rate_limit=2)
    rt = runtime.build(settings)
    hooks = webhooks.to(settings)
    for pid in range(1, 51):
        hooks.shopify("products/update", shopify_product(pid=pid))
    d = Dispatcher(rt)
    d.tick()
    assert 1 <= d.woken <= 2
    assert rt.state.due_count("default") == 50  # everything is still due, nothing lost


def test_lost_wake_up_is_woken_again_after_the_grace(make_settings, r, webhooks):
    settings = make_settings(wake_grace_seconds=0.2)
    rt = runtime.build(settings)
    hooks = webhooks.to(settings)
    hooks.shopify("products/update", shopify_product(pid=1))
    d = Dispatcher(rt)
    d.tick()
    r.delete(settings.sync_queue)  # the message is lost
    time.sleep(0.25)
    d.tick()
    assert d.woken == 2 and r.llen(settings.sync_queue) == 1


def test_celery_is_configured_for_loss_tolerance(make_settings):
    app = make_celery(runtime.build(make_settings()))
    c = app.conf
    assert c.task_acks_late and c.task_reject_on_worker_lost
    assert c.worker_prefetch_multiplier == 1
    assert c.accept_content == ["json"] and c.task_serializer == "json"
    assert c.broker_transport_options["visibility_timeout"] > c.task_time_limit
    assert c.worker_soft_shutdown_timeout < 30


def test_rediss_broker_gets_ssl_cert_reqs(make_settings):
    import ssl

    settings = make_settings(broker_url="rediss://:pw@redis.example.com:6380/0")
    app = make_celery(runtime.build(settings))
    assert app.conf.broker_use_ssl == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_check_hostname": True,
    }
    settings = make_settings(
        broker_url="rediss://:pw@redis.example.com:6380/0", redis_tls_verify=False
    )
    rt = runtime.build(settings)
    app = make_celery(rt)
    assert app.conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_check_hostname": False}
    # the publishers (web, dispatcher) connect to the broker as the worker does
    assert rt.waker.celery.conf.broker_use_ssl == app.conf.broker_use_ssl
    assert rt.waker.celery.conf.broker_transport == app.conf.broker_transport


def test_the_worker_app_reads_no_settings_until_celery_needs_them(tmp_path):
    """`celery -A workers.celery_app:celery` imports the module; tests and tools import it
    too: that alone builds no runtime (no settings read, no Redis started or dialled)."""
    import subprocess
    import sys

    code = (
        "import workers.celery_app as m\n"
        "assert not m.celery.configured and m.celery._runtime is None\n"
        "from app import runtime\n"
        "assert runtime._embedded is None\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0
    assert not (tmp_path / "var").exists()


def test_worker_heartbeat_file_for_liveness(make_settings, tmp_path):
    from tests.servers import CeleryWorkers, eventually, settings_env

    beat = tmp_path / "heartbeat"
    env = dict(settings_env(make_settings()), WORKER_HEARTBEAT_FILE=str(beat))
    workers = CeleryWorkers(env, concurrency=1)
    try:
        eventually(beat.exists, timeout=30)
    finally:
        workers.stop()
    assert not beat.exists()  # a stopped worker is not reported alive


def test_wake_from_web_leaves_a_cooling_product_to_the_dispatcher(make_settings, r, webhooks):
    """WAKE_FROM_WEB publishes only what is due now: a product written within its cooldown
    waits in `due`, so the dispatcher wakes it once, when the cooldown ends."""
    settings = make_settings(wake_from_web=True, product_cooldown_seconds=30)
    rt = runtime.build(settings)
    hooks = webhooks.to(settings)
    assert hooks.shopify("products/update", shopify_product(pid=1, at=1)).status == (
        "accepted_wake"
    )
    assert r.llen(settings.sync_queue) == 1  # published by the web process
    claim = rt.state.claim("default", "1", "worker-1", 5)
    assert not isinstance(claim, str)
    rt.state.complete("default", "1", claim, "ab" * 16, "written")  # the cooldown starts
    r.delete(settings.sync_queue)

    assert hooks.shopify("products/update", shopify_product(pid=1, at=2)).status == "accepted"
    assert r.llen(settings.sync_queue) == 0  # nothing published for a cooling product
    product = rt.state.product("default", "1")
    assert product.woken_at is None and product.due_at is not None
    assert product.due_at >= time.time() + 20  # due when the cooldown ends
