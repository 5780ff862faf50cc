"""Backfill and periodic reconciliation against store APIs (test doubles) and the sandbox."""

from __future__ import annotations

import subprocess
import threading

import pytest

from app import runtime
from app.core.state import ledger_balance
from app.personyze import PersonyzeClient
from app.platforms.fetch import StoreFetchError
from tests.constants import (
    BC_HASH,
    BC_TOKEN,
    SHOPIFY_TOKEN,
    WOO_CONSUMER_KEY,
    WOO_CONSUMER_SECRET,
)
from tests.fake_shopify import gql_product, gql_variant
from tests.fake_stores import fake_bigcommerce, fake_woo
from tests.servers import CLI, ROOT, eventually, peak, settings_env, syncing
from tests.support import shopify_product, sync_due, woo_product
from workers.reconcile import reconcile, run_periodic


@pytest.fixture
def rt(shop_rt):
    return shop_rt


def test_backfill_pages_through_shopify_and_syncs(rt, shop, sandbox):
    for i in range(1, 6):
        shop.products[i] = gql_product(i, at=f"2026-01-01T00:00:0{i}Z", title=f"p{i}")
    counts = reconcile(rt, "default", page_size=2)
    assert counts["listed"] == 5 and counts["accepted_wake"] == 5
    assert len(shop.ops("ShopifyProducts")) == 3  # three pages
    sync_due(rt)
    assert sorted(r["title"] for r in sandbox.rows("products")) == [f"p{i}" for i in range(1, 6)]

    writes = len(sandbox.request_log)
    again = reconcile(rt, "default")  # a second pass changes nothing
    assert again.get("duplicate", 0) + again.get("stale", 0) == 5
    sync_due(rt)
    assert len(sandbox.request_log) == writes
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_reconcile_repairs_a_lost_webhook(rt, webhooks, shop, sandbox):
    shop.products[1] = gql_product(1, variants=[gql_variant(11, price="10.00")])
    webhooks.to(rt.settings).shopify("products/update", shopify_product(pid=1, at=1, price="10.00"))
    sync_due(rt)
    assert sandbox.rows("products")[0]["sale_price"] == "10.00"
    # its webhook never came:
    shop.products[1] = gql_product(
        1, at="2026-01-01T13:00:00Z", variants=[gql_variant(11, price="12.00")]
    )
    assert reconcile(rt, "default")["accepted_wake"] == 1
    sync_due(rt)
    assert sandbox.rows("products")[0]["sale_price"] == "12.00"


def test_delete_missing_is_opt_in(rt, shop, sandbox):
    shop.products[1] = gql_product(1)
    with PersonyzeClient(sandbox.api_key, sandbox.url) as c:
        c.product_upsert({"internal_id": "999", "title": "gone from the store"})
    reconcile(rt, "default")
    sync_due(rt)
    assert {r["internal_id"] for r in sandbox.rows("products")} == {"1", "999"}
    assert reconcile(rt, "default", delete_missing=True)["deleted_missing"] == 1
    sync_due(rt)
    assert {r["internal_id"] for r in sandbox.rows("products")} == {"1"}
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_woocommerce_and_bigcommerce_listings(make_settings, sandbox):
    woo, bc = fake_woo(), fake_bigcommerce()
    try:
        for i in range(1, 4):
            woo.products[i] = woo_product(pid=i, at=i)
            bc.products[100 + i] = {
                "id": 100 + i,
                "name": f"bc{i}",
                "price": 5,
                "date_modified": "2026-01-01T00:00:00+00:00",
            }
        settings = make_settings(
            personyze_base_url=sandbox.url,
            woocommerce_url=woo.url,
            woocommerce_consumer_key=WOO_CONSUMER_KEY,
            woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
            bigcommerce_store_hash=BC_HASH,
            bigcommerce_access_token=BC_TOKEN,
            bigcommerce_api_url=bc.url,
        )
        rt = runtime.build(settings)
        assert reconcile(rt, "default", page_size=2)["listed"] == 6
        sync_due(rt)
        assert len(sandbox.rows("products")) == 6
    finally:
        woo.stop()
        bc.stop()


