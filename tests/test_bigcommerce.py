"""BigCommerce: signed thin webhooks, the product fetched from the catalog API, deletes."""

from __future__ import annotations

import pytest

from app.core.state import ledger_balance
from tests.constants import BC_CLIENT_SECRET, BC_HASH
from tests.support import bigcommerce_body
from workers.sync import Syncer


@pytest.fixture
def rt(bc_rt):
    return bc_rt(storefront_domain="shop.example.com")


@pytest.fixture
def store(webhooks, rt):
    """BigCommerce, signing with the app's client secret, delivering to `rt`'s app."""
    return webhooks.to(rt.settings)


def bc_product(**extra):
    p = {
        "id": 205,
        "name": "BC Shoe",
        "description": "<p>Fast</p>",
        "price": 100,
        "sale_price": 80,
        "inventory_tracking": "variant",
        "inventory_level": 0,
        "is_visible": True,
        "availability": "available",
        "sku": "SHOE",
        "custom_url": {"url": "/bc-shoe/"},
        "variants": [{"inventory_level": 0}, {"inventory_level": 4}],
        "images": [
            {"url_standard": "https://cdn.example/2.jpg", "is_thumbnail": False},
            {"url_standard": "https://cdn.example/1.jpg", "is_thumbnail": True},
        ],
    }
    p.update(extra)
    return p


def test_update_is_fetched_and_written(rt, store, bc, sandbox):
    bc.products[205] = bc_product()
    resp = store.bigcommerce(bigcommerce_body("store/product/updated", 205))
    assert resp.status_code == 200 and resp.status == "accepted_wake"
    assert Syncer(rt.settings, rt.state).run("default", "205") == "written"
    [row] = sandbox.rows("products")
    assert (row["price"], row["sale_price"], row["is_in_stock"]) == ("100", "80", "yes")
    assert int(row["inventory"]) == 4
    assert row["image_big_url"] == "https://cdn.example/1.jpg"
    assert row["guide_url"] == "https://shop.example.com/bc-shoe/"
    assert bc.requests == [f"/stores/{BC_HASH}/v3/catalog/products/205?include=variants,images"]


def test_same_hash_is_a_duplicate_and_other_scopes_ignored(rt, store):
    updated = bigcommerce_body("store/product/updated", 205, digest="h1")
    assert store.bigcommerce(updated).status == "accepted_wake"
    assert store.bigcommerce(updated).status == "duplicate"
    assert store.bigcommerce(bigcommerce_body("store/order/created", 9)).status == "ignored"
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_bad_signature_is_401_and_bad_body_400(store):
    updated = bigcommerce_body("store/product/updated", 205)
    assert store.bigcommerce(updated, secret="wrong").status_code == 401
    assert store.bigcommerce(bigcommerce_body("store/product/updated", "abc")).status_code == 400


def test_delete_and_hidden_product(rt, store, bc, sandbox):
    bc.products[205] = bc_product()
    s = Syncer(rt.settings, rt.state)
    store.bigcommerce(bigcommerce_body("store/product/updated", 205))
    s.run("default", "205")
    store.bigcommerce(bigcommerce_body("store/product/deleted", 205))
    assert s.run("default", "205") == "written"
    assert rt.state.product("default", "205").tombstone
    assert sandbox.rows("products") == []
    bc.products[206] = bc_product(id=206, is_visible=False)
    store.bigcommerce(bigcommerce_body("store/product/updated", 206))
    assert s.run("default", "206") == "written"  # a DELETE: hidden products leave Personyze
    assert sandbox.rows("products") == []


def test_check_wants_api_credentials_with_the_secret(make_settings):
    s = make_settings(bigcommerce_client_secret=BC_CLIENT_SECRET)
    assert any("BIGCOMMERCE_ACCESS_TOKEN" in p for p in s.problems(need_api_key=True))


# -- issue 8.10: a delivery belongs to the configured store ----------------------------------


@pytest.mark.parametrize("producer", ["stores/otherhash", "", None, f"stores/{BC_HASH}/x"])
def test_another_stores_delivery_is_refused(rt, store, producer):
    """Signed with the same app's client secret (one app, many stores), but about another
    store: 401, and nothing recorded."""
    resp = store.bigcommerce(bigcommerce_body("store/product/deleted", 205, producer=producer))
    assert resp.status_code == 401
    assert rt.state.ledger("default")["received"] == 0
    assert rt.state.product("default", "205").unknown


def test_own_stores_delivery_is_accepted(store):
    assert store.bigcommerce(bigcommerce_body("store/product/deleted", 205)).status_code == 200
