"""WooCommerce and BigCommerce payloads from the platforms' own docs (tests/fixtures/, each with
its source), through the real app, Redis, the worker and fake store APIs into the sandbox; the
Personyze row asserted column by column."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app import runtime
from app.core.state import ledger_balance
from tests.constants import BC_HASH, WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET
from tests.support import sync_due
from workers.reconcile import reconcile

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """A fixture's payload (its `source` says where it comes from)."""
    data = json.loads((FIXTURES / name).read_text())
    assert data["source"]
    return copy.deepcopy(data["payload"])


def the_row(sandbox) -> dict[str, Any]:
    [row] = sandbox.rows("products")
    return {k: v for k, v in row.items() if k != "id"}


# -- WooCommerce ----------------------------------------------------------------------------


def woo_runtime(make_settings, sandbox, woo, *, keys: bool):
    extra = (
        {
            "woocommerce_consumer_key": WOO_CONSUMER_KEY,
            "woocommerce_consumer_secret": WOO_CONSUMER_SECRET,
        }
        if keys
        else {}
    )
    return runtime.build(
        make_settings(personyze_base_url=sandbox.url, woocommerce_url=woo.url, **extra)
    )


@pytest.fixture
def deliver_woo(webhooks, woo):
    """Deliver a WooCommerce webhook from the fake site to `rt`'s app; what the app did with
    it, after asserting it was taken (200)."""

    def deliver(rt, payload, topic="product.updated") -> str:
        site = webhooks.to(rt.settings)
        return site.woocommerce(topic, payload).status

    return deliver


def serve_variable(woo) -> None:
    woo.products[22] = fixture("woocommerce/product_variable_22_on_sale.json")
    woo.variations[22] = fixture("woocommerce/variations_of_22.json")


SHIP_YOUR_IDEA = {
    "internal_id": "22",
    "title": "Ship Your Idea",
    "description": "Pellentesque habitant morbi tristique senectus et netus et malesuada fames ac "
    "turpis egestas. Vestibulum tortor quam, feugiat vitae, ultricies eget, tempor "
    "sit amet, ante. Donec eu libero sit amet quam egestas semper. Aenean ultricies "
    "mi vitae est. Mauris placerat eleifend leo.",
    "is_in_stock": "yes",
    "image_big_url": "https://example.com/wp-content/uploads/2017/03/T_4_front-11.jpg",
    "guide_url": "https://example.com/product/ship-your-idea-22/",
    "category": "Clothing",
}


def test_simple_product_from_the_docs_column_by_column(make_settings, sandbox, woo, deliver_woo):
    rt = woo_runtime(make_settings, sandbox, woo, keys=False)
    assert deliver_woo(rt, fixture("woocommerce/product_simple_794.json")) == "accepted_wake"
    assert sync_due(rt) == ["written"]
    assert the_row(sandbox) == {
        "internal_id": "794",
        "title": "Premium Quality",
        "description": "Pellentesque habitant morbi tristique senectus et netus et malesuada fames "
        "ac turpis egestas. Vestibulum tortor quam, feugiat vitae, ultricies eget, "
        "tempor sit amet, ante. Donec eu libero sit amet quam egestas semper. "
        "Aenean ultricies mi vitae est. Mauris placerat eleifend leo.",
        "price": "21.99",
        "sale_price": "21.99",  # not on sale: both the price
        "is_in_stock": "yes",
        # manage_stock false: no inventory; sku "": not sent
        "image_big_url": "https://example.com/wp-content/uploads/2017/03/T_2_front-4.jpg",
        "guide_url": "https://example.com/product/premium-quality-19/",
        "category": "Clothing",
    }
    assert woo.requests == []  # a simple product's webhook carries its whole state


def test_variable_product_on_sale_is_priced_from_its_variations(
    make_settings, sandbox, woo, deliver_woo
):
    serve_variable(woo)
    rt = woo_runtime(make_settings, sandbox, woo, keys=True)
    parent = fixture("woocommerce/product_variable_22_on_sale.json")
    assert deliver_woo(rt, parent) == "accepted_wake"
    assert woo.requests == []  # the webhook only records a refresh: one Redis round trip
    assert sync_due(rt) == ["written"]
    assert the_row(sandbox) == dict(
        SHIP_YOUR_IDEA,
        price="9.00",  # lowest regular price of the variations a customer can buy
        sale_price="7.50",  # lowest active price (732 on sale; 734 is disabled at 5.00)
    )
    assert woo.requests == [
        "/wp-json/wc/v3/products/22",
        "/wp-json/wc/v3/products/22/variations?per_page=100&page=1",
    ]
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_variable_product_without_api_keys_shows_its_lowest_price(
    make_settings, sandbox, woo, deliver_woo
):
    rt = woo_runtime(make_settings, sandbox, woo, keys=False)
    assert (
        deliver_woo(rt, fixture("woocommerce/product_variable_22_on_sale.json")) == "accepted_wake"
    )
    assert sync_due(rt) == ["written"]
    # The parent alone cannot tell the regular price: the lowest active price, no sale.
    assert the_row(sandbox) == dict(SHIP_YOUR_IDEA, price="7.50", sale_price="7.50")
    assert woo.requests == []


