"""Shopify as it really is: webhook payloads of API 2023-07 and 2025-10 (fixtures from
Shopify's docs and shopify-api-ruby) mapped column by column, unpublished products removed,
and with an admin token the GraphQL Admin API's truth at sync time and for reconciliation
(pages and bulk), within its cost-based throttle."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from app import runtime
from app.config import ConfigError
from app.core.mapping import map_product
from app.core.state import ledger_balance
from app.platforms.shopify import normalize
from app.platforms.shopify_admin import AdminClient, Throttled, bulk_nodes, to_rest
from tests.constants import SHOPIFY_TOKEN
from tests.fake_shopify import FakeShopify, gql_product, gql_variant
from tests.support import send
from workers.reconcile import reconcile
from workers.sync import Syncer

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"


def fixture(name: str) -> dict:
    """The payload of a fixture file (each file names its source next to the payload)."""
    doc = json.loads((FIXTURES / name).read_text())
    assert doc["source"]
    return doc["payload"]


def row_of(payload: dict, settings) -> dict | None:
    product = normalize(payload, str(payload["id"]))
    return map_product(product, settings.stores["default"]) if product.is_live else None


# -- the mapping, column by column ------------------------------------------------------------


def test_2023_07_payload_maps_column_by_column(settings):
    assert row_of(fixture("products_update_2023-07_ipod_nano.json"), settings) == {
        "internal_id": "632910392",
        "title": "IPod Nano - 8GB",
        "description": "It's the small iPod with one very big idea: Video. Now the world's most "
        "popular music player, available in 4GB and 8GB models, lets you enjoy TV "
        "shows, movies, video podcasts, and more. The larger, brighter display "
        "means amazing picture quality. In six eye-catching colors, iPod nano is "
        "stunning all around. And with models starting at just $149, little "
        "speaks volumes.",
        "price": "199.00",
        "sale_price": "199.00",
        "is_in_stock": "yes",
        "inventory": 100,  # 10 + 20 + 30 + 40, every variant tracked by "shopify"
        "image_big_url": "https://cdn.shopify.com/s/files/1/0005/4838/0009/products/"
        "ipod-nano.png?v=1688596683",
        "guide_url": "https://test-shop.myshopify.com/products/ipod-nano",
        "brand": "Apple",
        "category": "Cult Products",
        "sku": "IPOD2008PINK",
    }
    touch = row_of(fixture("products_update_2023-07_ipod_touch.json"), settings)
    # tracked by a fulfillment app ("shipwire-app") counts as tracked too
    assert (touch["inventory"], touch["is_in_stock"], touch["sku"]) == (13, "yes", "IPOD2009BLACK")
    assert "image_big_url" not in touch


def test_2023_07_stock_rules_with_known_tracking(settings):
    p = fixture("products_update_2023-07_ipod_nano.json")
    for v in p["variants"]:
        v.update(inventory_quantity=0, inventory_policy="deny")
    row = row_of(p, settings)
    assert (row["is_in_stock"], row["inventory"]) == ("no", 0)
    p["variants"][1]["inventory_management"] = None  # untracked: always sellable
    row = row_of(p, settings)
    assert (row["is_in_stock"], row["inventory"]) == ("yes", 0)
    for v in p["variants"]:
        v["inventory_management"] = None
    row = row_of(p, settings)
    assert row["is_in_stock"] == "yes" and "inventory" not in row  # nothing tracked


def test_2025_10_payload_maps_column_by_column(settings):
    payload = fixture("products_create_2025-10_example_t_shirt.json")
    assert all("inventory_management" not in v for v in payload["variants"])
    assert row_of(payload, settings) == {
        "internal_id": "788032119674292922",  # above 2**53: exact
        "title": "Example T-Shirt",
        "description": "An example T-Shirt",
        "price": "24.99",  # compare_at_price above the price: a sale
        "sale_price": "19.99",
        "is_in_stock": "yes",
        "inventory": 125,  # 75 + 50; tracking unknown, counted
        "guide_url": "https://test-shop.myshopify.com/products/example-t-shirt",
        "brand": "Acme",
        "category": "Shirts",
        # no image, no sku (null): not sent, so never "cleared"
    }


def test_2025_10_stock_without_inventory_management(settings):
    """The issue's case: every variant at 0 with policy deny was shown in stock."""
    p = fixture("products_create_2025-10_example_t_shirt.json")
    for v in p["variants"]:
        v["inventory_quantity"] = 0
    row = row_of(p, settings)
    assert (row["is_in_stock"], row["inventory"]) == ("no", 0)
    p["variants"][0].update(inventory_policy="continue", inventory_quantity=-3)  # oversold
    row = row_of(p, settings)
    assert (row["is_in_stock"], row["inventory"]) == ("yes", 0)
    p["variants"][0].update(inventory_policy="deny", inventory_quantity=4)
    row = row_of(p, settings)
    assert (row["is_in_stock"], row["inventory"]) == ("yes", 4)


