"""BigCommerce: signed thin webhooks, the product fetched from the catalog API, deletes."""

from __future__ import annotations

import uuid

import pytest

from app import create_app
from app.core.state import ledger_balance
from tests.fake_stores import BC_CLIENT_SECRET as CLIENT_SECRET
from tests.fake_stores import BC_HASH
from tests.support import bigcommerce_request
from workers.sync import Syncer


@pytest.fixture
def rt(bc_rt):
    return bc_rt(storefront_domain="shop.example.com")


def deliver(rt, scope, pid, *, secret=CLIENT_SECRET, digest=None, producer=f"stores/{BC_HASH}"):
    payload = {
        "scope": scope,
        "store_id": "1025646",
        "data": {"type": "product", "id": pid},
        "hash": digest or uuid.uuid4().hex,
        "created_at": 1561479233,
        "producer": producer,
    }
    if producer is None:
        del payload["producer"]
    body, headers = bigcommerce_request(payload, secret)
    return (
        create_app(rt.settings)
        .test_client()
        .post("/webhooks/bigcommerce", data=body, headers=headers)
    )


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


def test_update_is_fetched_and_written(rt, bc, sandbox):
    bc.products[205] = bc_product()
    resp = deliver(rt, "store/product/updated", 205)
    assert resp.status_code == 200 and resp.json["status"] == "accepted_wake"
    assert Syncer(rt.settings, rt.state).run("default", "205") == "written"
    [row] = sandbox.rows("products")
    assert (row["price"], row["sale_price"], row["is_in_stock"]) == ("100", "80", "yes")
    assert int(row["inventory"]) == 4
    assert row["image_big_url"] == "https://cdn.example/1.jpg"
    assert row["guide_url"] == "https://shop.example.com/bc-shoe/"
    assert bc.requests == [f"/stores/{BC_HASH}/v3/catalog/products/205?include=variants,images"]


def test_same_hash_is_a_duplicate_and_other_scopes_ignored(rt):
    assert deliver(rt, "store/product/updated", 205, digest="h1").json["status"] == "accepted_wake"
    assert deliver(rt, "store/product/updated", 205, digest="h1").json["status"] == "duplicate"
    assert deliver(rt, "store/order/created", 9).json["status"] == "ignored"
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_bad_signature_is_401_and_bad_body_400(rt):
    assert deliver(rt, "store/product/updated", 205, secret="wrong").status_code == 401
    assert deliver(rt, "store/product/updated", "abc").status_code == 400


def test_delete_and_hidden_product(rt, bc, sandbox):
    bc.products[205] = bc_product()
    s = Syncer(rt.settings, rt.state)
    deliver(rt, "store/product/updated", 205)
    s.run("default", "205")
    deliver(rt, "store/product/deleted", 205)
    assert s.run("default", "205") == "written"
    assert sandbox.rows("products") == []
    bc.products[206] = bc_product(id=206, is_visible=False)
    deliver(rt, "store/product/updated", 206)
    assert s.run("default", "206") == "written"  # a DELETE: hidden products leave Personyze
    assert sandbox.rows("products") == []


def test_check_wants_api_credentials_with_the_secret(make_settings):
    s = make_settings(bigcommerce_client_secret=CLIENT_SECRET)
    assert any("BIGCOMMERCE_ACCESS_TOKEN" in p for p in s.problems(need_api_key=True))


# -- issue 8.10: a delivery belongs to the configured store ----------------------------------


@pytest.mark.parametrize("producer", ["stores/otherhash", "", None, f"stores/{BC_HASH}/x"])
def test_another_stores_delivery_is_refused(rt, producer):
    """Signed with the same app's client secret (one app, many stores), but about another
    store: 401, and nothing recorded."""
    resp = deliver(rt, "store/product/deleted", 205, producer=producer)
    assert resp.status_code == 401
    assert rt.state.ledger("default")["received"] == 0
    assert rt.state.product_state("default", "205") == {}


def test_own_stores_delivery_is_accepted(rt):
    assert deliver(rt, "store/product/deleted", 205).status_code == 200
