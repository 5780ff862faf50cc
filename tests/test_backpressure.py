"""Backpressure and memory (issue 9): the broker's queue stays bounded while a backlog drains,
lost wake-ups are still recovered, and Redis keeps per product a small record that does not
grow with deliveries. Real Redis, real Celery workers, the sandbox over HTTP."""

from __future__ import annotations

import time

import pytest

from app import runtime
from app.core.state import ledger_balance
from tests.servers import eventually, peak, syncing
from tests.support import send, settled, shopify_product
from workers.dispatch import Dispatcher

PID = "632910392"


def test_backlog_larger_than_the_workers_keeps_the_queue_bounded(
    make_settings, sandbox, r, webhooks
):
    """Personyze slow, the limit generous: the workers are the bottleneck. The queue never
    holds more than WAKE_QUEUE_MAX messages, and every product is written with about one
    message each (before the fix the dispatcher published by tokens and re-woke every key
    still queued after the grace: thousands of messages for a backlog of hundreds)."""
    cap, n = 8, 150
    settings = make_settings(
        personyze_base_url=sandbox.url,
        personyze_rate_limit=1000,
        wake_queue_max=cap,
        wake_grace_seconds=1.0,
    )
    sandbox.faults.update(latency_ms=20)
    rt = runtime.build(settings)
    web = webhooks.to(settings)
    for pid in range(1, n + 1):
        send(web, shopify_product(pid=pid, at=1))
    with peak(lambda: r.llen(settings.sync_queue)) as queued, syncing(rt) as d:
        led = eventually(lambda: settled(rt), timeout=120)
    assert len(sandbox.rows("products")) == n
    assert led["written"] == n and ledger_balance(led) == 0
    assert 0 < queued[0] <= cap
    # a few extra wake-ups are allowed (a wake-up held in a worker's prefetch past the grace)
    assert d.woken <= 1.2 * n, d.woken
    assert r.llen(settings.sync_queue) == 0 and rt.state.woken_count("default") == 0


def test_queued_wake_up_is_not_woken_again_but_a_lost_one_is(make_settings, r, webhooks):
    settings = make_settings(wake_grace_seconds=0.2)
    rt = runtime.build(settings)
    web = webhooks.to(settings)
    send(web, shopify_product(pid=1))
    d = Dispatcher(rt)
    d.tick()
    assert d.woken == 1 and r.llen(settings.sync_queue) == 1
    time.sleep(0.3)  # past the grace, but the message is still in the queue: no second one
    d.tick()
    assert d.woken == 1 and r.llen(settings.sync_queue) == 1
    r.delete(settings.sync_queue)  # now it is lost (a broker restart, say)
    d.tick()
    assert d.woken == 2 and r.llen(settings.sync_queue) == 1


def test_new_version_of_a_queued_key_is_not_woken_twice(make_settings, r, webhooks):
    settings = make_settings()
    rt = runtime.build(settings)
    web = webhooks.to(settings)
    send(web, shopify_product(pid=1, at=1))
    d = Dispatcher(rt)
    d.tick()
    assert send(web, shopify_product(pid=1, at=2)) == "accepted"  # the queued message covers it
    d.tick()
    assert d.woken == 1 and r.llen(settings.sync_queue) == 1


@pytest.mark.parametrize("how", ["paused", "low limit"])
def test_paused_or_slow_account_does_not_fill_the_queue(make_settings, r, how, webhooks):
    """No worker drains the queue: a paused account publishes nothing, a slow one no more
    than WAKE_QUEUE_MAX however often the dispatcher looks."""
    settings = make_settings(personyze_rate_limit=1000 if how == "paused" else 2, wake_queue_max=5)
    rt = runtime.build(settings)
    web = webhooks.to(settings)
    for pid in range(1, 101):
        send(web, shopify_product(pid=pid))
    d = Dispatcher(rt)
    if how == "paused":
        d.limiters["default"].unavailable(30, 1, 60)
    for _ in range(20):
        d.tick()
    assert r.llen(settings.sync_queue) == (0 if how == "paused" else 5)
    assert rt.state.due_count("default") == 100  # all still waiting in Redis


# -- memory: the product's record, not a key per delivery -------------------------------------


def _sync_one(rt, pid: str = PID) -> str:
    from workers.sync import Syncer

    return Syncer(rt.settings, rt.state).run("default", pid)


def test_duplicates_and_stale_told_apart_by_the_products_record(rt, sync_settings, r, webhooks):
    web = webhooks.to(sync_settings)
    send(web, shopify_product(at=1), event_id="e1")
    assert _sync_one(rt) == "written"
    assert send(web, shopify_product(at=1), event_id="e1") == "duplicate"  # redelivery
    assert send(web, shopify_product(at=0.5), event_id="e0") == "stale"  # older event
    assert send(web, shopify_product(at=1), event_id="e0") == "duplicate"
    # The record keeps the latest three delivery ids; an older id is told by its version.
    send(web, shopify_product(at=2), event_id="e2")
    send(web, shopify_product(at=3), event_id="e3")
    assert send(web, shopify_product(at=1), event_id="e1") == "stale"
    assert send(web, shopify_product(at=3), event_id="e3") == "duplicate"
    led = rt.state.ledger("default")
    assert (led["duplicates"], led["stale"]) == (3, 2)
    assert ledger_balance(led) == 0


