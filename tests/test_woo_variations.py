"""WooCommerce variation events: mapped to the parent, whose state the worker refetches."""

from __future__ import annotations

import pytest

from app import create_app
from app.core.state import ledger_balance
from tests.fake_stores import SECRET
from tests.support import woo_product, woo_request
from workers.sync import Syncer


@pytest.fixture
def rt(woo_rt):
    return woo_rt


def deliver(rt, woo, payload):
    body, headers = woo_request(payload, source=woo.url + "/")
    resp = (
        create_app(rt.settings)
        .test_client()
        .post("/webhooks/woocommerce", data=body, headers=headers)
    )
    assert resp.status_code == 200
    return resp.json["status"]


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


def test_variation_change_refetches_and_writes_the_parent(rt, woo, sandbox):
    woo.products[77] = variable_parent(stock_status="instock")
    assert deliver(rt, woo, woo_product(pid=78, parent_id=77, at=5)) == "accepted_wake"
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


def test_variation_of_a_vanished_parent_deletes_it(rt, woo, sandbox):
    woo.products[77] = variable_parent()
    deliver(rt, woo, woo_product(pid=78, parent_id=77, at=5))
    s = Syncer(rt.settings, rt.state)
    s.run("default", "77")
    del woo.products[77]
    deliver(rt, woo, woo_product(pid=78, parent_id=77, at=9))
    assert s.run("default", "77") == "written"
    assert sandbox.rows("products") == []


def test_store_outage_retries_and_bad_keys_dead_letter(rt, woo, sandbox):
    woo.products[77] = variable_parent()
    deliver(rt, woo, woo_product(pid=78, parent_id=77, at=5))
    s = Syncer(rt.settings, rt.state)
    woo.status = 503
    assert s.run("default", "77") == "retry"
    assert sandbox.request_log == []  # nothing sent to Personyze without the state
    woo.status = 401
    rt.redis.zadd(rt.state.keys.due("default"), {"77": 0})
    assert s.run("default", "77") == "dead"
    [entry] = rt.state.dlq_list("default").values()
    assert "refused the credentials (401" in entry["errors"][-1]["error"]
    assert SECRET not in str(entry)
    led = rt.state.ledger("default")
    assert led["dead"] == 1 and ledger_balance(led) == 0


def test_without_api_keys_variations_are_counted_as_ignored(make_settings, woo):
    settings = make_settings(woocommerce_url=woo.url)
    body, headers = woo_request(woo_product(pid=78, parent_id=77), source=woo.url + "/")
    client = create_app(settings).test_client()
    resp = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert resp.json["status"] == "ignored"


def test_a_store_429_puts_the_key_back_without_using_up_its_retry_budget(rt, woo, sandbox):
    """A store API's rate limit is the store's condition, not the product's: the key waits
    and its attempts are not counted (so a long throttle never dead-letters it)."""
    woo.products[77] = variable_parent()
    deliver(rt, woo, woo_product(pid=78, parent_id=77, at=5))
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