def test_variation_webhook_reprices_the_parent(make_settings, sandbox, woo, deliver_woo):
    serve_variable(woo)
    rt = woo_runtime(make_settings, sandbox, woo, keys=True)
    assert deliver_woo(rt, fixture("woocommerce/variation_733_webhook.json")) == "accepted_wake"
    assert sync_due(rt) == ["written"]
    assert the_row(sandbox) == dict(SHIP_YOUR_IDEA, price="9.00", sale_price="7.50")


def test_sale_ends_by_sending_equal_prices(make_settings, sandbox, woo, deliver_woo):
    serve_variable(woo)
    rt = woo_runtime(make_settings, sandbox, woo, keys=True)
    parent = fixture("woocommerce/product_variable_22_on_sale.json")
    deliver_woo(rt, parent)
    sync_due(rt)
    for v in woo.variations[22]:  # the sale ends: every variation back at its regular price
        v.update(price=v["regular_price"], sale_price="", on_sale=False)
    woo.products[22].update(on_sale=False, price="9.00")
    parent.update(on_sale=False, price="9.00", date_modified_gmt="2017-03-23T20:04:12")
    assert deliver_woo(rt, parent) == "accepted_wake"
    assert sync_due(rt) == ["written"]
    row = the_row(sandbox)
    assert (row["price"], row["sale_price"]) == ("9.00", "9.00")


def test_variations_are_read_page_by_page(make_settings, sandbox, woo, deliver_woo):
    serve_variable(woo)
    template = woo.variations[22][0]
    woo.variations[22] = [
        dict(
            template,
            id=1000 + i,
            price=f"{50 + i}.00",
            regular_price=f"{60 + i}.00",
            sale_price=f"{50 + i}.00",
            on_sale=True,
        )
        for i in range(150)
    ]
    woo.variations[22][-1].update(price="3.00", regular_price="4.00", sale_price="3.00")
    rt = woo_runtime(make_settings, sandbox, woo, keys=True)
    deliver_woo(rt, fixture("woocommerce/product_variable_22_on_sale.json"))
    assert sync_due(rt) == ["written"]
    row = the_row(sandbox)
    assert (row["price"], row["sale_price"]) == ("4.00", "3.00")  # from the second page
    assert sum("/variations?" in r for r in woo.requests) == 2


def test_managed_variation_stock_is_summed(make_settings, sandbox, woo, deliver_woo):
    serve_variable(woo)
    woo.variations[22][0].update(manage_stock=True, stock_quantity=4)
    woo.variations[22][1].update(manage_stock=True, stock_quantity=2)
    woo.variations[22][2].update(manage_stock=True, stock_quantity=50)  # disabled: not counted
    rt = woo_runtime(make_settings, sandbox, woo, keys=True)
    deliver_woo(rt, fixture("woocommerce/product_variable_22_on_sale.json"))
    sync_due(rt)
    assert int(the_row(sandbox)["inventory"]) == 6


def test_reconcile_prices_variable_products_from_their_variations(make_settings, sandbox, woo):
    serve_variable(woo)
    woo.products[794] = fixture("woocommerce/product_simple_794.json")
    rt = woo_runtime(make_settings, sandbox, woo, keys=True)
    assert reconcile(rt, "default")["listed"] == 2
    assert sync_due(rt) == ["written", "written"]
    rows = {r["internal_id"]: r for r in sandbox.rows("products")}
    assert (rows["22"]["price"], rows["22"]["sale_price"]) == ("9.00", "7.50")
    assert (rows["794"]["price"], rows["794"]["sale_price"]) == ("21.99", "21.99")
    assert sum("/variations?" in r for r in woo.requests) == 1  # only the variable product


# -- BigCommerce ----------------------------------------------------------------------------


@pytest.fixture
def deliver_bc(webhooks):
    """Deliver a BigCommerce webhook (a docs fixture: its `{store_hash}` filled in) to `rt`'s
    app, signed with the app's client secret."""

    def deliver(rt, payload: dict[str, Any]):
        payload = json.loads(json.dumps(payload).replace("{store_hash}", BC_HASH))
        return webhooks.to(rt.settings).bigcommerce(payload)

    return deliver


def updated_webhook(pid: int, digest: str) -> dict[str, Any]:
    return {
        "scope": "store/product/updated",
        "store_id": "1025646",
        "data": {"type": "product", "id": pid},
        "hash": digest,
        "created_at": 1561479233,
        "producer": f"stores/{BC_HASH}",
    }


def serve_bc(bc) -> None:
    bc.products[192] = fixture("bigcommerce/product_192_with_variants_images.json")
    assert bc.store_info == fixture("bigcommerce/store_information.json")