def test_memory_does_not_grow_with_deliveries_of_a_known_product(rt, sync_settings, r, webhooks):
    web = webhooks.to(sync_settings)
    send(web, shopify_product(at=1))
    _sync_one(rt)
    prefix = sync_settings.key_prefix

    def footprint() -> dict[bytes, int]:
        rt.state.drain_kicks()  # the dispatcher's nudges (drained by it; at most 1000)
        return {k: r.memory_usage(k) for k in r.scan_iter(f"{prefix}:*") if b":stats" not in k}

    def deliveries(start: int, n: int) -> None:
        for i in range(start, start + n):  # products/update on every order: same content
            send(web, shopify_product(at=2 + i))
            assert _sync_one(rt) == "skipped_unchanged"
            send(web, shopify_product(at=1.5 + i))  # and a late, older one: stale

    deliveries(0, 3)  # the record's ring of delivery ids fills, the ledger has every field
    before = footprint()
    deliveries(3, 40)
    assert footprint() == before
    [bucket] = [k for k in r.scan_iter(f"{prefix}:*:S:*")]
    assert r.object("encoding", bucket) == b"listpack"
    assert list(r.scan_iter(f"{prefix}:*:P:*")) == []  # nothing pending: no product hash
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_migrate_folds_the_old_layout(rt, sync_settings, r, sandbox, webhooks):
    """State written by the pre-bucket layout (synced fields in the product's hash, a dedupe
    key per delivery) keeps latest-wins before the migration and is folded by it."""
    from app.core.mapping import DELETED_HASH

    web = webhooks.to(sync_settings)
    k = rt.state.keys
    v1 = 1767268800000000  # 2026-01-01T12:00:00Z, shopify_product(at=0)'s updated_at
    send(web, shopify_product(at=5))  # something synced normally, to see it kept
    _sync_one(rt)
    written = rt.state.product("default", PID)
    synced = (written.synced_version, written.synced_kind, written.synced_hash)
    r.delete(k.record("default", PID))
    r.hset(
        k.product("default", PID),
        mapping={"sv": str(synced[0]), "sh": synced[2], "sk": "u", "cool": "0"},
    )
    r.hset(k.product("default", "7"), mapping={"sv": str(v1), "sh": DELETED_HASH, "sk": "d"})
    r.hset(
        k.product("default", "8"),
        mapping={
            "sv": str(v1),
            "sh": "ab" * 16,
            "sk": "u",
            "pv": str(v1 + 10**6),
            "pk": "u",
            "pd": b"{}",
        },
    )
    # Before the migration: the old synced version reads as such, and an older event is
    # still stale against it.
    old = rt.state.product("default", PID)
    assert (old.synced_version, old.synced_kind, old.synced_hash) == synced
    assert rt.state.product("default", "7").tombstone
    assert send(web, shopify_product(pid=7, at=-1)) == "stale"
    from tests.servers import settings_env
    from tests.test_config_and_cli import run_cli

    out = run_cli(["migrate"], settings_env(sync_settings), check=True).stdout
    assert "folded 3" in out
    folded = rt.state.product("default", PID)  # the same synced state, nothing pending
    assert (folded.synced_version, folded.synced_kind, folded.synced_hash) == synced
    assert not folded.pending and folded.dead_version is None
    assert not r.exists(k.product("default", PID))  # and no product hash
    assert not r.exists(k.product("default", "7"))
    st7 = rt.state.product("default", "7")
    assert (st7.synced_version, st7.synced_kind, st7.synced_hash) == (v1, "delete", DELETED_HASH)
    assert not st7.pending and st7.dead_version is None
    st8 = rt.state.product("default", "8")
    assert (st8.pending_version, st8.synced_hash, st8.synced_kind) == (
        v1 + 10**6,
        "ab" * 16,
        "upsert",
    )
    assert send(web, shopify_product(pid=7, at=-1)) == "stale"  # the tombstone holds
    # the same content again is recognised from the migrated hash: no call
    send(web, shopify_product(at=6))
    assert _sync_one(rt) == "skipped_unchanged"
    assert rt.state.migrate("default") == {"folded": 0, "moved": 0}  # idempotent


def test_migrate_refiles_records_when_the_bucket_count_changes(rt, sync_settings, r, webhooks):
    from app.core.state import State

    web = webhooks.to(sync_settings)
    for pid in range(1, 21):
        send(web, shopify_product(pid=pid, at=1))
        _sync_one(rt, str(pid))
    fewer = State(r, sync_settings.key_prefix)
    fewer.keys.buckets = 3
    assert fewer.migrate("default")["moved"] == 0  # the scheduler's start does not re-file
    assert fewer.migrate("default", refile=True)["moved"] > 0
    assert len(list(r.scan_iter(f"{sync_settings.key_prefix}:*:S:*"))) <= 3
    assert all(fewer.product("default", str(p)).synced_kind == "upsert" for p in range(1, 21))
