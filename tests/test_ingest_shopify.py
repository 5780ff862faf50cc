"""Shopify deliveries through the real Flask app into a real Redis."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.core.model import Product
from app.core.state import ledger_balance
from tests.constants import SHOPIFY_SECRET, SHOPIFY_SECRET_2
from tests.support import shopify_product, ts

PID = "632910392"


def update(webhooks, payload, **signing):
    return webhooks.shopify("products/update", payload, **signing)


def test_update_is_recorded_as_pending_and_due(webhooks, state):
    resp = update(webhooks, shopify_product(at=5))
    assert resp.status_code == 200
    assert resp.status == "accepted_wake"
    st = state.product("default", PID)
    assert st.pending_kind == "upsert"
    assert st.due_at is not None and st.synced_version is None
    assert state.due_count("default") == 1
    led = state.ledger("default")
    assert led["received"] == 1 and led["pending"] == 1 and ledger_balance(led) == 0


def test_pending_doc_is_the_normalized_product(webhooks, state):
    update(webhooks, shopify_product(at=5))
    p = Product.from_json(state.product("default", PID).pending_doc)
    assert p.id == PID
    assert str(p.sale_price) == "199.00" and str(p.price) == "199.00"  # lowest variant, no sale
    assert p.in_stock is True and p.inventory == 10
    assert p.sku == "IPOD-PINK" and p.brand == "Apple" and p.category == "Cult Products"


@pytest.mark.parametrize("secret", [SHOPIFY_SECRET, SHOPIFY_SECRET_2])
def test_rotated_secrets_both_verify(webhooks, secret):
    assert update(webhooks, shopify_product(), secret=secret).status_code == 200


def test_wrong_secret_tampered_body_missing_header_are_401(webhooks, state):
    assert update(webhooks, shopify_product(), secret="nope").status_code == 401
    signed = webhooks.shopify_delivery("products/update", shopify_product())
    tampered = replace(signed, body=signed.body.replace(b"IPod", b"IPad"))
    assert webhooks.post(tampered).status_code == 401
    unsigned = signed.with_headers(X_Shopify_Hmac_Sha256=None)
    assert webhooks.post(unsigned).status_code == 401
    garbled = signed.with_headers(X_Shopify_Hmac_Sha256="not base64!!")
    assert webhooks.post(garbled).status_code == 401
    assert state.ledger("default")["received"] == 0


def test_unknown_shop_is_401(webhooks):
    assert update(webhooks, shopify_product(), shop="other.myshopify.com").status_code == 401


def test_duplicate_event_id_changes_nothing(webhooks, state):
    payload = shopify_product(at=5)
    assert update(webhooks, payload, event_id="e-1").status == "accepted_wake"
    before = state.product("default", PID)
    assert update(webhooks, payload, event_id="e-1").status == "duplicate"
    assert state.product("default", PID) == before
    assert before.deliveries == 1
    led = state.ledger("default")
    assert led["duplicates"] == 1 and ledger_balance(led) == 0


def test_out_of_order_older_update_is_stale(webhooks, state):
    update(webhooks, shopify_product(at=10, title="new"))
    assert update(webhooks, shopify_product(at=5, title="old")).status == "stale"
    doc = Product.from_json(state.product("default", PID).pending_doc)
    assert doc.title == "new"
    led = state.ledger("default")
    assert led["stale"] == 1 and led["pending"] == 1 and ledger_balance(led) == 0


def test_newer_update_coalesces_into_pending(webhooks, state):
    update(webhooks, shopify_product(at=1))
    resp = update(webhooks, shopify_product(at=2, title="v2"))
    assert resp.status == "accepted"  # already due: no second wake-up
    led = state.ledger("default")
    assert led["coalesced"] == 1 and led["pending"] == 1 and ledger_balance(led) == 0


def test_delete_then_late_update_is_stale(webhooks, state):
    update(webhooks, shopify_product(at=1))
    resp = webhooks.shopify("products/delete", {"id": 632910392}, triggered_at=ts(20))
    assert resp.status == "accepted"
    assert state.product("default", PID).pending_kind == "delete"
    # Shopify retries carry the original payload: an update from before the delete.
    assert update(webhooks, shopify_product(at=10)).status == "stale"
    assert state.product("default", PID).pending_kind == "delete"


def test_delete_needs_only_an_id(webhooks):
    resp = webhooks.shopify("products/delete", {"id": 1})
    assert resp.status_code == 200


def test_ids_above_2_53_stay_exact(webhooks, state):
    big = 788032119674292922
    update(webhooks, shopify_product(pid=big))
    assert state.product("default", str(big)).pending_kind == "upsert"


@pytest.mark.parametrize(
    "topic", ["orders/create", "customers/redact", "shop/redact", "customers/data_request", ""]
)
def test_other_and_compliance_topics_are_200_ignored(webhooks, state, topic):
    resp = webhooks.shopify(topic, {"shop_id": 1, "shop_domain": "x"})
    assert resp.status_code == 200 and resp.status == "ignored"
    led = state.ledger("default")
    assert led["ignored"] == 1 and ledger_balance(led) == 0


def test_compliance_topic_with_bad_hmac_is_401(webhooks):
    assert webhooks.shopify("shop/redact", {"shop_id": 1}, secret="bad").status_code == 401


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
def test_malformed_bodies_are_400_and_leave_no_state(webhooks, r, prefix, body, why):
    resp = update(webhooks, body)
    assert resp.status_code == 400
    assert why in resp.json["error"]
    assert list(r.scan_iter(f"{prefix}:*:P:*")) == []


def test_body_over_limit_is_413(make_settings, webhooks):
    small = webhooks.to(make_settings(max_body_bytes=1024))
    resp = update(small, shopify_product(title="x" * 2000))
    assert resp.status_code == 413


def test_nanosecond_timestamps_and_offsets_order_correctly(webhooks):
    update(webhooks, shopify_product(updated_at="2026-03-11T20:54:30.516267807Z"))
    # Same instant written with an offset, one microsecond earlier: stale.
    resp = update(webhooks, shopify_product(updated_at="2026-03-11T15:54:30.516266-05:00"))
    assert resp.status == "stale"
    resp = update(webhooks, shopify_product(updated_at="2026-03-11T15:54:30.516268-05:00"))
    assert resp.status == "accepted"


def test_response_never_echoes_the_secret(webhooks):
    resp = update(webhooks, shopify_product(), secret="nope")
    assert "shpss" not in resp.text
    assert json.loads(resp.text)["status"] == "unauthorized"


def test_two_changes_in_one_second_are_ordered_by_triggered_at(webhooks, state):
    first = shopify_product(updated_at="2026-03-11T20:54:30Z", title="first")
    second = shopify_product(updated_at="2026-03-11T20:54:30Z", title="second")
    resp = update(webhooks, second, triggered_at="2026-03-11T20:54:30.700000001Z")
    assert resp.status == "accepted_wake"
    # the earlier change arrives late: same updated_at, earlier trigger -> stale
    resp = update(webhooks, first, triggered_at="2026-03-11T20:54:30.200Z")
    assert resp.status == "stale"
    doc = Product.from_json(state.product("default", PID).pending_doc)
    assert doc.title == "second"


def test_future_dated_updates_are_refused(webhooks):
    resp = update(webhooks, shopify_product(updated_at="2099-01-01T00:00:00Z"))
    assert resp.status_code == 400 and "future" in resp.json["error"]


def test_a_pending_doc_with_fields_this_version_does_not_know_still_reads(webhooks, state):
    """Rolling deploy: a newer web process may write fields an older worker does not know."""
    import orjson

    update(webhooks, shopify_product(at=1))
    doc = orjson.loads(state.product("default", PID).pending_doc)
    doc["a_field_of_a_later_version"] = {"x": 1}
    assert Product.from_json(orjson.dumps(doc)).title == "IPod Nano"
