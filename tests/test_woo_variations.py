"""WooCommerce variation events: mapped to the parent, whose state the worker refetches."""

from __future__ import annotations

import pytest

from app.core.state import ledger_balance
from tests.constants import WOO_CONSUMER_SECRET
from tests.support import woo_product
from workers.sync import Syncer


@pytest.fixture
def rt(woo_rt):
    return woo_rt


@pytest.fixture
def deliver(webhooks, rt, woo):
    """Deliver a `product.updated` webhook from the fake site to `rt`'s app; what the app did
    with it, after asserting it was taken (200)."""
    site = webhooks.to(rt.settings)
    return lambda payload: site.woocommerce("product.updated", payload).status


def variable_parent(**extra):
    # WooCommerce shapes a variable product with the lowest variation price in `price`.
    return woo_product(
        pid=77,
        type="variable",
        price="30",
        regular_price="",
        sale_price="",
        on_sale=False,
        variations=[78, 79],
        manage_stock=False,
        **extra,
    )


def test_variation_change_refetches_and_writes_the_parent(rt, woo, sandbox, deliver):
    woo.products[77] = variable_parent(stock_status="instock")
    assert deliver(woo_product(pid=78, parent_id=77, at=5)) == "accepted_wake"
    assert Syncer(rt.settings, rt.state).run("default", "77") == "written"
    [row] = sandbox.rows("products")
    assert row["internal_id"] == "77"
    assert (row["price"], row["sale_price"], row["is_in_stock"]) == ("30", "30", "yes")
    # a variable parent without a regular price: its variations are read too (none here)
    assert woo.requests == [
        "/wp-json/wc/v3/products/77",
        "/wp-json/wc/v3/products/77/variations?per_page=100&page=1",
    ]
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_variation_of_a_vanished_parent_deletes_it(rt, woo, sandbox, deliver):
    woo.products[77] = variable_parent()
    deliver(woo_product(pid=78, parent_id=77, at=5))
    s = Syncer(rt.settings, rt.state)
    s.run("default", "77")
    del woo.products[77]
    deliver(woo_product(pid=78, parent_id=77, at=9))
    assert s.run("default", "77") == "written"
    assert sandbox.rows("products") == []


def test_store_outage_retries_and_bad_keys_dead_letter(rt, woo, sandbox, deliver):
    woo.products[77] = variable_parent()
    deliver(woo_product(pid=78, parent_id=77, at=5))
    s = Syncer(rt.settings, rt.state)
    woo.status = 503
    assert s.run("default", "77") == "retry"
    assert sandbox.request_log == []  # nothing sent to Personyze without the state
    woo.status = 401
    rt.redis.zadd(rt.state.keys.due("default"), {"77": 0})
    assert s.run("default", "77") == "dead"
    [entry] = rt.state.dlq_list("default").values()
    assert "refused the credentials (401" in entry["errors"][-1]["error"]
    assert WOO_CONSUMER_SECRET not in str(entry)
    led = rt.state.ledger("default")
    assert led["dead"] == 1 and ledger_balance(led) == 0


def test_without_api_keys_variations_are_counted_as_ignored(make_settings, webhooks, woo):
    site = webhooks.to(make_settings(woocommerce_url=woo.url))
    resp = site.woocommerce("product.updated", woo_product(pid=78, parent_id=77))
    assert resp.status == "ignored"


def test_a_store_429_puts_the_key_back_without_using_up_its_retry_budget(rt, woo, sandbox, deliver):
    """A store API's rate limit is the store's condition, not the product's: the key waits
    and its attempts are not counted (so a long throttle never dead-letters it)."""
    woo.products[77] = variable_parent()
    deliver(woo_product(pid=78, parent_id=77, at=5))
    s = Syncer(rt.settings, rt.state)
    woo.status = 429
    for _ in range(rt.settings.max_attempts + 1):
        rt.redis.zadd(rt.state.keys.due("default"), {"77": 0})
        assert s.run("default", "77") == "store_throttled"
    assert rt.state.dlq_list("default") == {}
    woo.status = None
    rt.redis.zadd(rt.state.keys.due("default"), {"77": 0})
    assert s.run("default", "77") == "written"
    assert ledger_balance(rt.state.ledger("default")) == 0