def test_unpublished_or_inactive_products_are_not_live(settings):
    p = fixture("products_create_2025-10_example_t_shirt.json")
    assert row_of(dict(p, published_at=None), settings) is None
    assert row_of(dict(p, status="draft"), settings) is None
    trimmed = {k: v for k, v in p.items() if k != "published_at"}  # include_fields without it
    assert row_of(trimmed, settings) is not None


def test_unpublishing_deletes_the_row(make_settings, sandbox, webhooks):
    rt = runtime.build(make_settings(personyze_base_url=sandbox.url))
    store, s = webhooks.to(rt.settings), Syncer(rt.settings, rt.state)
    p = fixture("products_create_2025-10_example_t_shirt.json")
    send(store, p)
    assert s.run("default", "788032119674292922") == "written"
    assert [r["internal_id"] for r in sandbox.rows("products")] == ["788032119674292922"]
    send(store, dict(p, published_at=None, updated_at="2022-01-01T00:00:00-05:00"))
    assert s.run("default", "788032119674292922") == "written"
    assert sandbox.rows("products") == []
    assert ledger_balance(rt.state.ledger("default")) == 0


# -- the GraphQL Admin API ----------------------------------------------------------------------


def t_shirt_node(**variant_overrides) -> dict:
    """The 2025-10 fixture's product as the Admin API holds it."""
    node = gql_product(
        788032119674292922,
        title="Example T-Shirt",
        image=None,
        variants=[
            gql_variant(
                642667041472713922, price="19.99", compare="24.99", position=1, **variant_overrides
            ),
            gql_variant(
                757650484644203962, price="19.99", compare="24.99", position=2, **variant_overrides
            ),
        ],
    )
    node.update(
        handle="example-t-shirt",
        descriptionHtml="An example T-Shirt",
        vendor="Acme",
        productType="Shirts",
        tags=["example", "mens", "t-shirt"],
        updatedAt="2021-12-31T19:00:00-05:00",
    )
    for v in node["variants"]["nodes"]:
        v["sku"] = None
    return node


def test_graphql_product_maps_like_its_webhook(settings):
    from app.platforms.shopify_admin import normalize_admin

    pid = "788032119674292922"
    node = t_shirt_node()
    for v, qty in zip(node["variants"]["nodes"], (75, 50), strict=True):
        v["inventoryQuantity"] = qty
    rest = to_rest(node)
    webhook = fixture("products_create_2025-10_example_t_shirt.json")
    assert rest["tags"] == webhook["tags"]  # the REST form, for mapping.add paths
    assert rest["id"] == pid and rest["status"] == "active"
    store = settings.stores["default"]
    assert map_product(normalize_admin(rest, pid), store) == row_of(webhook, settings)
    untracked = normalize_admin(to_rest(t_shirt_node(qty=0, tracked=False)), pid)
    assert (untracked.in_stock, untracked.inventory, untracked.verify_with) == (True, None, None)


def test_sync_reads_the_truth_through_graphql(shop_rt, shop, sandbox, webhooks):
    """An untracked variant at 0 with policy deny: the 2025-10 webhook alone says out of
    stock; the Admin API (`inventoryItem.tracked`, `availableForSale`) says sellable."""
    shop.products[788032119674292922] = t_shirt_node(qty=0, tracked=False)
    p = fixture("products_create_2025-10_example_t_shirt.json")
    for v in p["variants"]:
        v["inventory_quantity"] = 0
    assert row_of(p, shop_rt.settings)["is_in_stock"] == "no"
    send(webhooks.to(shop_rt.settings), p)
    assert Syncer(shop_rt.settings, shop_rt.state).run("default", "788032119674292922") == "written"
    [row] = sandbox.rows("products")
    assert row["is_in_stock"] == "yes" and "inventory" not in row
    [req] = shop.ops("ShopifyProduct")
    assert req["variables"]["id"] == "gid://shopify/Product/788032119674292922"
    assert req["version"] == shop_rt.settings.shopify_api_version == "2025-10"


