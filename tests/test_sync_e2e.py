"""End to end: webhooks into the real app, real Celery workers, the dispatcher, the sandbox
over HTTP. The acceptance scenarios of the sync-workers issue."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app import create_app
from app.core.state import ledger_balance
from tests.servers import CeleryWorkers, eventually, settings_env
from tests.support import send, settled, shopify_product

PID = "632910392"


@pytest.fixture
def web(webhooks, rt):
    """Deliveries to an app on this test's runtime settings."""
    return webhooks.to(rt.settings)


def product_writes(sandbox):
    return [e for e in sandbox.request_log if e.method in ("POST", "DELETE") and e.status == 200]


def test_webhook_reaches_personyze(web, rt, sandbox, worker, dispatcher):
    send(web, shopify_product(at=1))
    eventually(lambda: sandbox.rows("products"))
    assert sandbox.rows("products")[0]["internal_id"] == PID
    led = eventually(lambda: settled(rt))
    assert led["written"] == 1 and ledger_balance(led) == 0
    text = create_app(rt.settings).test_client().get("/metrics").get_data(as_text=True)
    assert 'personyze_sync_personyze_calls_total{outcome="ok",store="default"} 1.0' in text
    assert 'personyze_sync_end_to_end_seconds_count{store="default"} 1.0' in text


@pytest.fixture
def sync_settings(make_settings, sandbox):
    return make_settings(personyze_base_url=sandbox.url, product_cooldown_seconds=1.0)


def test_burst_of_20_updates_is_at_most_2_writes(web, rt, sandbox, worker, dispatcher):
    for i in range(20):
        send(web, shopify_product(at=i, title=f"v{i}"))
    led = eventually(lambda: settled(rt))
    assert sandbox.rows("products")[0]["title"] == "v19"
    assert len(product_writes(sandbox)) <= 2
    assert led["received"] == 20 and ledger_balance(led) == 0


def test_duplicates_and_reordering_across_many_products(web, rt, sandbox, worker, dispatcher):
    rng = random.Random(7)
    deliveries = []
    for pid in range(1, 31):
        for v in range(3):
            deliveries.append((pid, v, f"e{pid}-{v}"))
    deliveries += rng.sample(deliveries, 30)  # redeliveries
    rng.shuffle(deliveries)
    for pid, v, eid in deliveries:
        send(web, shopify_product(pid=pid, at=v, title=f"p{pid}v{v}"), event_id=eid)
    led = eventually(lambda: settled(rt))
    rows = {r["internal_id"]: r for r in sandbox.rows("products")}
    assert set(rows) == {str(p) for p in range(1, 31)}
    assert all(rows[str(p)]["title"] == f"p{p}v2" for p in range(1, 31))
    assert led["duplicates"] == 30 and ledger_balance(led) == 0


def test_unchanged_content_makes_no_call(web, rt, sandbox, worker, dispatcher):
    send(web, shopify_product(at=1))
    eventually(lambda: settled(rt))
    send(web, shopify_product(at=2))
    eventually(lambda: rt.state.ledger("default")["skipped_unchanged"] == 1)
    led = eventually(lambda: settled(rt))
    assert len(product_writes(sandbox)) == 1 and ledger_balance(led) == 0


def test_faults_commit_then_drop_and_500s_converge(web, rt, sandbox, worker, dispatcher):
    sandbox.faults.update(drop_after_commit_rate=0.3, error_500_rate=0.2, seed=3)
    source = {}
    for v in range(3):
        for pid in range(1, 21):
            price = f"{10 + pid + v}.00"
            source[str(pid)] = price
            send(web, shopify_product(pid=pid, at=v, price=price))
    led = eventually(lambda: settled(rt), timeout=60)
    rows = sandbox.rows("products")
    ids = Counter(r["internal_id"] for r in rows)
    assert max(ids.values()) == 1  # internal_id is the key: no duplicates
    assert {r["internal_id"]: r["sale_price"] for r in rows} == source
    assert led["dead"] == 0 and ledger_balance(led) == 0
    assert any(e.status == 0 for e in sandbox.request_log)  # drops really happened
    assert any(e.status == 500 for e in sandbox.request_log)


