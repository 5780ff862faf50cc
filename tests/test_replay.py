"""Issue 8.1: a replayed signed body cannot delete or freeze a product.

Shopify and WooCommerce sign only the body; the topic, event ids and `X-Shopify-Triggered-At`
are plain headers anyone holding one signed body can change (README, Security)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app.core.state import ledger_balance
from tests.constants import T0
from tests.support import shopify_product, woo_product

PID = "632910392"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def us(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def test_shopify_product_body_resent_as_delete_is_refused(webhooks, state):
    assert webhooks.shopify("products/update", shopify_product(at=5)).status_code == 200
    resp = webhooks.shopify(
        "products/delete",
        shopify_product(at=5),
        triggered_at=iso(datetime.now(UTC) + timedelta(hours=23)),
    )
    assert resp.status_code == 400
    assert "only the product id" in resp.json["error"]
    assert state.product("default", PID).pending_kind == "upsert"
    led = state.ledger("default")
    assert led["received"] == 1 and ledger_balance(led) == 0


def test_shopify_delete_dated_ahead_by_its_unsigned_header_cannot_freeze(webhooks, state):
    """A genuine `{"id"}` delete body with Triggered-At 23 h ahead: the delete is recorded at
    most at our receipt time, so the store's next real change wins."""
    webhooks.shopify("products/update", shopify_product(at=5))
    before = time.time()
    resp = webhooks.shopify(
        "products/delete",
        {"id": int(PID)},
        triggered_at=iso(datetime.now(UTC) + timedelta(hours=23)),
    )
    after = time.time()
    assert resp.status == "accepted"
    st = state.product("default", PID)
    assert st.pending_kind == "delete"
    assert int(before * 1e6) <= st.pending_version <= int(after * 1e6)
    nxt = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    resp = webhooks.shopify("products/update", shopify_product(updated_at=iso(nxt), title="back"))
    assert resp.status == "accepted"
    assert state.product("default", PID).pending_kind == "upsert"
    assert ledger_balance(state.ledger("default")) == 0


def test_shopify_tie_break_never_dates_past_receipt(webhooks, state):
    """`updated_at` one whole second ahead of us (store clock skew): the unsigned
    Triggered-At cannot add its sub-second part on top of it."""
    ahead = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    resp = webhooks.shopify(
        "products/update",
        shopify_product(updated_at=iso(ahead)),
        triggered_at=iso(ahead + timedelta(microseconds=900_000)),
    )
    assert resp.status_code == 200
    assert state.product("default", PID).pending_version == us(ahead)


def test_shopify_tie_break_still_orders_same_second_changes(webhooks, state):
    second = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    webhooks.shopify(
        "products/update",
        shopify_product(updated_at=iso(second)),
        triggered_at=iso(second + timedelta(microseconds=100_000)),
    )
    resp = webhooks.shopify(
        "products/update",
        shopify_product(updated_at=iso(second), title="v2"),
        triggered_at=iso(second + timedelta(microseconds=300_000)),
    )
    assert resp.status == "accepted"
    assert state.product("default", PID).pending_version == us(second) + 300_000


def test_woo_product_body_resent_as_delete_is_refused(webhooks, state):
    assert webhooks.woocommerce("product.updated", woo_product(at=3)).status_code == 200
    resp = webhooks.woocommerce("product.deleted", woo_product(at=3))
    assert resp.status_code == 400 and "only the product id" in resp.json["error"]
    assert state.product("default", "77").pending_kind == "upsert"
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_delete_does_not_outrank_the_stores_next_change(webhooks, state):
    """The product was changed at T0+3 (store clock, whole seconds); its delete reaches us
    long after (queue lag). A restore the store made at T0+4 must win over that delete."""
    webhooks.woocommerce("product.updated", woo_product(at=3))
    assert webhooks.woocommerce("product.deleted", {"id": 77}).status == "accepted"
    st = state.product("default", "77")
    assert st.pending_kind == "delete"
    assert st.pending_version == us(T0 + timedelta(seconds=3)) + 999_999  # after all of T0+3
    resp = webhooks.woocommerce("product.restored", woo_product(at=4))
    assert resp.status == "accepted"
    assert state.product("default", "77").pending_kind == "upsert"
    assert ledger_balance(state.ledger("default")) == 0


def test_woo_delete_of_an_unknown_product_is_ordered_by_arrival(webhooks, state):
    before = time.time()
    assert webhooks.woocommerce("product.deleted", {"id": 99}).status == "accepted_wake"
    assert state.product("default", "99").pending_version >= int(before * 1e6)
