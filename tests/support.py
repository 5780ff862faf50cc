"""What the platforms send, built: product payloads dated from T0 (the tests' epoch), and the
small waits and drives the sync tests share. Signing and posting is tests/webhooks.py."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from tests.constants import BC_HASH, T0
from tests.webhooks import Webhooks


def ts(seconds: float = 0) -> str:
    """An ISO timestamp `seconds` after T0, in a shop's local offset as Shopify sends it."""
    return (T0 + timedelta(seconds=seconds)).astimezone().isoformat()


def shopify_product(
    pid: int = 632910392,
    *,
    at: float = 0,
    price: str = "199.00",
    title: str = "IPod Nano",
    **extra: Any,
) -> dict[str, Any]:
    p = {
        "id": pid,
        "title": title,
        "body_html": "<p>It's <b>small</b> &amp; big.</p>",
        "vendor": "Apple",
        "product_type": "Cult Products",
        "handle": "ipod-nano",
        "status": "active",
        "updated_at": ts(at),
        "variants": [
            {
                "id": 1,
                "sku": "IPOD-PINK",
                "price": price,
                "compare_at_price": None,
                "inventory_quantity": 10,
                "inventory_management": "shopify",
                "inventory_policy": "deny",
            },
            {
                "id": 2,
                "sku": "IPOD-RED",
                "price": "249.00",
                "compare_at_price": "299.00",
                "inventory_quantity": 0,
                "inventory_management": "shopify",
                "inventory_policy": "deny",
            },
        ],
        "images": [{"id": 9, "src": "https://cdn.example.com/ipod.png"}],
    }
    p.update(extra)
    return p


def woo_product(pid: int = 77, *, at: float = 0, **extra: Any) -> dict[str, Any]:
    p = {
        "id": pid,
        "name": "Woo Hoodie",
        "permalink": "https://woo.example.com/p/hoodie",
        "date_modified_gmt": (T0 + timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%S"),
        "status": "publish",
        "description": "<p>Warm</p>",
        "sku": "HOOD-1",
        "price": "35",
        "regular_price": "45",
        "sale_price": "35",
        "on_sale": True,
        "stock_status": "instock",
        "manage_stock": True,
        "stock_quantity": 5,
        "categories": [{"id": 1, "name": "Clothing"}],
        "images": [{"id": 3, "src": "https://woo.example.com/hoodie.jpg"}],
        "parent_id": 0,
    }
    p.update(extra)
    return p


def standard_body(
    pid: str = "sku-1", *, at: float = 0, type_: str = "product.updated", **data: Any
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": pid,
        "updated_at": ts(at),
        "title": "Thing",
        "price": "10.50",
        "in_stock": True,
        "inventory": 3,
    }
    d.update(data)
    return {"type": type_, "timestamp": ts(at), "data": d}


def bigcommerce_body(
    scope: str = "store/product/updated",
    pid: int | str = 205,
    *,
    digest: str | None = None,
    producer: str | None = f"stores/{BC_HASH}",
) -> dict[str, Any]:
    """A BigCommerce webhook as its docs show one: thin, the product's id only; `digest` is
    its `hash` (one per event; a redelivery repeats it), `producer` None leaves it out."""
    body: dict[str, Any] = {
        "scope": scope,
        "store_id": "1025646",
        "data": {"type": "product", "id": pid},
        "hash": digest or uuid.uuid4().hex,
        "created_at": 1561479233,
        "producer": producer,
    }
    if producer is None:
        del body["producer"]
    return body


def dead_letters(rt, sandbox, *pids: str) -> None:
    """Products that Personyze refuses (400), sent as Standard Webhooks (any id, `/` too):
    each lands in the dead-letter store."""
    from workers.sync import Syncer

    webhooks = Webhooks(rt.settings)
    for pid in pids:
        assert webhooks.standard(standard_body(pid)).status_code == 200
    sandbox.faults.update(error_400_rate=1.0)
    s = Syncer(rt.settings, rt.state)
    for pid in pids:
        assert s.run("default", pid) == "dead"
    sandbox.faults.update(error_400_rate=0.0)


def send(webhooks: Webhooks, payload: Any, topic: str = "products/update", **signing: Any) -> str:
    """Deliver a Shopify product webhook; what the app did with it ("accepted_wake",
    "duplicate", "stale", ...), after asserting it was taken (200)."""
    return webhooks.shopify(topic, payload, **signing).status


def settled(rt, store: str = "default") -> dict[str, int] | None:
    """The store's ledger once nothing is pending or due (for `eventually`), else None."""
    led = rt.state.ledger(store)
    return led if led["pending"] == 0 and rt.state.due_count(store) == 0 else None


def sync_due(rt, store: str = "default") -> list[str]:
    """One sync attempt, in this process, for every key due now; their outcomes."""
    from workers.sync import Syncer

    s = Syncer(rt.settings, rt.state)
    return [s.run(store, pid.decode()) for pid in rt.redis.zrange(rt.state.keys.due(store), 0, -1)]