def test_a_bigcommerce_listing_without_data_is_an_error_not_an_empty_catalog(
    make_settings, sandbox
):
    """An answer without a `data` list stops the pass with an error: read as an empty page,
    the pass looked done while it had listed nothing (`--delete-missing` then deleted
    nothing only because it refuses an empty listing)."""
    bc = fake_bigcommerce()
    try:
        bc.listing_body = {"meta": {"pagination": {"total_pages": 1}}}
        with PersonyzeClient(sandbox.api_key, sandbox.url) as c:
            c.product_upsert({"internal_id": "101", "title": "still in the store"})
        settings = make_settings(
            personyze_base_url=sandbox.url,
            bigcommerce_store_hash=BC_HASH,
            bigcommerce_access_token=BC_TOKEN,
            bigcommerce_api_url=bc.url,
        )
        rt = runtime.build(settings)
        with pytest.raises(StoreFetchError, match="without data"):
            reconcile(rt, "default", delete_missing=True)
        sync_due(rt)
        assert [r["internal_id"] for r in sandbox.rows("products")] == ["101"]
    finally:
        bc.stop()


def test_periodic_reconcile_runs_once_per_interval_across_schedulers(shop, shop_settings):
    settings = shop_settings(
        reconcile_interval_seconds=3600,
    )
    shop.products[1] = gql_product(1)
    rt = runtime.build(settings)
    stop = threading.Event()
    threads = [threading.Thread(target=run_periodic, args=(rt, stop)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        from tests.servers import eventually

        eventually(lambda: rt.state.ledger("default")["received"] >= 1, timeout=10)
        assert len(shop.ops("ShopifyProducts")) == 1
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert rt.state.ledger("default")["received"] == 1


def test_resync_command(make_settings, sandbox, shop):
    cli = CLI
    settings = make_settings(personyze_base_url=sandbox.url)
    p = subprocess.run(
        [cli, "resync"], env=settings_env(settings), cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 2 and "no store API configured" in p.stderr
    shop.products[7] = gql_product(7)
    env = dict(
        settings_env(settings), SHOPIFY_ADMIN_TOKEN=SHOPIFY_TOKEN, SHOPIFY_ADMIN_API_URL=shop.url
    )
    p = subprocess.run([cli, "resync"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "accepted_wake=1" in p.stdout and "listed=1" in p.stdout
    assert SHOPIFY_TOKEN not in p.stdout + p.stderr


def test_an_unreadable_listed_product_is_counted_and_skipped(rt, shop, sandbox):
    shop.products[1] = gql_product(1)
    shop.products[2] = gql_product(2, at="not a time")
    with PersonyzeClient(sandbox.api_key, sandbox.url) as c:
        c.product_upsert({"internal_id": "999", "title": "other source"})
    counts = reconcile(rt, "default", delete_missing=True)
    assert counts["unparseable"] == 1 and counts["listed"] == 1
    assert "deleted_missing" not in counts  # an incomplete listing never deletes


def _many(shop, n: int) -> None:
    for i in range(1, n + 1):
        shop.products[i] = gql_product(i, title=f"p{i}")


def test_backfill_stops_when_the_backlog_does_not_drain(shop, shop_settings):
    """No workers: the pass ingests up to the bound (plus less than a tenth), then gives up
    instead of holding every product's document in Redis at once."""
    from workers.reconcile import BacklogStalled

    _many(shop, 200)
    rt = runtime.build(
        shop_settings(
            resync_max_backlog=50,
            resync_stall_seconds=0.5,
        )
    )
    with pytest.raises(BacklogStalled, match="did not drain"):
        reconcile(rt, "default")
    assert 50 <= rt.state.due_count("default") < 55
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_backfill_waits_for_the_workers_and_syncs_everything(sandbox, shop, shop_settings):
    """With workers: the whole catalog is written, and the backlog never passed the bound."""
    _many(shop, 200)
    rt = runtime.build(
        shop_settings(
            resync_max_backlog=50,
        )
    )
    with peak(lambda: rt.state.due_count("default")) as backlog, syncing(rt):
        counts = reconcile(rt, "default")
        eventually(lambda: rt.state.ledger("default")["written"] == 200, timeout=60)
    assert counts["listed"] == 200
    assert 0 < backlog[0] < 55
    assert len(sandbox.rows("products")) == 200
    assert ledger_balance(rt.state.ledger("default")) == 0
