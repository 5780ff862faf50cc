"""Shopify through the GraphQL Admin API: store calls per Personyze write, and the catalog read.

  (i)  a trace of products/update webhooks (most carry no visible change: Shopify fires one on
       every order of a tracked product) synced with SHOPIFY_ADMIN_TOKEN set: how many GraphQL
       calls the worker makes per Personyze write, against one call per webhook had every
       Shopify webhook been recorded as a refresh;
  (ii) the bulk path's own cost: 100,000 products (3 variants each) as bulk JSONL lines ->
       listed products (what reconcile() ingests), products per second on this machine; and
       the paged path's time for the same catalog at Shopify's restore rates, from the actual
       cost per page the fake charges by Shopify's published rules.

    .venv/bin/python bench/shopify.py [--quick]

Starts its own redis-server on a free port (never 6379), the Personyze sandbox and the fake
Shopify GraphQL API of the tests, in this process.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from app import create_app, runtime
from app.config import load_settings
from app.platforms.catalog import _item
from app.platforms.shopify_admin import bulk_nodes, normalize_admin, to_rest
from bench._common import tree_state
from sandbox import Sandbox
from tests.conftest import SANDBOX_KEY, SHOP, SHOPIFY_SECRET, OwnRedis
from tests.fake_shopify import SHOPIFY_TOKEN, FakeShopify, gql_product, gql_variant
from tests.support import shopify_request
from workers.sync import Syncer


def webhook(pid: int, qty: int, second: int) -> dict:
    return {
        "id": pid,
        "title": f"p{pid}",
        "handle": f"product-{pid}",
        "status": "active",
        "body_html": "<p>It's <b>small</b>.</p>",
        "vendor": "Apple",
        "product_type": "Cult Products",
        "tags": "Emotive, Flash Memory",
        "published_at": "2025-01-01T00:00:00Z",
        "updated_at": f"2026-01-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
        "variants": [
            {
                "id": pid * 10 + 1,
                "sku": f"SKU-{pid}",
                "price": "199.00",
                "compare_at_price": None,
                "inventory_quantity": qty,
                "inventory_policy": "deny",
                "position": 1,
            }
        ],
        "images": [{"src": "https://cdn.shopify.com/ipod.png"}],
    }


def calls_per_write(n_products: int, n_webhooks: int) -> None:
    rng = random.Random(7)
    server = OwnRedis(Path(tempfile.mkdtemp()) / "redis")
    sandbox = Sandbox(api_key=SANDBOX_KEY, port=0).start()
    shop = FakeShopify()
    try:
        settings = load_settings(
            redis_url=server.url,
            key_prefix="bench-shopify",
            personyze_api_key=SANDBOX_KEY,
            personyze_base_url=sandbox.url,
            personyze_rate_limit=100_000,
            shopify_webhook_secret=SHOPIFY_SECRET,
            shopify_shop_domain=SHOP,
            shopify_admin_token=SHOPIFY_TOKEN,
            shopify_admin_api_url=shop.url,
            product_cooldown_seconds=0,
        )
        rt = runtime.build(settings)
        web = create_app(settings).test_client()
        syncer = Syncer(settings, rt.state)
        qty = {pid: 20 for pid in range(1, n_products + 1)}
        # a quarter of the products have an untracked variant at 0/deny: the webhook alone
        # reads out of stock, the Admin API says sellable (the verify path's worst case)
        untracked = set(range(1, n_products + 1, 4))
        for second in range(1, n_webhooks + 1):
            pid = rng.randint(1, n_products)
            if rng.random() < 0.3 and pid not in untracked:  # a visible stock change
                qty[pid] = max(0, qty[pid] + rng.choice((-3, -1, 2, 5)))
            q = 0 if pid in untracked else qty[pid]
            shop.products[pid] = gql_product(
                pid,
                title=f"p{pid}",
                variants=[
                    gql_variant(pid * 10 + 1, sku=f"SKU-{pid}", qty=q, tracked=pid not in untracked)
                ],
            )
            body, headers = shopify_request(webhook(pid, q, second))
            assert web.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
            syncer.run("default", str(pid))
        calls = len(shop.ops("ShopifyProduct"))
        writes = len(sandbox.request_log)
        ledger = rt.state.ledger("default")
        print(
            f"(i) {n_webhooks} webhooks, {n_products} products: {writes} Personyze writes, "
            f"{calls} GraphQL calls ({calls / max(writes, 1):.2f} per write; a refresh per "
            f"webhook would make {n_webhooks}, {n_webhooks / max(writes, 1):.2f} per write); "
            f"skipped_unchanged {ledger['skipped_unchanged']}"
        )
    finally:
        shop.stop()
        sandbox.stop()
        server.stop()


def bulk_read(n_products: int) -> None:
    lines = []
    for pid in range(1, n_products + 1):
        node = gql_product(
            pid, variants=[gql_variant(pid * 10 + k, position=k) for k in range(1, 4)]
        )
        variants = node.pop("variants")["nodes"]
        node["variantsCount"] = {"count": len(variants)}
        lines.append(orjson.dumps(node))
        lines += [orjson.dumps(dict(v, __parentId=node["id"])) for v in variants]
    t0 = time.perf_counter()
    n = 0
    for node in bulk_nodes(iter(lines)):
        item = _item("shopify", to_rest(node), normalize_admin, "updated_at")
        assert not isinstance(item, Exception)
        n += 1
    took = time.perf_counter() - t0
    print(
        f"(ii) bulk JSONL -> listed products: {n} products ({len(lines)} lines) in "
        f"{took:.1f} s = {n / took:,.0f} products/s on this machine"
    )
    # paged: a page of 10 products with 3 variants costs 2 + 10 * (1 + 3 + 2 + 2 * 3) = 122
    # points (actual; requested 862); pages run at the restore rate once the bucket is empty
    for plan, rate in (("Standard", 100), ("Advanced", 200), ("Plus", 1000)):
        seconds = n_products / 10 * 122 / rate
        print(
            f"     paged at {plan} ({rate} points/s): {seconds / 60:,.0f} min for "
            f"{n_products:,} products"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"bench/shopify.py at {tree_state()}")
    calls_per_write(50 if args.quick else 200, 500 if args.quick else 3000)
    bulk_read(10_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
