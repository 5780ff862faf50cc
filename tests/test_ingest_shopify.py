"""Shopify deliveries through the real Flask app into a real Redis."""

from __future__ import annotations

import json

import pytest

from app import create_app
from app.core.model import Product
from app.core.state import ledger_balance
from tests.conftest import SHOPIFY_SECRET_2
from tests.support import shopify_product, shopify_request, ts


def post(client, payload, **kw):
    body, headers = shopify_request(payload, **kw)
    return client.post("/webhooks/shopify", data=body, headers=headers)


def test_update_is_recorded_as_pending_and_due(client, state):
    resp = post(client, shopify_product(at=5))
    assert resp.status_code == 200
    assert resp.json["status"] == "accepted_wake"
    st = state.product_state("default", "632910392")
    assert st["pk"] == "u"
    assert state.due_count("default") == 1
    led = state.ledger("default")
    assert led["received"] == 1 and led["pending"] == 1 and ledger_balance(led) == 0


def test_pending_doc_is_the_normalized_product(client, state):
    post(client, shopify_product(at=5))
    raw = state.r.hget(state.keys.product("default", "632910392"), "pd")
    p = Product.from_json(raw)
    assert p.id == "632910392"
    assert str(p.sale_price) == "199.00" and str(p.price) == "199.00"  # lowest variant, no sale
    assert p.in_stock is True and p.inventory == 10
    assert p.sku == "IPOD-PINK" and p.brand == "Apple" and p.category == "Cult Products"


@pytest.mark.parametrize("secret", ["shpss_test_secret_one", SHOPIFY_SECRET_2])
def test_rotated_secrets_both_verify(client, secret):
    assert post(client, shopify_product(), secret=secret).status_code == 200


def test_wrong_secret_tampered_body_missing_header_are_401(client, state):
    assert post(client, shopify_product(), secret="nope").status_code == 401
    body, headers = shopify_request(shopify_product())
    tampered = body.replace(b"IPod", b"IPad")
    assert client.post("/webhooks/shopify", data=tampered, headers=headers).status_code == 401
    del headers["X-Shopify-Hmac-Sha256"]
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 401
    headers["X-Shopify-Hmac-Sha256"] = "not base64!!"
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 401
    assert state.ledger("default")["received"] == 0


def test_unknown_shop_is_401(client):
    assert post(client, shopify_product(), shop="other.myshopify.com").status_code == 401


def test_duplicate_event_id_changes_nothing(client, state):
    payload = shopify_product(at=5)
    assert post(client, payload, event_id="e-1").json["status"] == "accepted_wake"
    before = state.r.hgetall(state.keys.product("default", "632910392"))
    assert post(client, payload, event_id="e-1").json["status"] == "duplicate"
    assert state.r.hgetall(state.keys.product("default", "632910392")) == before
    led = state.ledger("default")
    assert led["duplicates"] == 1 and ledger_balance(led) == 0


def test_out_of_order_older_update_is_stale(client, state):
    post(client, shopify_product(at=10, title="new"))
    assert post(client, shopify_product(at=5, title="old")).json["status"] == "stale"
    doc = Product.from_json(state.r.hget(state.keys.product("default", "632910392"), "pd"))
    assert doc.title == "new"
    led = state.ledger("default")
    assert led["stale"] == 1 and led["pending"] == 1 and ledger_balance(led) == 0


def test_newer_update_coalesces_into_pending(client, state):
    post(client, shopify_product(at=1))
    resp = post(client, shopify_product(at=2, title="v2"))
    assert resp.json["status"] == "accepted"  # already due: no second wake-up
    led = state.ledger("default")
    assert led["coalesced"] == 1 and led["pending"] == 1 and ledger_balance(led) == 0


def test_delete_then_late_update_is_stale(client, state):
    post(client, shopify_product(at=1))
    resp = post(client, {"id": 632910392}, topic="products/delete", triggered_at=ts(20))
    assert resp.json["status"] == "accepted"
    assert state.product_state("default", "632910392")["pk"] == "d"
    # Shopify retries carry the original payload: an update from before the delete.
    assert post(client, shopify_product(at=10)).json["status"] == "stale"
    assert state.product_state("default", "632910392")["pk"] == "d"


def test_delete_needs_only_an_id(client):
    resp = post(client, {"id": 1}, topic="products/delete")
    assert resp.status_code == 200


def test_ids_above_2_53_stay_exact(client, state):
    big = 788032119674292922
    post(client, shopify_product(pid=big))
    assert state.product_state("default", str(big))["pk"] == "u"


