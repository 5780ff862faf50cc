"""Issue 8.1: a replayed signed body cannot delete or freeze a product.

Shopify and WooCommerce sign only the body; the topic, event ids and `X-Shopify-Triggered-At`
are plain headers anyone holding one signed body can change (README, Security)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app.core.state import ledger_balance
from tests.support import T0, shopify_product, shopify_request, woo_product, woo_request

PID = "632910392"


def shop(client, payload, **kw):
    body, headers = shopify_request(payload, **kw)
    return client.post("/webhooks/shopify", data=body, headers=headers)


def woo(client, payload, **kw):
    body, headers = woo_request(payload, **kw)
    return client.post("/webhooks/woocommerce", data=body, headers=headers)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def us(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def test_shopify_product_body_resent_as_delete_is_refused(client, state):
    assert shop(client, shopify_product(at=5)).status_code == 200
    resp = shop(
        client,
        shopify_product(at=5),
        topic="products/delete",
        triggered_at=iso(datetime.now(UTC) + timedelta(hours=23)),
    )
    assert resp.status_code == 400
    assert "only the product id" in resp.json["error"]
    st = state.product_state("default", PID)
    assert st["pk"] == "u"
    led = state.ledger("default")
    assert led["received"] == 1 and ledger_balance(led) == 0


def test_shopify_delete_dated_ahead_by_its_unsigned_header_cannot_freeze(client, state):
    """A genuine `{"id"}` delete body with Triggered-At 23 h ahead: the delete is recorded at
    most at our receipt time, so the store's next real change wins."""
    shop(client, shopify_product(at=5))
    before = time.time()
    resp = shop(
        client,
        {"id": int(PID)},
        topic="products/delete",
        triggered_at=iso(datetime.now(UTC) + timedelta(hours=23)),
    )
    after = time.time()
    assert resp.json["status"] == "accepted"
    st = state.product_state("default", PID)
    assert st["pk"] == "d" and int(before * 1e6) <= int(st["pv"]) <= int(after * 1e6)
    nxt = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    resp = shop(client, shopify_product(updated_at=iso(nxt), title="back"))
    assert resp.json["status"] == "accepted"
    assert state.product_state("default", PID)["pk"] == "u"
    assert ledger_balance(state.ledger("default")) == 0


def test_shopify_tie_break_never_dates_past_receipt(client, state):
    """`updated_at` one whole second ahead of us (store clock skew): the unsigned
    Triggered-At cannot add its sub-second part on top of it."""
    ahead = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    resp = shop(
        client,
        shopify_product(updated_at=iso(ahead)),
        triggered_at=iso(ahead + timedelta(microseconds=900_000)),
    )
    assert resp.status_code == 200
    assert int(state.product_state("default", PID)["pv"]) == us(ahead)


def test_shopify_tie_break_still_orders_same_second_changes(client, state):
    second = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    shop(
        client,
        shopify_product(updated_at=iso(second)),
        triggered_at=iso(second + timedelta(microseconds=100_000)),
    )
    resp = shop(
        client,
        shopify_product(updated_at=iso(second), title="v2"),
        triggered_at=iso(second + timedelta(microseconds=300_000)),
    )
    assert resp.json["status"] == "accepted"
    assert int(state.product_state("default", PID)["pv"]) == us(second) + 300_000


def test_woo_product_body_resent_as_delete_is_refused(client, state):
    assert woo(client, woo_product(at=3)).status_code == 200
    resp = woo(client, woo_product(at=3), topic="product.deleted")
    assert resp.status_code == 400 and "only the product id" in resp.json["error"]
    assert state.product_state("default", "77")["pk"] == "u"
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_delete_does_not_outrank_the_stores_next_change(client, state):
    """The product was changed at T0+3 (store clock, whole seconds); its delete reaches us
    long after (queue lag). A restore the store made at T0+4 must win over that delete."""
    woo(client, woo_product(at=3))
    assert woo(client, {"id": 77}, topic="product.deleted").json["status"] == "accepted"
    st = state.product_state("default", "77")
    assert st["pk"] == "d"
    assert int(st["pv"]) == us(T0 + timedelta(seconds=3)) + 999_999  # after all of T0+3
    resp = woo(client, woo_product(at=4), topic="product.restored")
    assert resp.json["status"] == "accepted"
    assert state.product_state("default", "77")["pk"] == "u"
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_delete_of_an_unknown_product_is_ordered_by_arrival(client, state):
    before = time.time()
    assert woo(client, {"id": 99}, topic="product.deleted").json["status"] == "accepted_wake"
    assert int(state.product_state("default", "99")["pv"]) >= int(before * 1e6)
