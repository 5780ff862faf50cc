"""Helpers for building and signing the deliveries each platform sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import SHOP, SHOPIFY_SECRET, WOO_SECRET, WOO_URL

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


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


def shopify_request(
    payload: dict[str, Any] | bytes,
    *,
    topic: str = "products/update",
    secret: str = SHOPIFY_SECRET,
    shop: str = SHOP,
    event_id: str | None = None,
    triggered_at: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": triggered_at or ts(0),
    }
    return body, headers


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


def woo_request(
    payload: dict[str, Any] | bytes,
    *,
    topic: str = "product.updated",
    secret: str = WOO_SECRET,
    source: str = WOO_URL + "/",
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return body, {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": topic.partition(".")[0],
        "X-WC-Webhook-Event": topic.partition(".")[2],
        "X-WC-Webhook-Signature": sig,
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
    }


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


def standard_request(
    payload: dict[str, Any] | bytes,
    secret: str,
    *,
    msg_id: str | None = None,
    timestamp: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Signed by the reference `standardwebhooks` library, not by our own code."""
    from standardwebhooks.webhooks import Webhook

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = timestamp or datetime.now(UTC)
    sig = Webhook(secret).sign(msg_id, when, body.decode())
    return body, {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": sig,
    }


def bigcommerce_request(
    payload: dict[str, Any], client_secret: str
) -> tuple[bytes, dict[str, str]]:
    """Signed as BigCommerce's docs show: Standard Webhooks, base64(client secret) the key."""
    return standard_request(payload, base64.b64encode(client_secret.encode()).decode())


def dead_letters(rt, sandbox, *pids: str) -> None:
    """Products that Personyze refuses (400), sent as Standard Webhooks (any id, `/` too):
    each lands in the dead-letter store."""
    from app import create_app
    from tests.conftest import STANDARD_SECRET
    from workers.sync import Syncer

    web = create_app(rt.settings).test_client()
    for pid in pids:
        body, headers = standard_request(standard_body(pid), STANDARD_SECRET)
        assert web.post("/webhooks/standard", data=body, headers=headers).status_code == 200
    sandbox.faults.update(error_400_rate=1.0)
    s = Syncer(rt.settings, rt.state)
    for pid in pids:
        assert s.run("default", pid) == "dead"
    sandbox.faults.update(error_400_rate=0.0)


def send(web, payload, **kw) -> str:
    """POST a signed Shopify product webhook through a test client; its status ("accepted_wake",
    "duplicate", "stale", ...) after asserting the 200."""
    body, headers = shopify_request(payload, **kw)
    resp = web.post("/webhooks/shopify", data=body, headers=headers)
    assert resp.status_code == 200, resp.json
    return resp.json["status"]


def settled(rt, store: str = "default") -> dict[str, int] | None:
    """The store's ledger once nothing is pending or due (for `eventually`), else None."""
    led = rt.state.ledger(store)
    return led if led["pending"] == 0 and rt.state.due_count(store) == 0 else None


def sync_due(rt, store: str = "default") -> list[str]:
    """One sync attempt, in this process, for every key due now; their outcomes."""
    from workers.sync import Syncer

    s = Syncer(rt.settings, rt.state)
    return [s.run(store, pid.decode()) for pid in rt.redis.zrange(rt.state.keys.due(store), 0, -1)]