@pytest.mark.parametrize(
    "topic", ["orders/create", "customers/redact", "shop/redact", "customers/data_request", ""]
)
def test_other_and_compliance_topics_are_200_ignored(client, state, topic):
    resp = post(client, {"shop_id": 1, "shop_domain": "x"}, topic=topic)
    assert resp.status_code == 200 and resp.json["status"] == "ignored"
    led = state.ledger("default")
    assert led["ignored"] == 1 and ledger_balance(led) == 0


def test_compliance_topic_with_bad_hmac_is_401(client):
    assert post(client, {"shop_id": 1}, topic="shop/redact", secret="bad").status_code == 401


@pytest.mark.parametrize(
    "body,why",
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"title": "no id", "updated_at": "2026-01-01T00:00:00Z"}', "id"),
        (b'{"id": "12 34", "updated_at": "2026-01-01T00:00:00Z"}', "id"),
        (b'{"id": -5, "updated_at": "2026-01-01T00:00:00Z"}', "id"),
        (b'{"id": 1}', "updated_at"),
        (b'{"id": 1, "updated_at": "yesterday"}', "updated_at"),
        (b'{"id": 1, "updated_at": "2026-01-01T00:00:00Z", "variants": {}}', "variants"),
        (
            b'{"id": 1, "updated_at": "2026-01-01T00:00:00Z", "variants": [{"price": "abc"}]}',
            "price",
        ),
        (b'{"id": 1, "updated_at": "2026-01-01T00:00:00Z", "variants": [{"price": [1]}]}', "price"),
        (b'{"id": 1, "updated_at": "2026-01-01T00:00:00Z", "title": 5}', "title"),
        (b'{"id": true, "updated_at": "2026-01-01T00:00:00Z"}', "id"),
    ],
)
def test_malformed_bodies_are_400_and_leave_no_state(client, state, r, prefix, body, why):
    resp = post(client, body)
    assert resp.status_code == 400
    assert why in resp.json["error"]
    assert list(r.scan_iter(f"{prefix}:*:P:*")) == []


def test_body_over_limit_is_413(make_settings):
    app = create_app(make_settings(max_body_bytes=1024))
    body, headers = shopify_request(shopify_product(title="x" * 2000))
    resp = app.test_client().post("/webhooks/shopify", data=body, headers=headers)
    assert resp.status_code == 413


def test_nanosecond_timestamps_and_offsets_order_correctly(client, state):
    post(client, shopify_product(updated_at="2026-03-11T20:54:30.516267807Z"))
    # Same instant written with an offset, one microsecond earlier: stale.
    resp = post(client, shopify_product(updated_at="2026-03-11T15:54:30.516266-05:00"))
    assert resp.json["status"] == "stale"
    resp = post(client, shopify_product(updated_at="2026-03-11T15:54:30.516268-05:00"))
    assert resp.json["status"] == "accepted"


def test_response_never_echoes_the_secret(client):
    body, headers = shopify_request(shopify_product(), secret="nope")
    resp = client.post("/webhooks/shopify", data=body, headers=headers)
    assert "shpss" not in resp.get_data(as_text=True)
    assert json.loads(resp.get_data())["status"] == "unauthorized"


def test_two_changes_in_one_second_are_ordered_by_triggered_at(client, state):
    first = shopify_product(updated_at="2026-03-11T20:54:30Z", title="first")
    second = shopify_product(updated_at="2026-03-11T20:54:30Z", title="second")
    assert (
        post(client, second, triggered_at="2026-03-11T20:54:30.700000001Z").json["status"]
        == "accepted_wake"
    )
    # the earlier change arrives late: same updated_at, earlier trigger -> stale
    assert post(client, first, triggered_at="2026-03-11T20:54:30.200Z").json["status"] == "stale"
    doc = Product.from_json(state.r.hget(state.keys.product("default", "632910392"), "pd"))
    assert doc.title == "second"


def test_future_dated_updates_are_refused(client):
    resp = post(client, shopify_product(updated_at="2099-01-01T00:00:00Z"))
    assert resp.status_code == 400 and "future" in resp.json["error"]


def test_a_pending_doc_with_fields_this_version_does_not_know_still_reads(client, state):
    """Rolling deploy: a newer web process may write fields an older worker does not know."""
    import orjson

    post(client, shopify_product(at=1))
    key = state.keys.product("default", "632910392")
    doc = orjson.loads(state.r.hget(key, "pd"))
    doc["a_field_of_a_later_version"] = {"x": 1}
    assert Product.from_json(orjson.dumps(doc)).title == "IPod Nano"