def test_docs_webhooks_fetch_the_product_column_by_column(bc_rt, sandbox, bc, deliver_bc):
    serve_bc(bc)
    rt = bc_rt()  # a Shopify domain is configured (conftest)
    updated = fixture("bigcommerce/store_product_updated.json")
    updated["data"]["id"] = 192
    resp = deliver_bc(rt, updated)
    assert resp.status_code == 200 and resp.status == "accepted_wake"
    assert sync_due(rt) == ["written"]
    row = the_row(sandbox)
    description = row.pop("description")
    assert description.startswith("Lorem ipsum dolor sit amet") and "<" not in description
    assert int(row.pop("inventory")) == 3  # variant tracking; the disabled variant's 9 not counted
    assert row == {
        "internal_id": "192",
        "title": "Smith Journal 13",
        "price": "7.95",
        "sale_price": "6.5",  # lower than the price: a sale
        "is_in_stock": "yes",
        "image_big_url": "https://cdn8.bigcommerce.com/s-id30h7ohwf/products/158/images/382/"
        "foglinenbeigestripetowel1b_1024x1024__83011__60806.1534344511.560.850"
        ".jpg?c=2",  # the thumbnail
        "guide_url": "https://my-awesome.store/smith-journal-13/",  # the store's secure_url
    }  # sku "" is not sent; never the configured Shopify shop's domain


def test_docs_created_and_deleted_webhooks(bc_rt, sandbox, bc, deliver_bc):
    serve_bc(bc)
    bc.products[205] = dict(bc.products[192], id=205)
    rt = bc_rt()
    assert (
        deliver_bc(rt, fixture("bigcommerce/store_product_created.json")).status == "accepted_wake"
    )
    assert sync_due(rt) == ["written"]
    assert [r["internal_id"] for r in sandbox.rows("products")] == ["205"]
    deleted = fixture("bigcommerce/store_product_deleted.json")
    deleted["hash"] = "another-event"
    assert deliver_bc(rt, deleted).status == "accepted_wake"
    assert sync_due(rt) == ["written"]
    assert sandbox.rows("products") == []
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_docs_product_without_sale_or_tracking(bc_rt, sandbox, bc, deliver_bc):
    bc.products[174] = fixture("bigcommerce/product_174.json")["data"]
    rt = bc_rt(storefront_domain="shop.example.com")
    deliver_bc(rt, updated_webhook(174, "h174"))
    assert sync_due(rt) == ["written"]
    row = the_row(sandbox)
    assert row.pop("description").startswith("Lorem ipsum")
    assert row == {
        "internal_id": "174",
        "title": "1L Le Parfait Jar",
        "price": "7.95",
        "sale_price": "7.95",  # sale_price 0 means no sale
        "is_in_stock": "yes",  # inventory_tracking none: always sellable, no inventory sent
        "guide_url": "https://shop.example.com/all/1l-le-parfait-jar/",  # STOREFRONT_DOMAIN
    }
    assert not any("/v2/store" in r for r in bc.requests)  # not needed with STOREFRONT_DOMAIN


def test_store_information_is_read_once_per_process(bc_rt, sandbox, bc, deliver_bc):
    serve_bc(bc)
    bc.products[193] = dict(bc.products[192], id=193, custom_url={"url": "/other/"})
    rt = bc_rt()
    for pid in (192, 193):
        deliver_bc(rt, updated_webhook(pid, f"h{pid}"))
    assert sync_due(rt) == ["written", "written"]
    assert {r["guide_url"] for r in sandbox.rows("products")} == {
        "https://my-awesome.store/smith-journal-13/",
        "https://my-awesome.store/other/",
    }
    assert sum(r.endswith("/v2/store") for r in bc.requests) == 1


def test_without_the_information_scope_rows_have_no_guide_url(bc_rt, sandbox, bc, deliver_bc):
    """Never another platform's domain: a token that may not read the store information
    (403) writes rows without guide_url, although a Shopify shop domain is configured."""
    serve_bc(bc)
    bc.path_status[f"/stores/{BC_HASH}/v2/store"] = 403
    rt = bc_rt()
    deliver_bc(rt, updated_webhook(192, "h1"))
    assert sync_due(rt) == ["written"]
    assert "guide_url" not in the_row(sandbox)


def test_store_information_outage_is_retried(bc_rt, sandbox, bc, deliver_bc):
    serve_bc(bc)
    bc.path_status[f"/stores/{BC_HASH}/v2/store"] = 502
    rt = bc_rt()
    deliver_bc(rt, updated_webhook(192, "h1"))
    assert sync_due(rt) == ["retry"]  # not written without its URL, not dead either
    assert sandbox.rows("products") == []


def test_reconcile_lists_bigcommerce_with_the_store_url(bc_rt, sandbox, bc):
    serve_bc(bc)
    bc.products[192]["date_modified"] = "2026-01-01T00:00:00+00:00"
    rt = bc_rt()
    assert reconcile(rt, "default")["listed"] == 1
    assert sync_due(rt) == ["written"]
    assert the_row(sandbox)["guide_url"] == "https://my-awesome.store/smith-journal-13/"