def test_one_store_call_per_write_and_none_for_unchanged(shop_rt, shop, sandbox, webhooks):
    shop.products[788032119674292922] = t_shirt_node(qty=5)
    store, s = webhooks.to(shop_rt.settings), Syncer(shop_rt.settings, shop_rt.state)
    p = fixture("products_create_2025-10_example_t_shirt.json")
    for n, at in enumerate(
        ("2022-01-01T00:00:00Z", "2022-01-02T00:00:00Z", "2022-01-03T00:00:00Z")
    ):
        for v in p["variants"]:
            v["inventory_quantity"] = 5
        send(store, dict(p, updated_at=at))  # the same content, e.g. an order elsewhere
        assert s.run("default", "788032119674292922") == (
            "written" if n == 0 else "skipped_unchanged"
        )
    assert len(shop.ops("ShopifyProduct")) == 1  # unchanged webhooks never call Shopify
    assert len(sandbox.request_log) == 1


def test_a_webhook_that_disagrees_with_the_truth_is_checked_once(shop_rt, shop, sandbox, webhooks):
    """Untracked at 0/deny: every webhook maps to "out of stock", the Admin API to "in stock".
    Once checked, the same webhook content costs no further store call."""
    shop.products[788032119674292922] = t_shirt_node(qty=0, tracked=False)
    store, s = webhooks.to(shop_rt.settings), Syncer(shop_rt.settings, shop_rt.state)
    p = fixture("products_create_2025-10_example_t_shirt.json")
    for v in p["variants"]:
        v["inventory_quantity"] = 0
    outcomes = []
    for day in range(1, 5):
        send(store, dict(p, updated_at=f"2022-01-0{day}T00:00:00Z"))
        outcomes.append(s.run("default", "788032119674292922"))
    assert outcomes == ["written"] + ["skipped_unchanged"] * 3
    assert len(shop.ops("ShopifyProduct")) == 1
    assert sandbox.rows("products")[0]["is_in_stock"] == "yes"
    p["title"] = "renamed"  # new content is checked again
    shop.products[788032119674292922]["title"] = "renamed"
    send(store, dict(p, updated_at="2022-01-09T00:00:00Z"))
    assert s.run("default", "788032119674292922") == "written"
    assert len(shop.ops("ShopifyProduct")) == 2
    assert ledger_balance(shop_rt.state.ledger("default")) == 0


def test_a_product_gone_from_shopify_is_deleted(shop_rt, shop, sandbox, webhooks):
    store, s = webhooks.to(shop_rt.settings), Syncer(shop_rt.settings, shop_rt.state)
    shop.products[788032119674292922] = t_shirt_node()
    p = fixture("products_create_2025-10_example_t_shirt.json")
    send(store, p)
    assert s.run("default", "788032119674292922") == "written"
    del shop.products[788032119674292922]  # deleted; its delete webhook not yet here
    send(store, dict(p, title="renamed", updated_at="2022-01-02T00:00:00Z"))
    assert s.run("default", "788032119674292922") == "written"
    assert sandbox.rows("products") == []
    assert ledger_balance(shop_rt.state.ledger("default")) == 0


def test_throttled_sync_is_retried_later_without_using_the_budget(shop_rt, shop, sandbox, webhooks):
    shop.products[788032119674292922] = t_shirt_node()
    send(webhooks.to(shop_rt.settings), fixture("products_create_2025-10_example_t_shirt.json"))
    shop.throttle_next = 1
    s = Syncer(shop_rt.settings, shop_rt.state)
    assert s.run("default", "788032119674292922") == "store_throttled"
    state = shop_rt.state.product("default", "788032119674292922")
    assert state.attempts == 0  # not a failed attempt
    due = state.due_at
    assert due is not None
    assert sandbox.rows("products") == []
    time.sleep(max(0.0, due - time.time()))  # the worker would be woken then
    assert s.run("default", "788032119674292922") == "written"
    assert shop.answers == ["throttled", "ok"]


def test_webhook_to_worker_end_to_end_with_the_admin_api(shop_rt, shop, sandbox, webhooks):
    """webhook -> Redis -> dispatcher -> real Celery worker -> GraphQL -> sandbox row."""
    from tests.servers import eventually, syncing

    shop.products[788032119674292922] = t_shirt_node(qty=0, policy="CONTINUE")
    with syncing(shop_rt, concurrency=2):
        p = fixture("products_create_2025-10_example_t_shirt.json")
        send(webhooks.to(shop_rt.settings), p)
        rows = eventually(lambda: sandbox.rows("products"))
    assert rows[0]["internal_id"] == "788032119674292922"
    assert rows[0]["is_in_stock"] == "yes" and int(rows[0]["inventory"]) == 0
    assert len(shop.ops("ShopifyProduct")) == 1


