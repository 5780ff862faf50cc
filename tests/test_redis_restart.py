"""Issue 8.11: a Redis restart is a blip, not an outage.

A real `redis-server --appendonly yes` is stopped and started again on the same port and
data directory while signed webhooks flow into real gunicorn, with a real `celery worker`
process (as the Procfile runs it) and a real scheduler process (`personyze-sync scheduler`).
While Redis is down the web answers 503 (the sender retries, as Shopify and BigCommerce do);
after, 200. No process is restarted by hand: every accepted webhook reaches the sandbox and
the ledger balances."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from app import runtime
from app.core.state import ledger_balance
from tests.redis_server import OwnRedis
from tests.servers import CeleryWorkers, Gunicorn, Process, bin_path, eventually, settings_env
from tests.support import settled, shopify_product

RESTARTS = 3
pytestmark = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="needs the redis-server binary"
)


def aof_redis(directory: Path) -> OwnRedis:
    """redis-server with the append-only file on, restartable on the same port and data."""
    return OwnRedis(directory, "--appendonly", "yes", "--appendfsync", "always")


def test_redis_restart_under_load(tmp_path, make_settings, webhooks, sandbox):
    server = aof_redis(tmp_path / "aof")
    settings = make_settings(
        redis_url=server.url, personyze_base_url=sandbox.url, wake_grace_seconds=1.0
    )
    rt = runtime.build(settings)
    env = settings_env(settings)
    worker = CeleryWorkers(env, concurrency=2, loglevel="INFO", log=tmp_path / "worker.log")
    scheduler = Process([bin_path("personyze-sync"), "scheduler"], env, tmp_path / "scheduler.log")
    web = Gunicorn(env, workers=2, threads=1)
    served = webhooks.to(web.url)
    answers: Counter[int] = Counter()
    accepted: dict[int, str] = {}  # product -> the title of its last accepted update
    stop, quiet = threading.Event(), threading.Event()
    sending = threading.Lock()  # held by the sender while it sends

    def send() -> None:
        """Like Shopify: a delivery answered other than 2xx is sent again."""
        n = 0
        while not stop.is_set():
            if quiet.is_set():
                time.sleep(0.05)
                continue
            sending.acquire()
            n += 1
            pid, title = 1000 + n % 25, f"v{n}"
            delivery = served.shopify_delivery(
                "products/update", shopify_product(pid=pid, at=n, title=title)
            )
            while True:
                try:
                    status = served.post(delivery).status_code
                except requests.RequestException:
                    status = 0
                answers[status] += 1
                if status == 200:
                    accepted[pid] = title
                    break
                time.sleep(0.1)
            sending.release()
            time.sleep(0.01)

    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        eventually(lambda: len(sandbox.rows("products")) >= 5, timeout=30)
        for restart in range(RESTARTS):  # the crash it guards against was a race: repeat
            # The case that made kombu's reconnect crash the worker: a task in flight (its
            # message unacknowledged) while the consumer waits in BRPOP for more, when Redis
            # goes away. So: quiet, then one slow Personyze call under way.
            quiet.set()
            eventually(lambda: sending.acquire(blocking=False))
            eventually(lambda: settled(rt), timeout=30)
            sandbox.faults.update(latency_ms=3000)
            posts = len(sandbox.request_log)
            pid, title = 990 + restart, f"in flight {restart}"
            resp = served.shopify("products/update", shopify_product(pid=pid, at=1, title=title))
            assert resp.status_code == 200, (restart, resp.status_code, resp.text)
            accepted[pid] = title
            eventually(lambda n=posts: len(sandbox.request_log) > n)  # the call is under way
            sending.release()
            quiet.clear()
            server.stop()
            unavailable = answers[503]
            eventually(lambda n=unavailable: answers[503] >= n + 3, timeout=30)  # "retry later"
            time.sleep(3)  # down for a while: the worker and the scheduler see it
            server.start()
            sandbox.faults.update(latency_ms=0)
            before = answers[200]
            eventually(lambda n=before: answers[200] >= n + 50, timeout=60)
            assert worker.alive(), worker.tail()
            assert scheduler.alive(), scheduler.tail()
        stop.set()
        sender.join(30)

        def synced():
            rows = {int(r["internal_id"]): r["title"] for r in sandbox.rows("products")}
            return all(rows.get(pid) == title for pid, title in accepted.items())

        eventually(synced, timeout=90, interval=0.5)
        eventually(lambda: settled(rt), timeout=30)
        led = rt.state.ledger("default")
        assert ledger_balance(led) == 0, led
        assert set(answers) <= {200, 503}, answers
        assert worker.alive(), worker.tail()
        assert scheduler.alive(), scheduler.tail()
    finally:
        stop.set()
        web.stop()
        worker.stop()
        scheduler.stop()
        server.stop()
