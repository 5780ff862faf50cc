"""WooCommerce and Standard Webhooks deliveries through the real app into a real Redis."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.core.model import Product
from app.core.state import ledger_balance
from tests.constants import STANDARD_SECRET
from tests.support import standard_body, woo_product


def woo(webhooks, payload, topic="product.updated", **signing):
    return webhooks.woocommerce(topic, payload, **signing)


# -- WooCommerce ----------------------------------------------------------------------------


def test_woo_ping_gets_exactly_200_and_counts_nothing(webhooks, state):
    # WooCommerce's ping when a webhook is saved: a form post, unsigned.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = webhooks.post_raw("/webhooks/woocommerce", b"webhook_id=12", form)
    assert resp.status_code == 200
    assert state.ledger("default")["received"] == 0


def test_woo_update_is_normalized(webhooks, state):
    assert woo(webhooks, woo_product(at=3)).status == "accepted_wake"
    p = Product.from_json(state.product("default", "77").pending_doc)
    assert (str(p.price), str(p.sale_price)) == ("45", "35")
    assert p.in_stock is True and p.inventory == 5 and p.category == "Clothing"
    assert p.url == "https://woo.example.com/p/hoodie"


def test_woo_signature_checks(webhooks, state):
    assert woo(webhooks, woo_product(), secret="wrong").status_code == 401
    signed = webhooks.woocommerce_delivery("product.updated", woo_product())
    assert webhooks.post(replace(signed, body=signed.body + b" ")).status_code == 401
    unsigned = signed.with_headers(X_WC_Webhook_Signature=None)
    assert webhooks.post(unsigned).status_code == 401
    assert woo(webhooks, woo_product(), source="https://evil.example.com/").status_code == 401
    assert state.ledger("default")["received"] == 0


def test_woo_redelivery_dedupes_on_product_and_modified_time(webhooks, state):
    # Delivery-ID changes on every send; (source, id, date_modified_gmt) does not.
    assert woo(webhooks, woo_product(at=3)).status == "accepted_wake"
    assert woo(webhooks, woo_product(at=3)).status == "duplicate"
    assert woo(webhooks, woo_product(at=1)).status == "stale"
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_deleted_and_restored(webhooks, state):
    woo(webhooks, woo_product(at=3))
    assert woo(webhooks, {"id": 77}, topic="product.deleted").status_code == 200
    assert state.product("default", "77").pending_kind == "delete"
    now = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    resp = woo(webhooks, woo_product(date_modified_gmt=now), topic="product.restored")
    assert resp.status == "accepted"
    assert state.product("default", "77").pending_kind == "upsert"


def test_woo_variation_is_counted_not_guessed(webhooks, state):
    resp = woo(webhooks, woo_product(pid=78, parent_id=77))
    assert resp.status_code == 200 and resp.status == "ignored"
    assert state.product("default", "77").unknown
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_other_topic_ignored_and_bad_body_400(webhooks):
    assert woo(webhooks, {"id": 5}, topic="order.created").status == "ignored"
    assert woo(webhooks, b"{oops").status_code == 400
    assert woo(webhooks, {"id": 1, "date_modified_gmt": 5.5e20}).status_code == 400


def test_woo_draft_is_recorded_as_not_live(webhooks, state):
    woo(webhooks, woo_product(status="draft"))
    p = Product.from_json(state.product("default", "77").pending_doc)
    assert not p.is_live


# -- Standard Webhooks ----------------------------------------------------------------------


def test_standard_signed_by_reference_library_is_accepted(webhooks, state):
    resp = webhooks.standard(standard_body("SKU/1&2", at=1, price=12.5, sale_price="9.99"))
    assert resp.status_code == 200 and resp.status == "accepted_wake"
    p = Product.from_json(state.product("default", "SKU/1&2").pending_doc)
    assert (str(p.price), str(p.sale_price)) == ("12.5", "9.99")


def test_standard_bad_signature_and_rotation(webhooks, make_settings):
    assert webhooks.standard(standard_body(), secret="whsec_" + "A" * 32).status_code == 401
    rotated = make_settings(standard_webhook_secret=f"whsec_{'B' * 32},{STANDARD_SECRET}")
    assert webhooks.to(rotated).standard(standard_body()).status_code == 200


def test_standard_signature_list_any_may_match(webhooks):
    signed = webhooks.standard_delivery(standard_body())
    listed = "v1,AAAA v1a,xyz " + signed.headers["webhook-signature"]
    assert webhooks.post(signed.with_headers(webhook_signature=listed)).status_code == 200


@pytest.mark.parametrize("skew", [-301, 301])
def test_standard_timestamp_outside_five_minutes_is_401(webhooks, skew):
    # The header carries whole seconds: rounded away from now, the skew is at least `skew`.
    now = time.time()
    when = datetime.fromtimestamp((math.ceil(now) if skew > 0 else math.floor(now)) + skew, UTC)
    assert webhooks.standard(standard_body(), timestamp=when).status_code == 401


def test_standard_same_message_id_is_duplicate(webhooks):
    assert webhooks.standard(standard_body(at=1), msg_id="msg_1").status == "accepted_wake"
    assert webhooks.standard(standard_body(at=1), msg_id="msg_1").status == "duplicate"


def test_standard_delete_needs_only_id_and_updated_at(webhooks, state):
    body = {
        "type": "product.deleted",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"id": "a", "updated_at": "2026-01-01T00:00:00Z"},
    }
    assert webhooks.standard(body).status_code == 200
    assert state.product("default", "a").pending_kind == "delete"


@pytest.mark.parametrize(
    "data,why",
    [
        ({"updated_at": "2026-01-01T00:00:00Z"}, "data.id"),
        ({"id": "a"}, "data.updated_at"),
        ({"id": "a", "updated_at": "2026-01-01T00:00:00Z", "price": "ten"}, "data.price"),
        ({"id": "a", "updated_at": "2026-01-01T00:00:00Z", "in_stock": "yes"}, "data.in_stock"),
        ({"id": "a", "updated_at": "2026-01-01T00:00:00Z", "inventory": 1.5}, "data.inventory"),
        ({"id": "a", "updated_at": "2026-01-01T00:00:00Z", "status": "gone"}, "data.status"),
        ({"id": 5, "updated_at": "2026-01-01T00:00:00Z", "price": -1}, "data.price"),
    ],
)
def test_standard_wrong_types_are_400(webhooks, data, why):
    resp = webhooks.standard({"type": "product.updated", "timestamp": "x", "data": data})
    assert resp.status_code == 400 and why in resp.json["error"]


def test_standard_unknown_type_is_ignored(webhooks):
    assert webhooks.standard({"type": "order.created", "data": {}}).status == "ignored"
    assert webhooks.standard({"type": 5}).status_code == 400
