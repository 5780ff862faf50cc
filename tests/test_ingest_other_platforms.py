"""WooCommerce and Standard Webhooks deliveries through the real app into a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.core.model import Product
from app.core.state import ledger_balance
from tests.conftest import STANDARD_SECRET
from tests.support import standard_body, standard_request, woo_product, woo_request


def woo(client, payload, **kw):
    body, headers = woo_request(payload, **kw)
    return client.post("/webhooks/woocommerce", data=body, headers=headers)


def std(client, payload, secret=STANDARD_SECRET, **kw):
    body, headers = standard_request(payload, secret, **kw)
    return client.post("/webhooks/standard", data=body, headers=headers)


# -- WooCommerce ----------------------------------------------------------------------------


def test_woo_ping_gets_exactly_200_and_counts_nothing(client, state):
    resp = client.post(
        "/webhooks/woocommerce",
        data=b"webhook_id=12",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200
    assert state.ledger("default")["received"] == 0


def test_woo_update_is_normalized(client, state):
    assert woo(client, woo_product(at=3)).json["status"] == "accepted_wake"
    p = Product.from_json(state.r.hget(state.keys.product("default", "77"), "pd"))
    assert (str(p.price), str(p.sale_price)) == ("45", "35")
    assert p.in_stock is True and p.inventory == 5 and p.category == "Clothing"
    assert p.url == "https://woo.example.com/p/hoodie"


def test_woo_signature_checks(client, state):
    assert woo(client, woo_product(), secret="wrong").status_code == 401
    body, headers = woo_request(woo_product())
    resp = client.post("/webhooks/woocommerce", data=body + b" ", headers=headers)
    assert resp.status_code == 401
    del headers["X-WC-Webhook-Signature"]
    assert client.post("/webhooks/woocommerce", data=body, headers=headers).status_code == 401
    assert woo(client, woo_product(), source="https://evil.example.com/").status_code == 401
    assert state.ledger("default")["received"] == 0


def test_woo_redelivery_dedupes_on_product_and_modified_time(client, state):
    # Delivery-ID changes on every send; (source, id, date_modified_gmt) does not.
    assert woo(client, woo_product(at=3)).json["status"] == "accepted_wake"
    assert woo(client, woo_product(at=3)).json["status"] == "duplicate"
    assert woo(client, woo_product(at=1)).json["status"] == "stale"
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_deleted_and_restored(client, state):
    woo(client, woo_product(at=3))
    assert woo(client, {"id": 77}, topic="product.deleted").status_code == 200
    assert state.product_state("default", "77")["pk"] == "d"
    now = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    resp = woo(client, woo_product(date_modified_gmt=now), topic="product.restored")
    assert resp.json["status"] == "accepted"
    assert state.product_state("default", "77")["pk"] == "u"


def test_woo_variation_is_counted_not_guessed(client, state):
    resp = woo(client, woo_product(pid=78, parent_id=77))
    assert resp.status_code == 200 and resp.json["status"] == "ignored"
    assert state.product_state("default", "77") == {}
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_other_topic_ignored_and_bad_body_400(client):
    assert woo(client, {"id": 5}, topic="order.created").json["status"] == "ignored"
    assert woo(client, b"{oops").status_code == 400
    assert woo(client, {"id": 1, "date_modified_gmt": 5.5e20}).status_code == 400


def test_woo_draft_is_recorded_as_not_live(client, state):
    woo(client, woo_product(status="draft"))
    p = Product.from_json(state.r.hget(state.keys.product("default", "77"), "pd"))
    assert not p.is_live


# -- Standard Webhooks ----------------------------------------------------------------------


def test_standard_signed_by_reference_library_is_accepted(client, state):
    resp = std(client, standard_body("SKU/1&2", at=1, price=12.5, sale_price="9.99"))
    assert resp.status_code == 200 and resp.json["status"] == "accepted_wake"
    p = Product.from_json(state.r.hget(state.keys.product("default", "SKU/1&2"), "pd"))
    assert (str(p.price), str(p.sale_price)) == ("12.5", "9.99")


def test_standard_bad_signature_and_rotation(client, make_settings):
    assert std(client, standard_body(), secret="whsec_" + "A" * 32).status_code == 401
    app2 = create_app(make_settings(standard_webhook_secret=f"whsec_{'B' * 32},{STANDARD_SECRET}"))
    assert std(app2.test_client(), standard_body()).status_code == 200


def test_standard_signature_list_any_may_match(client):
    body, headers = standard_request(standard_body(), STANDARD_SECRET)
    headers["webhook-signature"] = "v1,AAAA v1a,xyz " + headers["webhook-signature"]
    assert client.post("/webhooks/standard", data=body, headers=headers).status_code == 200


@pytest.mark.parametrize("skew", [-301, 301])
def test_standard_timestamp_outside_five_minutes_is_401(client, skew):
    when = datetime.now(UTC) + timedelta(seconds=skew)
    assert std(client, standard_body(), timestamp=when).status_code == 401


def test_standard_same_message_id_is_duplicate(client):
    assert std(client, standard_body(at=1), msg_id="msg_1").json["status"] == "accepted_wake"
    assert std(client, standard_body(at=1), msg_id="msg_1").json["status"] == "duplicate"


def test_standard_delete_needs_only_id_and_updated_at(client, state):
    body = {
        "type": "product.deleted",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"id": "a", "updated_at": "2026-01-01T00:00:00Z"},
    }
    assert std(client, body).status_code == 200
    assert state.product_state("default", "a")["pk"] == "d"


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
def test_standard_wrong_types_are_400(client, data, why):
    resp = std(client, {"type": "product.updated", "timestamp": "x", "data": data})
    assert resp.status_code == 400 and why in resp.json["error"]


def test_standard_unknown_type_is_ignored(client, state):
    assert std(client, {"type": "order.created", "data": {}}).json["status"] == "ignored"
    assert std(client, {"type": 5}).status_code == 400