@pytest.mark.parametrize("header", [True, False])
def test_503_retry_after_2_pauses_every_worker(web, rt, sandbox, worker, dispatcher, header):
    sandbox.faults.update(error_503_rate=1.0, retry_after_503=2, retry_after_header=header)
    for pid in range(1, 11):
        send(web, shopify_product(pid=pid, at=1))
    first = eventually(lambda: [e for e in sandbox.request_log if e.status == 503])[0]
    sandbox.faults.update(error_503_rate=0.0)
    eventually(lambda: settled(rt), timeout=30)
    later = [e for e in sandbox.request_log if e.time > first.time]
    # Requests already in flight when the 503 came (the worker's other 3 threads) may still
    # land, later on a loaded machine; nothing else may reach the sandbox until the two seconds
    # are over. Without the account's pause the other products would all go out at once (the
    # test's limit is 1000/s), so this bound still tells the two apart.
    during = [e for e in later if e.time < first.time + 1.95]
    assert len(during) <= 3, during
    assert len(sandbox.rows("products")) == 10


def test_rate_limit_shared_by_four_worker_processes(
    make_settings, sandbox, dispatcher_factory, webhooks
):
    rate = 20
    # Configured 5% under the account's limit, as the README advises: request timing jitter
    # between taking a token and reaching Personyze would otherwise cost a 503 pause.
    settings = make_settings(personyze_base_url=sandbox.url, personyze_rate_limit=rate * 0.95)
    sandbox.faults.update(rate_limit=rate)
    from app import runtime

    rt = runtime.build(settings)
    web = webhooks.to(settings)
    workers = CeleryWorkers(settings_env(settings), concurrency=4)
    stop = dispatcher_factory(rt)
    try:
        n = 120
        for pid in range(1, n + 1):
            send(web, shopify_product(pid=pid, at=1))
        eventually(lambda: settled(rt), timeout=60)
    finally:
        stop()
        workers.stop()
    assert sum(e.status == 200 for e in sandbox.request_log) == n
    # The sandbox refuses what passes its limit with a 503, so sharing shows in the 503s:
    # four processes pacing on their own would send four times the rate and collect dozens.
    # One or two may come from timing jitter at the edge of a second (we run at 0.95 R).
    rejected = sum(e.status == 503 for e in sandbox.request_log)
    assert rejected <= 2, rejected
    # How close to the limit they get is a throughput figure, measured by `python -m
    # bench.sync` (ii), not asserted: a test must not fail on a loaded machine's timing.


def test_sigkill_mid_call_then_another_worker_finishes(
    make_settings, sandbox, dispatcher_factory, webhooks
):
    settings = make_settings(
        personyze_base_url=sandbox.url, lease_seconds=2.0, task_time_limit_seconds=1.9
    )
    from app import runtime

    rt = runtime.build(settings)
    web = webhooks.to(settings)
    sandbox.faults.update(latency_ms=1500)
    stop = dispatcher_factory(rt)
    workers = CeleryWorkers(settings_env(settings), concurrency=2)
    try:
        send(web, shopify_product(at=1, title="survives"))
        eventually(lambda: sandbox.request_log)  # the call is in flight
        workers.kill()
        sandbox.faults.update(latency_ms=0)
        workers = CeleryWorkers(settings_env(settings), concurrency=2)
        led = eventually(lambda: settled(rt), timeout=30)
        assert sandbox.rows("products")[0]["title"] == "survives"
        assert ledger_balance(led) == 0 and led["written"] == 1
    finally:
        stop()
        workers.stop()


def test_all_workers_killed_and_queue_purged_sweeper_finishes(
    make_settings, sandbox, dispatcher_factory, r, webhooks
):
    settings = make_settings(personyze_base_url=sandbox.url, wake_grace_seconds=1.0)
    from app import runtime

    rt = runtime.build(settings)
    web = webhooks.to(settings)
    stop = dispatcher_factory(rt)
    workers = CeleryWorkers(settings_env(settings), concurrency=2)
    try:
        workers.kill()
        for pid in range(1, 41):
            send(web, shopify_product(pid=pid, at=1))
        eventually(lambda: r.llen(settings.sync_queue) > 0)
        r.delete(settings.sync_queue)  # every wake-up message lost
        workers = CeleryWorkers(settings_env(settings), concurrency=2)
        led = eventually(lambda: settled(rt), timeout=40)
        assert len(sandbox.rows("products")) == 40
        assert led["written"] == 40 and ledger_balance(led) == 0
    finally:
        stop()
        workers.stop()


def test_wake_from_web_mode(make_settings, sandbox, webhooks):
    """WAKE_FROM_WEB: the web process publishes the wake-up itself; no dispatcher needed."""
    from app import runtime
    from tests.servers import syncing

    settings = make_settings(personyze_base_url=sandbox.url, wake_from_web=True)
    rt = runtime.build(settings)
    web = webhooks.to(settings)
    with syncing(rt, concurrency=2, dispatcher=False):
        assert send(web, shopify_product(at=1)) == "accepted_wake"
        led = eventually(lambda: settled(rt))
    assert led["written"] == 1 and sandbox.rows("products")[0]["internal_id"] == PID