def test_a_bad_admin_token_dead_letters_without_leaking_it(make_settings, sandbox, shop, webhooks):
    rt = runtime.build(
        make_settings(
            personyze_base_url=sandbox.url,
            shopify_admin_token="shpat_wrong_token_value",
            shopify_admin_api_url=shop.url,
        )
    )
    send(webhooks.to(rt.settings), fixture("products_create_2025-10_example_t_shirt.json"))
    assert Syncer(rt.settings, rt.state).run("default", "788032119674292922") == "dead"
    entry = rt.state.dlq_list("default")["788032119674292922"]
    text = json.dumps(entry)
    assert "refused the credentials (401)" in text and "shpat_wrong_token_value" not in text


# -- reconciliation through GraphQL -------------------------------------------------------------


def test_reconcile_by_pages_honours_the_cost_throttle(make_settings, sandbox):
    # A bucket that cannot hold two pages at once: the reader must wait for the restore.
    shop = FakeShopify(bucket=1000.0, restore=4000.0)
    try:
        for i in range(1, 26):  # 40 variants each: a page's actual cost is its requested one
            shop.products[i] = gql_product(
                i,
                title=f"p{i}",
                at=f"2026-01-01T00:00:{i:02d}Z",
                variants=[gql_variant(i * 100 + k, position=k) for k in range(1, 41)],
            )
        shop.products[26] = gql_product(
            26, variants=[gql_variant(2600 + k, position=k) for k in range(1, 46)]
        )  # 45 variants
        rt = runtime.build(
            make_settings(
                personyze_base_url=sandbox.url,
                shopify_admin_token=SHOPIFY_TOKEN,
                shopify_admin_api_url=shop.url,
            )
        )
        counts = reconcile(rt, "default")
        assert counts["listed"] == 26 and counts["accepted_wake"] == 26
        assert len(shop.ops("ShopifyProducts")) == 3  # pages of 10
        assert len(shop.ops("ShopifyProduct")) == 1  # the rest of the 45 variants
        assert "throttled" not in shop.answers and "max_cost" not in shop.answers
        assert {r["version"] for r in shop.requests} == {"2025-10"}
        s = Syncer(rt.settings, rt.state)
        for i in range(1, 27):
            assert s.run("default", str(i)) == "written"
        assert len(sandbox.rows("products")) == 26
        again = reconcile(rt, "default")  # a second pass changes nothing
        assert again.get("duplicate", 0) + again.get("stale", 0) == 26
        assert ledger_balance(rt.state.ledger("default")) == 0
    finally:
        shop.stop()


def test_paged_reads_wait_out_a_throttled_answer(make_settings):
    shop = FakeShopify(restore=1000.0)
    try:
        store = make_settings(
            shopify_admin_token=SHOPIFY_TOKEN, shopify_admin_api_url=shop.url
        ).stores["default"]
        shop.products[1] = gql_product(1)
        shop.throttle_next = 2
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            time.sleep(seconds)

        client = AdminClient(store, wait=True, sleep=sleep)
        assert [n["id"] for n in client.pages()] == ["gid://shopify/Product/1"]
        assert shop.answers == ["throttled", "throttled", "ok"]
        # each throttled answer is sat out: (requested - available) / restoreRate seconds
        assert [round(s, 3) for s in slept if s > 0] == [0.862, 0.862]
        shop.throttle_next = 1
        with pytest.raises(Throttled) as e:  # the worker's client does not wait
            AdminClient(store).product("1")
        assert round(e.value.retry_after, 3) == 0.506
    finally:
        shop.stop()


@pytest.mark.parametrize("grouped", [True, False])
def test_reconcile_by_bulk_operation(sandbox, shop, grouped, shop_settings):
    shop.bulk_grouped = grouped
    for i in range(1, 8):
        shop.products[i] = gql_product(
            i,
            title=f"p{i}",
            variants=[
                gql_variant(i * 100 + k, position=k, price=f"{10 + k}.00", qty=0, policy="DENY")
                for k in range(1, 4)
            ],
        )
    shop.products[8] = gql_product(8, published=False)
    rt = runtime.build(
        shop_settings(
            shopify_bulk_threshold=5,
        )
    )
    counts = reconcile(rt, "default")
    assert counts["listed"] == 8 and counts["accepted_wake"] == 8
    assert len(shop.ops("ShopifyBulkRun")) == 1 and not shop.ops("ShopifyProducts")
    assert len(shop.ops("ShopifyBulkPoll")) == 3  # RUNNING, RUNNING, COMPLETED
    assert all("X-Shopify-Access-Token" not in h for h in shop.downloads)  # token stays home
    s = Syncer(rt.settings, rt.state)
    for i in range(1, 9):
        s.run("default", str(i))
    rows = {r["internal_id"]: r for r in sandbox.rows("products")}
    assert sorted(rows) == [str(i) for i in range(1, 8)]  # 8 is not published
    assert (rows["3"]["price"], rows["3"]["is_in_stock"], int(rows["3"]["inventory"])) == (
        "11.00",
        "no",
        0,
    )


def test_bulk_failures_are_reported(make_settings, shop):
    store = make_settings(shopify_admin_token=SHOPIFY_TOKEN, shopify_admin_api_url=shop.url).stores[
        "default"
    ]
    from app.platforms.fetch import StoreFetchError

    client = AdminClient(store, wait=True, sleep=lambda s: None)
    shop.bulk_user_error = "A bulk query operation for this app and shop is already in progress"
    with pytest.raises(StoreFetchError, match="already in progress"):
        list(client.bulk())
    shop.bulk_user_error, shop.bulk_status = None, "FAILED"
    shop.products[1] = gql_product(1)
    with pytest.raises(StoreFetchError, match="FAILED: INTERNAL_SERVER_ERROR"):
        list(client.bulk())
    shop.products.clear()
    shop.bulk_status = "COMPLETED"
    assert list(client.bulk()) == []  # an empty catalog has no result file


def test_bulk_lines_stream_products_once_complete():
    def line(d):
        return json.dumps(d).encode()

    lines = [
        line({"id": "P1", "variantsCount": {"count": 2}}),
        line({"id": "P2", "variantsCount": {"count": 1}}),
        line({"id": "V21", "__parentId": "P2"}),
    ]
    it = bulk_nodes(
        iter(
            lines
            + [line({"id": "V11", "__parentId": "P1"}), line({"id": "V12", "__parentId": "P1"})]
        )
    )
    first = next(it)  # P2 is complete before P1's variants arrive
    assert first["id"] == "P2" and [v["id"] for v in first["variants"]["nodes"]] == ["V21"]
    second = next(it)
    assert [v["id"] for v in second["variants"]["nodes"]] == ["V11", "V12"]
    assert list(it) == []


def test_api_version_is_validated(make_settings):

    for bad in ("2025-13", "2025-1", "latest", "2023-07"):
        with pytest.raises(ConfigError, match="SHOPIFY_API_VERSION"):
            make_settings(shopify_api_version=bad)
    assert (
        make_settings(shopify_api_version="2026-01").stores["default"].shopify_api_version
        == "2026-01"
    )


def test_webhook_parse_is_unchanged_for_fixtures(webhooks):
    """Both fixtures are accepted by the webhook endpoint as they are."""
    for name in (
        "products_update_2023-07_ipod_nano.json",
        "products_create_2025-10_example_t_shirt.json",
    ):
        resp = webhooks.shopify("products/update", copy.deepcopy(fixture(name)))
        assert resp.status_code == 200


def test_one_api_version_for_every_store_of_a_stores_file(make_settings, tmp_path):
    path = tmp_path / "stores.yaml"
    stores_yaml = (
        "stores:\n  - id: eu\n    shopify_shop_domain: eu.myshopify.com\n"
        "  - id: us\n    shopify_shop_domain: us.myshopify.com\n"
    )
    path.write_text(stores_yaml)
    stores = make_settings(
        stores_file=str(path), shopify_api_version="2026-01", shopify_bulk_threshold=0
    ).stores
    assert {s.shopify_api_version for s in stores.values()} == {"2026-01"}
    assert {s.shopify_bulk_threshold for s in stores.values()} == {0}

    # A store cannot pin its own: refused, not silently overridden.
    path.write_text(stores_yaml + "    shopify_api_version: '2024-07'\n")
    with pytest.raises(ConfigError, match="shopify_api_version is one value for every store"):
        _ = make_settings(stores_file=str(path)).stores
